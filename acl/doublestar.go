package acl

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// A glob's "**" that is a whole path segment (between slashes or the ends
// of the pattern) matches any number of segments, "/" included:
//
//   - "a/**" matches everything under a/: "a/b", "a/b/c" (not "a" itself);
//   - "**/x" matches "x", "a/x", "a/b/x";
//   - "a/**/x" matches "a/x", "a/b/x", "a/b/c/x";
//   - "**" alone matches everything.
//
// Anywhere else ("a**", "**${account}") two stars mean one, as in
// path.Match and docker_auth, which reads every "**" as "*". A glob whose
// only such "**" ends it ("${account}/**", the usual namespace rule) is
// matched with path.Match on the text up to each "/" of the value (tail);
// another is matched by a regexp translated from it (linear time). Globs
// without one keep path.Match.

// errGlobSyntax is returned for a glob path.Match would refuse.
var errGlobSyntax = errors.New("syntax error in pattern")

// globRegex translates text, a path.Match glob or one text part of a glob
// with placeholders, into RE2 syntax with the meaning of "**" above. start
// and end say whether text begins and ends the pattern: a "**" next to a
// placeholder is not a whole segment, whatever the value. deep reports a
// "**" that is.
func globRegex(text string, start, end bool) (re string, deep bool, err error) {
	var b strings.Builder
	for i := 0; i < len(text); {
		switch c := text[i]; c {
		case '*':
			j := i
			for j < len(text) && text[j] == '*' {
				j++
			}
			before := (i == 0 && start) || (i > 0 && text[i-1] == '/')
			after := (j == len(text) && end) || (j < len(text) && text[j] == '/')
			switch {
			case j-i != 2 || !before || !after:
				b.WriteString(`[^/]*`)
			case j == len(text): // "a/**", "**": the rest, whatever it is
				b.WriteString(`.*`)
				deep = true
			default: // "**/": zero or more segments, each with its slash
				b.WriteString(`(?:.*/)?`)
				j++
				deep = true
			}
			i = j
		case '?':
			b.WriteString(`[^/]`)
			i++
		case '[':
			n, err := classRegex(&b, text[i:])
			if err != nil {
				return "", false, err
			}
			i += n
		case '\\':
			if i+1 == len(text) {
				return "", false, errGlobSyntax
			}
			_, n := utf8.DecodeRuneInString(text[i+1:])
			b.WriteString(regexp.QuoteMeta(text[i+1 : i+1+n]))
			i += 1 + n
		default:
			_, n := utf8.DecodeRuneInString(text[i:])
			b.WriteString(regexp.QuoteMeta(text[i : i+n]))
			i += n
		}
	}
	return b.String(), deep, nil
}

// classRegex translates the path.Match character class at the start of
// glob and returns its length. A range whose ends are reversed matches
// nothing, as in path.Match.
func classRegex(b *strings.Builder, glob string) (int, error) {
	i := 1
	neg := i < len(glob) && glob[i] == '^'
	if neg {
		i++
	}
	var ranges strings.Builder
	for nrange := 0; ; nrange++ {
		if i < len(glob) && glob[i] == ']' && nrange > 0 {
			i++
			break
		}
		lo, n, err := classChar(glob[i:])
		if err != nil {
			return 0, err
		}
		i += n
		hi := lo
		if glob[i] == '-' {
			if hi, n, err = classChar(glob[i+1:]); err != nil {
				return 0, err
			}
			i += 1 + n
		}
		if lo <= hi {
			fmt.Fprintf(&ranges, `\x{%x}-\x{%x}`, lo, hi)
		}
	}
	switch {
	case ranges.Len() == 0 && neg: // every range empty: any character
		b.WriteString(`[\x{0}-\x{10ffff}]`)
	case ranges.Len() == 0:
		b.WriteString(`[^\x{0}-\x{10ffff}]`)
	case neg:
		b.WriteString("[^" + ranges.String() + "]")
	default:
		b.WriteString("[" + ranges.String() + "]")
	}
	return i, nil
}

// classChar reads one character of a class, escaped or not, as path.Match
// does: it must be valid UTF-8 and be followed by more of the class.
func classChar(s string) (rune, int, error) {
	if s == "" || s[0] == '-' || s[0] == ']' {
		return 0, 0, errGlobSyntax
	}
	esc := 0
	if s[0] == '\\' {
		esc = 1
	}
	r, n := utf8.DecodeRuneInString(s[esc:])
	if (r == utf8.RuneError && n <= 1) || esc+n == len(s) {
		return 0, 0, errGlobSyntax
	}
	return r, esc + n, nil
}

// deepGlob sets p.deep for a glob without placeholders that has a
// whole-segment "**", and p.tail, or else p.re, its anchored regexp.
func (p *pattern) deepGlob() error {
	body, deep, err := globRegex(p.lit, true, true)
	switch {
	case err != nil || !deep:
		return err
	case isTail(p.lit, true):
		p.deep, p.tail = true, true
		return nil
	}
	re, err := regexp.Compile(`(?s)^` + body + `$`)
	if err != nil {
		return fmt.Errorf("invalid glob %q: %v", p.src, err)
	}
	p.deep, p.re = true, re
	return nil
}

// isTail reports whether a glob, or the last text part of one (start: it
// is also the first part), ends with a "/**" segment and has no other.
func isTail(text string, start bool) bool {
	if !strings.HasSuffix(text, "/**") || strings.HasSuffix(text, "***") {
		return false
	}
	_, deep, err := globRegex(text[:len(text)-2], start, false)
	return err == nil && !deep
}

// tailParts reports whether the only whole-segment "**" of a glob with
// placeholders is a "/**" that ends it.
func (p *pattern) tailParts() bool {
	last := len(p.parts) - 1
	if p.parts[last].kind != partText || !isTail(p.parts[last].text, last == 0) {
		return false
	}
	for i, pt := range p.parts[:last] {
		if _, deep, _ := globRegex(pt.text, i == 0, false); pt.kind == partText && deep {
			return false
		}
	}
	return true
}

// tailMatch reports whether s is a string head matches followed by
// anything, for a glob head without "**" segments that ends with "/":
// the "a/" of "a/**".
func tailMatch(head, s string) bool {
	for i := strings.IndexByte(s, '/'); i >= 0; {
		if globMatch(head, s[:i+1]) {
			return true
		}
		j := strings.IndexByte(s[i+1:], '/')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// deepParts turns the text parts of a glob with placeholders into regexp
// syntax, between "(?s)^" and "$", when one of them has a whole-segment
// "**", and sets p.deep. The placeholders' values are then regex-quoted,
// as in a /regex/.
func (p *pattern) deepParts() error {
	if p.tailParts() {
		last := &p.parts[len(p.parts)-1]
		last.text = strings.TrimSuffix(last.text, "**")
		p.deep, p.tail = true, true
		return nil
	}
	out := make([]part, 0, len(p.parts)+2)
	out = append(out, part{kind: partText, text: `(?s)^`})
	var deep bool
	var bad error
	for i, pt := range p.parts {
		if pt.kind == partText {
			re, d, err := globRegex(pt.text, i == 0, i == len(p.parts)-1)
			deep, bad = deep || d, errors.Join(bad, err)
			pt.text = re
		}
		out = append(out, pt)
	}
	switch {
	case !deep:
		return nil
	case bad != nil: // a class around a placeholder, "[${account}]"
		return fmt.Errorf("pattern %q: with a ** segment, a character class cannot hold a placeholder", p.src)
	}
	p.parts, p.deep = append(out, part{kind: partText, text: `$`}), true
	return nil
}

// indexGlob is the glob that the name index takes literal text from: a
// leading "**/" also matches nothing at all, slash included, so it is read
// as "*" ("**/x" ends with "x", not "/x").
func indexGlob(p *pattern) string {
	lit := p.lit
	if !p.deep || !strings.HasPrefix(lit, "**/") {
		return lit
	}
	for strings.HasPrefix(lit, "**/") {
		lit = lit[3:]
	}
	return "*" + lit
}

// deepNotice tells, for validate, how a glob with a "**" segment differs
// from docker_auth.
func deepNotice(p *pattern) string {
	return fmt.Sprintf(`glob %q has a "**" path segment, which matches any number of segments ("/" included); docker_auth reads it as "*", one segment`, p.src)
}
