package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// rule is a compiled Rule.
type rule struct {
	account *pattern // nil when any account matches; used by the index
	// namePrefix is text every name the rule matches starts with (its
	// literal name, or its name glob up to the first metacharacter), so
	// Decide can pass over most rules of a long list without running them.
	namePrefix string
	// nameSuffix is, likewise, text every name the rule matches ends with
	// (the literal run after the glob's last metacharacter).
	nameSuffix string
	// nameInfix is text every name the rule matches contains: the longest
	// literal run of its name glob, when it has neither prefix nor suffix,
	// or the literal start of every match of its name regex.
	nameInfix string
	checks    []check // every constraint, cheapest first
	captures  bool    // some check records regex submatches
	actions   actionSet
	comment   string
}

// checkKind says what a check tests.
type checkKind uint8

const (
	checkField   checkKind = iota // a field against a pattern
	checkCapture                  // a field against a regex whose submatches placeholders use
	checkIP                       // the client address against a prefix
	checkLabel                    // some value of a label against a pattern
)

// check is one constraint of a rule.
type check struct {
	kind  checkKind
	field field
	label string
	p     *pattern
	ip    netip.Prefix
}

// env is the per-Decide state rules are evaluated in.
type env struct {
	req    *Request
	ip     netip.Addr       // unmapped, without zone
	caps   [numFields][]int // submatch indexes of capture-source regexes, current rule
	cache  *regexCache
	buf    []byte // scratch for substituted patterns
	capped bool   // a label combination search hit MaxLabelCombinations
}

// matches reports whether every check of r holds for e.
func (r *rule) matches(e *env) bool {
	if r.captures {
		e.caps = [numFields][]int{}
	}
	for i := range r.checks {
		c := &r.checks[i]
		switch c.kind {
		case checkField:
			if !c.p.match(e.req.field(c.field), e) {
				return false
			}
		case checkCapture:
			m := c.p.re.FindStringSubmatchIndex(e.req.field(c.field))
			if m == nil {
				return false
			}
			e.caps[c.field] = m
		case checkIP:
			if !e.ip.IsValid() || !c.ip.Contains(e.ip) {
				return false
			}
		case checkLabel:
			if !slices.ContainsFunc(e.req.Labels[c.label], func(v string) bool { return c.p.match(v, e) }) {
				return false
			}
		}
	}
	return true
}

// cost orders checks: literal compares, then the address, then globs and
// fixed regexes (capture sources before the placeholders that use them),
// then patterns with placeholders; labels after fields of the same cost.
func (c *check) cost() int {
	if c.kind == checkIP {
		return 2
	}
	n := 4
	switch c.p.kind {
	case kindLiteral:
		n = 0
	case kindTmplLiteral, kindTmplGlob, kindTmplRegex:
		n = 8
	}
	if c.kind == checkLabel {
		n++
	}
	return n
}

// compileRule validates and compiles the rule at index i. Errors are placed
// at paths relative to the rule; warnings and notices are appended with
// full keys.
func compileRule(i int, in *Rule, warnings, notices *[]string) (rule, error) {
	var errs []error
	add := func(err error, path ...string) { errs = append(errs, cfgerr.At(err, path...)) }
	keyed := func(msg string, path []string) string {
		return cfgerr.Key(append([]string{"acl", strconv.Itoa(i)}, path...)) + ": " + msg
	}
	warn := func(msg string, path ...string) { *warnings = append(*warnings, keyed(msg, path)) }
	note := func(p *pattern, path ...string) {
		if p.deep {
			*notices = append(*notices, keyed(deepNotice(p), path))
		}
	}
	r := rule{comment: in.Comment}

	if in.Actions == nil {
		add(errors.New("actions is required; use [] to deny"), "actions")
	} else {
		for j, act := range *in.Actions {
			if msg := checkAction(act); msg != "" {
				add(errors.New(msg), "actions", strconv.Itoa(j))
			} else if msg := unusualAction(act, *in.Actions); msg != "" {
				warn(msg, "actions", strconv.Itoa(j))
			}
		}
		r.actions = newActionSet(*in.Actions)
	}
	m := in.Match
	if m == nil {
		add(errors.New("match is required; use {} to match every request"), "match")
		return r, errors.Join(errs...)
	}

	var fields [numFields]*pattern
	for f, src := range [numFields]*string{m.Account, m.Type, m.Name, m.Service} {
		if src == nil {
			continue
		}
		p, err := compilePattern(*src)
		if err != nil {
			add(err, "match", field(f).String())
			continue
		}
		fields[f] = p
		if w := anchorWarning(p); w != "" {
			warn(w, "match", field(f).String())
		}
		note(p, "match", field(f).String())
		r.checks = append(r.checks, check{kind: checkField, field: field(f), p: p})
	}
	r.account = fields[fieldAccount]
	if p := fields[fieldName]; p != nil && (p.kind == kindLiteral || p.kind == kindGlob) {
		r.namePrefix, r.nameSuffix = p.prefix, literalSuffix(p)
		if r.namePrefix == "" && r.nameSuffix == "" {
			r.nameInfix = literalInfix(p)
		}
	} else if p != nil && p.kind == kindRegex {
		r.nameInfix = literalInfix(p)
	}

	if m.IP != nil {
		prefix, w, err := parseIP(*m.IP)
		switch {
		case err != nil:
			add(err, "match", "ip")
		case w != "":
			warn(w, "match", "ip")
			fallthrough
		default:
			r.checks = append(r.checks, check{kind: checkIP, ip: prefix})
		}
	}

	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" {
			add(errors.New("a label name must not be empty"), "match", "labels")
			continue
		}
		p, err := compilePattern(m.Labels[k])
		if err != nil {
			add(err, "match", "labels", k)
			continue
		}
		if w := anchorWarning(p); w != "" {
			warn(w, "match", "labels", k)
		}
		note(p, "match", "labels", k)
		r.checks = append(r.checks, check{kind: checkLabel, label: k, p: p})
	}

	// Capture placeholders need a fixed regex in the same match.
	for ci := range r.checks {
		c := &r.checks[ci]
		if c.p == nil {
			continue
		}
		for _, pt := range c.p.parts {
			if pt.kind != partCapture {
				continue
			}
			path := []string{"match", c.field.String()}
			if c.kind == checkLabel {
				path = []string{"match", "labels", c.label}
			}
			if err := resolveCapture(pt, fields, m); err != nil {
				add(err, path...)
				continue
			}
			r.captures = true
			for cj := range r.checks {
				if d := &r.checks[cj]; d.kind == checkField && d.field == pt.field {
					d.kind = checkCapture
				}
			}
		}
	}
	slices.SortStableFunc(r.checks, func(a, b check) int { return a.cost() - b.cost() })
	return r, errors.Join(errs...)
}

// resolveCapture checks that ${F:N} refers to a fixed regex in match.F with
// at least N groups.
func resolveCapture(pt part, fields [numFields]*pattern, m *Match) error {
	src := [numFields]*string{m.Account, m.Type, m.Name, m.Service}[pt.field]
	target := fields[pt.field]
	switch {
	case src == nil:
		return fmt.Errorf("placeholder %q needs match.%s to be a /regex/", pt.text, pt.field)
	case target == nil:
		return fmt.Errorf("placeholder %q refers to match.%s, which is invalid", pt.text, pt.field)
	case target.kind == kindTmplRegex:
		return fmt.Errorf("placeholder %q needs match.%s to be a /regex/ without placeholders", pt.text, pt.field)
	case target.kind != kindRegex:
		return fmt.Errorf("placeholder %q needs match.%s to be a /regex/, not %q", pt.text, pt.field, target.src)
	case pt.group > target.re.NumSubexp():
		return fmt.Errorf("placeholder %q: the regex %q of match.%s has %d capture group(s)", pt.text, target.src, pt.field, target.re.NumSubexp())
	}
	return nil
}

// checkAction returns why act can never be requested, or "".
func checkAction(act string) string {
	switch {
	case act == "":
		return "an action must not be empty"
	case strings.ContainsAny(act, ", \t\r\n"):
		return fmt.Sprintf("action %q contains a comma or a space; write each action as its own list item", act)
	}
	return ""
}

// unusualAction returns a warning about act in actions, or "".
func unusualAction(act string, actions []string) string {
	switch act {
	case "pull", "push", "delete":
		return ""
	case "*":
		if len(actions) > 1 {
			return `"*" grants every requested action; the other actions listed add nothing`
		}
		return ""
	}
	return fmt.Sprintf("action %q is not one registries request (pull, push, delete, *); it is granted only when asked for verbatim", act)
}

// parseIP parses a single address or a CIDR into a prefix, unmapping
// IPv4-mapped IPv6. It returns a warning when a CIDR has host bits set.
func parseIP(s string) (netip.Prefix, string, error) {
	bad := fmt.Errorf("invalid IP or CIDR %q", s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, "", bad
		}
		if a.Zone() != "" {
			return netip.Prefix{}, "", fmt.Errorf("invalid IP or CIDR %q: zones are not supported", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, "", bad
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return m, fmt.Sprintf("CIDR %q has host bits set; it means %s", s, m), nil
	}
	return p, "", nil
}

// anchorWarning returns a warning when p is a regex not anchored with both
// ^ and $ (docker_auth's regexes are unanchored; so are Gatehouse's).
func anchorWarning(p *pattern) string {
	if p.kind != kindRegex && p.kind != kindTmplRegex {
		return ""
	}
	body := p.src[1 : len(p.src)-1]
	if p.kind == kindTmplRegex {
		body = p.sample()
	}
	re, err := syntax.Parse(body, syntax.Perl)
	if err != nil {
		return ""
	}
	start, end := anchored(re, syntax.OpBeginText), anchored(re, syntax.OpEndText)
	if start && end {
		return ""
	}
	where := ""
	switch {
	case start:
		where = " at the end"
	case end:
		where = " at the start"
	}
	example := "values that only contain a match"
	if lit, ok := literal(re); ok && lit != "" && p.kind == kindRegex {
		if !start {
			lit = "not" + lit
		} else {
			lit += "x"
		}
		example = strconv.Quote(lit)
	}
	return fmt.Sprintf("regex %q is not anchored%s; it matches %s too (add ^ and $)", p.src, where, example)
}

// anchored reports whether every match of re begins (op OpBeginText) or
// ends (OpEndText) at the text's edge, or may as well: a leading or trailing
// ".*" or ".+" stretches an unanchored match to the edge, so docker_auth's
// classic "/.+/" means the same with or without anchors and is not warned
// about.
func anchored(re *syntax.Regexp, op syntax.Op) bool {
	switch re.Op {
	case op:
		return true
	case syntax.OpStar, syntax.OpPlus:
		return re.Sub[0].Op == syntax.OpAnyCharNotNL || re.Sub[0].Op == syntax.OpAnyChar
	case syntax.OpCapture:
		return anchored(re.Sub[0], op)
	case syntax.OpConcat:
		if len(re.Sub) == 0 {
			return false
		}
		if op == syntax.OpBeginText {
			return anchored(re.Sub[0], op)
		}
		return anchored(re.Sub[len(re.Sub)-1], op)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchored(s, op) {
				return false
			}
		}
		return true
	}
	return false
}

// literal returns the text a regex matches when it is a plain
// case-sensitive literal, ignoring ^ and $.
func literal(re *syntax.Regexp) (string, bool) {
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	var b strings.Builder
	for _, s := range subs {
		switch {
		case s.Op == syntax.OpBeginText || s.Op == syntax.OpEndText:
		case s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0:
			b.WriteString(string(s.Rune))
		default:
			return "", false
		}
	}
	return b.String(), true
}

// unreachable warns about rules after an empty match, which matches every
// request.
func unreachable(rules []rule) []string {
	for i := range rules {
		if len(rules[i].checks) == 0 && i < len(rules)-1 {
			return []string{fmt.Sprintf("%s: an empty match matches every request; the %d rule(s) after it are never reached",
				cfgerr.Key([]string{"acl", strconv.Itoa(i), "match"}), len(rules)-1-i)}
		}
	}
	return nil
}
