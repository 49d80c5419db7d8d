package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits on what one token request may ask for.
const (
	// MaxScopes is the most resource scopes one request may carry.
	MaxScopes = 64
	// MaxNameLength bounds a resource name (the registry allows 255 for a
	// repository path; a host:port prefix adds some).
	MaxNameLength = 512
	// MaxActions bounds the actions of one scope.
	MaxActions = 16
)

// Scope is one requested resource scope: "repository:alice/app:pull,push".
type Scope struct {
	Type    string
	Name    string
	Actions []string
}

// String renders the scope in the registry's syntax.
func (s Scope) String() string {
	n := len(s.Type) + len(s.Name) + 2 + max(len(s.Actions)-1, 0) // the colons and commas
	for _, a := range s.Actions {
		n += len(a)
	}
	var b strings.Builder // one allocation: String runs for every scope of every request
	b.Grow(n)
	b.WriteString(s.Type)
	b.WriteByte(':')
	b.WriteString(s.Name)
	b.WriteByte(':')
	for i, a := range s.Actions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a)
	}
	return b.String()
}

// ErrInvalidScope is wrapped by every scope parsing error.
var ErrInvalidScope = errors.New("invalid scope")

// ParseScopes parses the values of the scope parameters of one request. Each
// value may hold several scopes separated by spaces. Scopes for the same
// type and name are merged, their actions united, in order of first
// appearance.
//
// The type is the text before the first colon and the actions the text after
// the last one, so names may contain a registry host:port. A resource class
// such as "repository(plugin)" is accepted and dropped. Actions are passed on
// as written, "*" and unknown ones included; the ACL decides on them.
func ParseScopes(values []string) ([]Scope, error) {
	var out []Scope
	for _, v := range values {
		for raw := range strings.FieldsSeq(v) {
			s, err := parseScope(raw)
			if err != nil {
				return nil, err
			}
			if i := slices.IndexFunc(out, func(o Scope) bool { return o.Type == s.Type && o.Name == s.Name }); i >= 0 {
				for _, a := range s.Actions {
					if !slices.Contains(out[i].Actions, a) {
						out[i].Actions = append(out[i].Actions, a)
					}
				}
				continue
			}
			if len(out) == MaxScopes {
				return nil, fmt.Errorf("%w: more than %d scopes in one request", ErrInvalidScope, MaxScopes)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func parseScope(raw string) (Scope, error) {
	first := strings.IndexByte(raw, ':')
	last := strings.LastIndexByte(raw, ':')
	if first < 0 || first == last {
		return Scope{}, fmt.Errorf("%w %q: want type:name:actions", ErrInvalidScope, truncate(raw))
	}
	typ, name, actions := raw[:first], raw[first+1:last], raw[last+1:]
	if open := strings.IndexByte(typ, '('); open >= 0 {
		if !strings.HasSuffix(typ, ")") || open == 0 {
			return Scope{}, fmt.Errorf("%w %q: malformed resource class", ErrInvalidScope, truncate(raw))
		}
		typ = typ[:open]
	}
	if !isLowerAlnum(typ) {
		return Scope{}, fmt.Errorf("%w %q: resource type must be lowercase letters and digits", ErrInvalidScope, truncate(raw))
	}
	if name == "" {
		return Scope{}, fmt.Errorf("%w %q: empty resource name", ErrInvalidScope, truncate(raw))
	}
	if len(name) > MaxNameLength {
		return Scope{}, fmt.Errorf("%w: resource name longer than %d bytes", ErrInvalidScope, MaxNameLength)
	}
	s := Scope{Type: typ, Name: name, Actions: make([]string, 0, min(strings.Count(actions, ",")+1, MaxActions))}
	for a := range strings.SplitSeq(actions, ",") {
		if a == "" || slices.Contains(s.Actions, a) {
			continue
		}
		if len(s.Actions) == MaxActions {
			return Scope{}, fmt.Errorf("%w: more than %d actions", ErrInvalidScope, MaxActions)
		}
		s.Actions = append(s.Actions, a)
	}
	return s, nil
}

func isLowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
