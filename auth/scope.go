package auth

import (
	"errors"
	"fmt"
	"hash/maphash"
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
// appearance; the merged actions of one resource are bounded by MaxActions
// like those of one scope.
//
// The type is the text before the first colon and the actions the text after
// the last one, so names may contain a registry host:port. A resource class
// such as "repository(plugin)" is accepted and dropped. Actions are passed on
// as written, "*" and unknown ones included; the ACL decides on them.
//
// The work is linear in the size of values: a resource is found by a scan
// of at most linearScopes entries, then through an index, and an action is
// compared with at most MaxActions others.
func ParseScopes(values []string) ([]Scope, error) {
	var out []Scope
	var index map[resource]int // built when out outgrows a scan
	var small [2]actionHashes
	hashes := small[:0] // of out[i].Actions
	for _, v := range values {
		for raw := range strings.FieldsSeq(v) {
			typ, name, actions, err := parseScope(raw)
			if err != nil {
				return nil, err
			}
			i := -1
			if index != nil {
				if j, ok := index[resource{typ, name}]; ok {
					i = j
				}
			} else {
				i = slices.IndexFunc(out, func(o Scope) bool { return o.Name == name && o.Type == typ })
			}
			if i < 0 {
				if len(out) == MaxScopes {
					return nil, fmt.Errorf("%w: more than %d scopes in one request", ErrInvalidScope, MaxScopes)
				}
				i = len(out)
				out = append(out, Scope{Type: typ, Name: name,
					Actions: make([]string, 0, min(strings.Count(actions, ",")+1, MaxActions))})
				if len(hashes) == cap(hashes) && cap(hashes) < MaxScopes {
					hashes = append(make([]actionHashes, 0, MaxScopes), hashes...) // once, not doubling
				}
				hashes = append(hashes, actionHashes{})
				if index != nil {
					index[resource{typ, name}] = i
				} else if len(out) > linearScopes {
					index = make(map[resource]int, MaxScopes)
					for j, o := range out {
						index[resource{o.Type, o.Name}] = j
					}
				}
			}
			if out[i].Actions, err = addActions(out[i].Actions, &hashes[i], actions); err != nil {
				return nil, fmt.Errorf("%w: %s:%s", err, typ, truncate(name))
			}
		}
	}
	return out, nil
}

// linearScopes is how many resources ParseScopes scans before it indexes
// them: a scan of a few is cheaper than building a map.
const linearScopes = 8

// resource is the type and name of a scope, the key scopes merge on.
type resource struct{ typ, name string }

// parseScope splits one scope into its resource type (the class dropped),
// name and the unparsed list of actions.
func parseScope(raw string) (typ, name, actions string, err error) {
	first := strings.IndexByte(raw, ':')
	last := strings.LastIndexByte(raw, ':')
	if first < 0 || first == last {
		return "", "", "", fmt.Errorf("%w %q: want type:name:actions", ErrInvalidScope, truncate(raw))
	}
	typ, name, actions = raw[:first], raw[first+1:last], raw[last+1:]
	if open := strings.IndexByte(typ, '('); open >= 0 {
		if !strings.HasSuffix(typ, ")") || open == 0 {
			return "", "", "", fmt.Errorf("%w %q: malformed resource class", ErrInvalidScope, truncate(raw))
		}
		typ = typ[:open]
	}
	if !isLowerAlnum(typ) {
		return "", "", "", fmt.Errorf("%w %q: resource type must be lowercase letters and digits", ErrInvalidScope, truncate(raw))
	}
	// An empty name is a name, as in docker_auth: zot asks for its catalog
	// with "repository::pull", and the ACL decides on it.
	if len(name) > MaxNameLength {
		return "", "", "", fmt.Errorf("%w: resource name longer than %d bytes", ErrInvalidScope, MaxNameLength)
	}
	return typ, name, actions, nil
}

// actionHashes are the hashes of a scope's actions, so that an action is
// compared with the others by a word each, and with the text of one only
// when the hashes are equal.
type actionHashes [MaxActions]uint32

// actionSeed keys the hashes: random, so that a client cannot choose
// actions that collide.
var actionSeed = maphash.MakeSeed()

// addActions appends to dst the actions of a comma-separated list that it
// does not hold yet, empty ones dropped, and fails when that would make
// more than MaxActions. h holds the hashes of dst and is updated with it.
func addActions(dst []string, h *actionHashes, list string) ([]string, error) {
next:
	for a := range strings.SplitSeq(list, ",") {
		if a == "" {
			continue
		}
		x := uint32(maphash.String(actionSeed, a))
		for i, y := range h[:len(dst)] {
			if y == x && dst[i] == a {
				continue next
			}
		}
		if len(dst) == MaxActions {
			return nil, fmt.Errorf("%w: more than %d actions", ErrInvalidScope, MaxActions)
		}
		h[len(dst)] = x
		dst = append(dst, a)
	}
	return dst, nil
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
