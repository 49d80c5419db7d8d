package token

import (
	"fmt"
	"slices"
	"strings"
)

// Scope patterns say what an access token may use: "TYPE:NAME:ACTIONS",
// such as "repository:web/*:pull,push". TYPE is a resource type or "*";
// NAME is a name in which each "*" stands for any run of characters, "/"
// included ("web/*" covers web/app and web/app/cache, not web itself);
// ACTIONS is a comma-separated list, or "*" for every action. The name is
// what lies between the first and the last colon, so it may hold one
// (host:port/name).

// maxScopePattern bounds one pattern's length.
const maxScopePattern = 512

// ValidateScopePattern reports whether p is a well-formed scope pattern.
func ValidateScopePattern(p string) error {
	typ, name, actions, ok := splitPattern(p)
	switch {
	case len(p) > maxScopePattern:
		return fmt.Errorf("token: scope pattern longer than %d bytes", maxScopePattern)
	case !ok || typ == "" || name == "" || actions == "":
		return fmt.Errorf("token: scope pattern %q: want TYPE:NAME:ACTIONS, e.g. repository:web/*:pull,push", p)
	case strings.ContainsAny(p, " \t\r\n"):
		return fmt.Errorf("token: scope pattern %q contains white space", p)
	}
	for a := range strings.SplitSeq(actions, ",") {
		if a == "" {
			return fmt.Errorf("token: scope pattern %q has an empty action", p)
		}
	}
	return nil
}

func splitPattern(p string) (typ, name, actions string, ok bool) {
	i, j := strings.IndexByte(p, ':'), strings.LastIndexByte(p, ':')
	if i < 0 || i == j {
		return "", "", "", false
	}
	return p[:i], p[i+1 : j], p[j+1:], true
}

// AllowedActions returns the actions of granted, on the resource typ/name,
// that some pattern allows, in granted's order: the intersection of what
// the ACL granted and what the token may use. Malformed patterns allow
// nothing (Verify refuses tokens that carry one).
func AllowedActions(patterns []string, typ, name string, granted []string) []string {
	var out []string
	for _, a := range granted {
		for _, p := range patterns {
			pt, pn, pa, ok := splitPattern(p)
			if ok && (pt == "*" || pt == typ) && globMatch(pn, name) && actionAllowed(pa, a) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func actionAllowed(list, action string) bool {
	return list == "*" || slices.Contains(strings.Split(list, ","), action)
}

// globMatch matches s against glob, in which "*" is any run of characters
// and everything else is literal. It runs in O(len(glob)·len(s)) at worst.
func globMatch(glob, s string) bool {
	// Greedy matching with backtracking to the last star only.
	gi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case gi < len(glob) && glob[gi] == '*':
			star, mark = gi, si
			gi++
		case gi < len(glob) && glob[gi] == s[si]:
			gi++
			si++
		case star >= 0:
			gi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for gi < len(glob) && glob[gi] == '*' {
		gi++
	}
	return gi == len(glob)
}
