// Package cfgerr carries configuration errors that know which key they are
// about, so the loader can point at the exact line of auth_config.yml.
//
// A package validating its own section returns errors built with At, using
// key paths relative to that section; the caller prefixes the section name
// with At again. The loader resolves the full path to a line in the file.
package cfgerr

import (
	"errors"
	"slices"
	"strings"
)

// Error is a configuration problem at a key path such as
// ["acl", "3", "match", "ip"] (list indexes are decimal strings).
type Error struct {
	Path []string
	Err  error
}

// Error renders the path in dotted form with list indexes in brackets,
// for example "acl[3].match.ip: invalid CIDR".
func (e *Error) Error() string {
	if len(e.Path) == 0 {
		return e.Err.Error()
	}
	return Key(e.Path) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Key renders a path the way users read it: acl[3].match.ip.
func Key(path []string) string {
	var b strings.Builder
	for i, p := range path {
		switch {
		case isIndex(p):
			b.WriteString("[" + p + "]")
		case i == 0:
			b.WriteString(p)
		default:
			b.WriteString("." + p)
		}
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// At places err at path. When err already is (or joins) *Error values, the
// path is prepended to each of them, so nested validators compose. A nil err
// stays nil.
func At(err error, path ...string) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, At(e, path...))
		}
		return errors.Join(out...)
	}
	var ce *Error
	if errors.As(err, &ce) && ce == err {
		p := append(append([]string{}, path...), ce.Path...)
		return &Error{Path: p, Err: ce.Err}
	}
	return &Error{Path: append([]string{}, path...), Err: err}
}

// Flatten returns the individual errors inside err (unwrapping errors.Join),
// in order.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Keys returns the rendered key paths of the problems in err, sorted, for
// tests that check where problems were placed. A problem without a key is
// rendered as "?" and its message.
func Keys(err error) []string {
	var out []string
	for _, e := range Flatten(err) {
		var ce *Error
		if errors.As(e, &ce) {
			out = append(out, Key(ce.Path))
		} else {
			out = append(out, "?"+e.Error())
		}
	}
	slices.Sort(out)
	return out
}
