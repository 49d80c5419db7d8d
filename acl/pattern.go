package acl

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// field is one of the request's string fields that match keys and
// placeholders name.
type field uint8

const (
	fieldAccount field = iota
	fieldType
	fieldName
	fieldService
	numFields
)

var fieldNames = [numFields]string{"account", "type", "name", "service"}

func (f field) String() string { return fieldNames[f] }

func fieldByName(s string) (field, bool) {
	for f, n := range fieldNames {
		if n == s {
			return field(f), true
		}
	}
	return 0, false
}

func (r *Request) field(f field) string {
	switch f {
	case fieldAccount:
		return r.Account
	case fieldType:
		return r.Type
	case fieldName:
		return r.Name
	default:
		return r.Service
	}
}

// kind says how a compiled pattern matches.
type kind uint8

const (
	kindLiteral     kind = iota // s == lit
	kindGlob                    // path.Match(lit, s); with deep, tailMatch or re.MatchString(s)
	kindRegex                   // re.MatchString(s)
	kindTmplLiteral             // s == the parts with raw values (a glob without metacharacters)
	kindTmplGlob                // path.Match(parts with glob-escaped values, s); with deep, tailMatch or as kindTmplRegex
	kindTmplRegex               // cached regexp of the parts with regex-quoted values
)

// partKind says what one piece of a placeholder pattern is.
type partKind uint8

const (
	partText    partKind = iota // literal pattern text
	partField                   // ${account}
	partCapture                 // ${account:N}
	partLabel                   // ${labels:KEY}
)

// part is one piece of a pattern with placeholders.
type part struct {
	kind  partKind
	text  string // partText: pattern source; otherwise the placeholder as written
	field field  // partField, partCapture
	group int    // partCapture
	label int    // partLabel: index into pattern.labels
}

// pattern is a compiled account/type/name/service/label pattern.
type pattern struct {
	src    string // as written, slashes included
	kind   kind
	lit    string         // kindLiteral: the value; kindGlob: the glob
	prefix string         // kindLiteral, kindGlob: text every match starts with (the literal; the glob up to its first metacharacter)
	re     *regexp.Regexp // kindRegex; kindGlob with deep
	deep   bool           // kindGlob, kindTmplGlob: a "**" path segment (doublestar.go) makes it a regexp…
	tail   bool           // …unless the only one ends it: lit, or the last text part, then lacks the "**"
	shape  regexShape     // kindRegex: what re matches, when that needs no regexp engine
	parts  []part         // kindTmpl*
	labels []string       // distinct label keys the placeholders use, in order
}

func isRegex(src string) bool { return len(src) >= 2 && src[0] == '/' && src[len(src)-1] == '/' }

func hasGlobMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// compilePattern parses src. Capture references are checked by the caller,
// which knows the other fields of the match.
func compilePattern(src string) (*pattern, error) {
	p := &pattern{src: src}
	body, re := src, isRegex(src)
	if re {
		body = src[1 : len(src)-1]
	}
	if err := p.parseParts(body); err != nil {
		return nil, err
	}
	if !p.hasPlaceholders() {
		switch {
		case re:
			r, err := compileRegex(src, body)
			if err != nil {
				return nil, err
			}
			p.kind, p.re, p.shape = kindRegex, r, shapeOf(body)
		case hasGlobMeta(body):
			if err := checkGlob(src, body); err != nil {
				return nil, err
			}
			p.kind, p.lit = kindGlob, body
			if err := p.deepGlob(); err != nil {
				return nil, err
			}
			p.prefix = body[:strings.IndexAny(body, `*?[\`)]
		default:
			p.kind, p.lit, p.prefix = kindLiteral, body, body
		}
		p.parts = nil
		return p, nil
	}
	sample := p.sample()
	switch {
	case re:
		if _, err := compileRegex(src, sample); err != nil {
			return nil, err
		}
		p.kind = kindTmplRegex
	default:
		if err := checkGlob(src, sample); err != nil {
			return nil, err
		}
		p.kind = kindTmplGlob
		if !p.textHas(hasGlobMeta) {
			p.kind = kindTmplLiteral
		} else if err := p.deepParts(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func compileRegex(src, body string) (*regexp.Regexp, error) {
	r, err := regexp.Compile(body)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid regex %q: %s: %q", src, se.Code, se.Expr)
		}
		return nil, fmt.Errorf("invalid regex %q: %v", src, err)
	}
	return r, nil
}

// literalSuffix is text every string that a kindLiteral or kindGlob
// pattern matches ends with: the literal, or the glob's trailing run of
// plain characters. The run stops at any of *?[]\, which is conservative
// for an escaped character (a shorter suffix, never a wrong one).
func literalSuffix(p *pattern) string {
	if p.kind == kindLiteral {
		return p.lit
	}
	lit := indexGlob(p)
	return lit[strings.LastIndexAny(lit, `*?[]\`)+1:]
}

// literalInfix is text every string a pattern matches contains. For a
// kindGlob, the longest run of plain characters before its first '[' or
// backslash (after those, runs are not worth parsing a class or an escape
// for); '*' and '?' match whole characters around it. For a kindRegex, the
// literal text every match begins with (an unanchored match can begin
// anywhere in the string, so it is text the string contains). "" for other
// kinds.
func literalInfix(p *pattern) string {
	switch p.kind {
	case kindRegex:
		lit, _ := p.re.LiteralPrefix()
		return lit
	case kindGlob:
	default:
		return ""
	}
	head := indexGlob(p)
	if i := strings.IndexAny(head, `[\`); i >= 0 {
		head = head[:i]
	}
	best := ""
	for run := range strings.FieldsFuncSeq(head, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(run) > len(best) {
			best = run
		}
	}
	return best
}

// regexShape names the unanchored regexes whose matches need no regexp
// engine.
type regexShape uint8

const (
	shapeGeneral regexShape = iota // anything: ask the regexp
	shapeAnyLine                   // ".+" (docker_auth's usual "any signed-in account"): s has a byte other than '\n'
	shapeAll                       // ".*" or empty: everything
)

// shapeOf tells the shape of the regex body.
func shapeOf(body string) regexShape {
	re, err := syntax.Parse(body, syntax.Perl)
	if err != nil {
		return shapeGeneral
	}
	re = re.Simplify()
	switch {
	case re.Op == syntax.OpEmptyMatch:
		return shapeAll
	case len(re.Sub) != 1 || re.Sub[0].Op != syntax.OpAnyCharNotNL:
		return shapeGeneral
	case re.Op == syntax.OpPlus:
		return shapeAnyLine
	case re.Op == syntax.OpStar:
		return shapeAll
	}
	return shapeGeneral
}

// globMatch is path.Match(glob, s) for a well-formed glob, without it for
// the usual shapes: no metacharacter (equality) and a single trailing '*'
// ("team/*": the prefix, then anything but '/').
func globMatch(glob, s string) bool {
	i := strings.IndexAny(glob, `*?[\`)
	switch {
	case i < 0:
		return s == glob
	case i == len(glob)-1 && glob[i] == '*':
		return strings.HasPrefix(s, glob[:i]) && strings.IndexByte(s[i:], '/') < 0
	}
	ok, _ := path.Match(glob, s)
	return ok
}

func checkGlob(src, glob string) error {
	if _, err := path.Match(glob, ""); err != nil {
		return fmt.Errorf("invalid glob %q: %v", src, err)
	}
	return nil
}

// parseParts splits body into text and placeholders.
func (p *pattern) parseParts(body string) error {
	for body != "" {
		i := strings.Index(body, "${")
		if i < 0 {
			p.parts = append(p.parts, part{kind: partText, text: body})
			return nil
		}
		if i > 0 {
			text := body[:i]
			if n := len(text) - len(strings.TrimRight(text, `\`)); n%2 == 1 {
				return fmt.Errorf("pattern %q: a backslash before a placeholder would escape the substituted value", p.src)
			}
			p.parts = append(p.parts, part{kind: partText, text: text})
		}
		j := strings.IndexByte(body[i:], '}')
		if j < 0 {
			return fmt.Errorf("pattern %q: unterminated placeholder %q (missing })", p.src, body[i:])
		}
		ph, err := p.placeholder(body[i : i+j+1])
		if err != nil {
			return err
		}
		p.parts = append(p.parts, ph)
		body = body[i+j+1:]
	}
	return nil
}

// placeholder parses one "${…}".
func (p *pattern) placeholder(ph string) (part, error) {
	name := ph[2 : len(ph)-1]
	if f, ok := fieldByName(name); ok {
		return part{kind: partField, text: ph, field: f}, nil
	}
	prefix, arg, hasArg := strings.Cut(name, ":")
	if prefix == "labels" {
		if !hasArg || arg == "" {
			return part{}, fmt.Errorf("pattern %q: malformed placeholder %q: want ${labels:KEY}", p.src, ph)
		}
		idx := -1
		for k, l := range p.labels {
			if l == arg {
				idx = k
			}
		}
		if idx < 0 {
			idx = len(p.labels)
			p.labels = append(p.labels, arg)
		}
		return part{kind: partLabel, text: ph, label: idx}, nil
	}
	if f, ok := fieldByName(prefix); ok && hasArg {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > 999 || arg[0] == '+' {
			return part{}, fmt.Errorf("pattern %q: malformed placeholder %q: want ${%s:N} with N a capture group number", p.src, ph, f)
		}
		return part{kind: partCapture, text: ph, field: f, group: n}, nil
	}
	return part{}, fmt.Errorf("pattern %q: unknown placeholder %q: use ${account}, ${type}, ${name}, ${service}, ${labels:KEY} or a capture such as ${account:1}", p.src, ph)
}

func (p *pattern) hasPlaceholders() bool {
	return slices.ContainsFunc(p.parts, func(pt part) bool { return pt.kind != partText })
}

// textHas reports whether any text part satisfies f.
func (p *pattern) textHas(f func(string) bool) bool {
	for _, pt := range p.parts {
		if pt.kind == partText && f(pt.text) {
			return true
		}
	}
	return false
}

// sample renders the pattern with "x" for every placeholder, to check its
// syntax at compile time.
func (p *pattern) sample() string {
	var b strings.Builder
	for _, pt := range p.parts {
		if pt.kind == partText {
			b.WriteString(pt.text)
		} else {
			b.WriteByte('x')
		}
	}
	return b.String()
}

// match reports whether s matches p in e. Capture-source regexes are run
// by the rule, which records their submatches.
func (p *pattern) match(s string, e *env) bool {
	switch p.kind {
	case kindLiteral:
		return s == p.lit
	case kindGlob:
		if !strings.HasPrefix(s, p.prefix) {
			return false // most globs of a long list fail here, without path.Match
		}
		switch {
		case p.tail:
			return tailMatch(p.lit[:len(p.lit)-2], s)
		case p.deep:
			return p.re.MatchString(s)
		}
		return globMatch(p.lit, s)
	case kindRegex:
		switch p.shape {
		case shapeAnyLine:
			return strings.Trim(s, "\n") != ""
		case shapeAll:
			return true
		}
		return p.re.MatchString(s)
	}
	if len(p.labels) == 0 {
		return p.matchWith(s, e, nil, nil)
	}
	return p.matchLabels(s, e)
}

// matchLabels tries every combination of the values of p's labels, at most
// MaxLabelCombinations. A request lacking one of the labels does not match.
func (p *pattern) matchLabels(s string, e *env) bool {
	var valsBuf [4][]string
	var idxBuf [4]int
	vals, idx := valsBuf[:0], idxBuf[:0]
	if len(p.labels) > len(valsBuf) {
		vals, idx = make([][]string, 0, len(p.labels)), make([]int, 0, len(p.labels))
	}
	for _, k := range p.labels {
		v := e.req.Labels[k]
		if len(v) == 0 {
			return false
		}
		vals, idx = append(vals, v), append(idx, 0)
	}
	for range MaxLabelCombinations {
		if p.matchWith(s, e, vals, idx) {
			return true
		}
		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < len(vals[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return false
		}
	}
	e.capped = true
	return false
}

// value is the raw value a placeholder stands for.
func (pt *part) value(e *env, vals [][]string, idx []int) string {
	switch pt.kind {
	case partField:
		return e.req.field(pt.field)
	case partCapture:
		m, s := e.caps[pt.field], e.req.field(pt.field)
		if 2*pt.group+1 < len(m) && m[2*pt.group] >= 0 {
			return s[m[2*pt.group]:m[2*pt.group+1]]
		}
		return ""
	case partLabel:
		return vals[pt.label][idx[pt.label]]
	}
	return pt.text
}

// matchWith matches s against p with the placeholders substituted by one
// combination of label values.
func (p *pattern) matchWith(s string, e *env, vals [][]string, idx []int) bool {
	if p.kind == kindTmplLiteral {
		rest := s
		for i := range p.parts {
			v := p.parts[i].value(e, vals, idx)
			if !strings.HasPrefix(rest, v) {
				return false
			}
			rest = rest[len(v):]
		}
		return rest == ""
	}
	glob := p.kind == kindTmplGlob && (!p.deep || p.tail)
	quote := appendRegexQuoted
	if glob {
		quote = appendGlobEscaped
	}
	b := e.buf[:0]
	for i := range p.parts {
		pt := &p.parts[i]
		if pt.kind == partText {
			b = append(b, pt.text...)
		} else {
			b = quote(b, pt.value(e, vals, idx))
		}
	}
	e.buf = b
	switch {
	case p.tail:
		return tailMatch(string(b), s)
	case glob:
		return globMatch(string(b), s)
	}
	re := e.cache.get(b)
	return re != nil && re.MatchString(s)
}

// appendGlobEscaped appends v with a backslash before each glob
// metacharacter, so path.Match treats it literally.
func appendGlobEscaped(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '*', '?', '[', ']', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendRegexQuoted appends v quoted like regexp.QuoteMeta, and also "-",
// so a value cannot form a range inside a character class.
func appendRegexQuoted(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if strings.IndexByte(`\.+*?()|[]{}^$-`, c) >= 0 {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return b
}
