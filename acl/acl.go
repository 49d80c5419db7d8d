// Package acl is Gatehouse's ordered access-control list: the `acl:` section
// of auth_config.yml, with cesanta/docker_auth's match syntax and semantics
// and without its crash paths and injection holes.
//
// Rules are tried in order and the first whose match fits a request decides
// it. The granted actions are the requested ones that the rule lists; a rule
// listing "*" grants everything requested, and a rule with `actions: []` is
// an explicit deny that stops the evaluation. When no rule matches, the
// Decision says so and the caller denies.
//
// Match fields (account, type, name, service and label values) are patterns:
//
//   - a plain string is a glob with path.Match rules ("*" does not cross "/"),
//     except that a "**" path segment matches any number of segments:
//     "alice/**" matches "alice/charts/app" (docker_auth reads "**" as "*");
//   - a string between slashes, "/…/", is an RE2 regular expression which, as
//     in docker_auth, is not anchored: "/admin/" matches "notadmin" too.
//     Compile warns about every regex without ^ and $;
//   - placeholders ${account}, ${type}, ${name}, ${service}, ${labels:KEY}
//     and regex captures ${account:N}, ${type:N}, ${name:N}, ${service:N}
//     are replaced by the request's values. Every substituted value is
//     quoted (a glob escape or a regex escape), labels included, so an
//     account named "*" or "a.b" matches only itself.
//
// A pattern with ${labels:KEY} placeholders is tried with every value of
// each label; with several label keys, with every combination of their
// values, up to MaxLabelCombinations per pattern and value matched.
//
// Compile validates and compiles everything once; Decide parses nothing, is
// safe for concurrent use and never fails or panics.
package acl

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// MaxLabelCombinations bounds how many combinations of label values one
// pattern with ${labels:KEY} placeholders tries against one value. Beyond
// it the pattern does not match (fail closed) and Decide logs at debug level.
const MaxLabelCombinations = 256

// Match selects requests; a nil field matches anything.
type Match struct {
	// Account is a pattern for the authenticated account ("" is anonymous).
	Account *string `yaml:"account,omitempty" json:"account,omitempty" bson:"account,omitempty"`
	// Type is a pattern for the scope's resource type (repository, registry).
	Type *string `yaml:"type,omitempty" json:"type,omitempty" bson:"type,omitempty"`
	// Name is a pattern for the scope's resource name (alice/app, catalog).
	Name *string `yaml:"name,omitempty" json:"name,omitempty" bson:"name,omitempty"`
	// Service is a pattern for the requested service.
	Service *string `yaml:"service,omitempty" json:"service,omitempty" bson:"service,omitempty"`
	// IP is a single IP address or a CIDR, IPv4 or IPv6.
	IP *string `yaml:"ip,omitempty" json:"ip,omitempty" bson:"ip,omitempty"`
	// Labels maps a label key to a pattern: every key must be present with
	// at least one value the pattern matches.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty" bson:"labels,omitempty"`
}

// Rule is one entry of the `acl:` list as written in YAML.
type Rule struct {
	// Match is required; an empty match ({}) matches every request.
	Match *Match `yaml:"match" json:"match" bson:"match"`
	// Actions is required; [] denies, ["*"] grants everything requested.
	Actions *[]string `yaml:"actions" json:"actions" bson:"actions"`
	// Comment is free text reported with the Decision.
	Comment string `yaml:"comment,omitempty" json:"comment,omitempty" bson:"comment,omitempty"`
}

// Request is what one requested scope is decided on.
type Request struct {
	Account, Type, Name, Service string
	// IP is the client address, the zero value when unknown; then a rule
	// constrained by ip does not match. IPv4-mapped IPv6 addresses are
	// compared as IPv4.
	IP netip.Addr
	// Labels are the account's labels from the authenticator.
	Labels map[string][]string
	// Actions are the requested actions, as parsed from the scope; they may
	// include "*", "delete" and actions no rule knows.
	Actions []string
}

// Decision is the outcome for one Request.
type Decision struct {
	// Matched is false when no rule matched (the caller may consult another
	// authorizer, else deny).
	Matched bool
	// Rule is the index of the deciding rule in the list, -1 when none matched.
	Rule int
	// Comment is the deciding rule's comment.
	Comment string
	// Actions are the granted actions: the requested ones the rule allows,
	// sorted and deduplicated; never nil (an empty slice when nothing).
	Actions []string
}

// ACL is a compiled, immutable list of rules. Its methods are safe for
// concurrent use; a nil *ACL matches nothing.
type ACL struct {
	rules    []rule
	warnings []string
	notices  []string
	logger   *slog.Logger
	cache    *regexCache

	// The index. byAccount holds, per literal account, the indexes of the
	// rules whose account is exactly that literal. The other rules are
	// held by the text every name they match starts with, byPrefix (per
	// non-empty name prefix), or else ends with, bySuffix, or else
	// contains, byInfix (by one 3-byte piece of that text: the piece
	// fewest such rules share); anyName holds the rest. Decide merges the
	// request account's bucket, anyName and the lists of the name's own
	// prefixes, suffixes and 3-byte pieces in index order, so first-match
	// order is kept while most rules are never looked at.
	byAccount map[string][]int32
	byPrefix  affixIndex
	bySuffix  affixIndex
	byInfix   map[string][]int32
	anyName   []int32
}

// infixKey is the length of byInfix's keys; a rule's infix must be at
// least this long to be indexed by it.
const infixKey = 3

// affixIndex holds rule indexes by a name prefix or suffix.
type affixIndex struct {
	lists map[string][]int32
	lens  []int // the distinct lengths of the keys, ascending
}

func (x *affixIndex) add(affix string, rule int32) {
	if x.lists == nil {
		x.lists = make(map[string][]int32)
	}
	if _, seen := x.lists[affix]; !seen && !slices.Contains(x.lens, len(affix)) {
		x.lens = append(x.lens, len(affix))
		slices.Sort(x.lens)
	}
	x.lists[affix] = append(x.lists[affix], rule)
}

// appendLists appends the lists of the affixes of name that key: its
// prefixes, or with suffix its suffixes.
func (x *affixIndex) appendLists(lists [][]int32, name string, suffix bool) [][]int32 {
	for _, n := range x.lens {
		if n > len(name) {
			break
		}
		key := name[:n]
		if suffix {
			key = name[len(name)-n:]
		}
		if l := x.lists[key]; len(l) > 0 {
			lists = append(lists, l)
		}
	}
	return lists
}

// Option configures Compile.
type Option func(*options)

type options struct {
	logger  *slog.Logger
	noIndex bool // tests and benchmarks: scan every rule
}

// WithLogger sets where load-time warnings (and debug notes at decision
// time) go; the default discards them. A nil logger discards too.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// withoutIndex makes Decide scan all rules linearly and run every rule's
// checks (no quick rejects by name prefix, suffix or infix), for tests that
// check the index against the plain scan and for benchmarks.
func withoutIndex() Option {
	return func(o *options) { o.noIndex = true }
}

// regexCacheSize bounds the regexes built from placeholder substitutions
// that one ACL keeps compiled.
const regexCacheSize = 1024

// Compile validates every rule and compiles its patterns once. All problems
// are returned together (errors.Join), each a *cfgerr.Error placed at its key
// relative to the acl list: "3","match","account" / "3","actions" /
// "3","match","labels","group". Warnings (unanchored regexes, unreachable
// rules, …) are logged and kept for Warnings; notices ("**" segments) are
// logged at info level and kept for Notices.
func Compile(rules []Rule, opts ...Option) (*ACL, error) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &ACL{
		rules:     make([]rule, 0, len(rules)),
		logger:    o.logger,
		cache:     newRegexCache(regexCacheSize),
		byAccount: make(map[string][]int32),
	}
	var errs []error
	for i := range rules {
		r, err := compileRule(i, &rules[i], &a.warnings, &a.notices)
		if err != nil {
			errs = append(errs, cfgerr.At(err, strconv.Itoa(i)))
			continue
		}
		a.rules = append(a.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a.warnings = append(a.warnings, unreachable(a.rules)...)
	for _, w := range a.warnings {
		a.logger.Warn("acl: " + w)
	}
	for _, n := range a.notices {
		a.logger.Info("acl: " + n)
	}
	a.index(o.noIndex)
	return a, nil
}

// index fills the rule index; with noIndex every rule goes to anyName.
func (a *ACL) index(noIndex bool) {
	var infixed []int32
	for i := range a.rules {
		r := &a.rules[i]
		switch {
		case noIndex:
			// The reference scan: no quick rejects either, every rule's
			// checks decide.
			r.namePrefix, r.nameSuffix, r.nameInfix = "", "", ""
			a.anyName = append(a.anyName, int32(i))
		case r.account != nil && r.account.kind == kindLiteral:
			a.byAccount[r.account.lit] = append(a.byAccount[r.account.lit], int32(i))
		case r.namePrefix != "":
			a.byPrefix.add(r.namePrefix, int32(i))
		case r.nameSuffix != "":
			a.bySuffix.add(r.nameSuffix, int32(i))
		case len(r.nameInfix) >= infixKey:
			infixed = append(infixed, int32(i))
		default:
			a.anyName = append(a.anyName, int32(i))
		}
	}
	if len(infixed) == 0 {
		return
	}
	// Each rule goes under the piece of its infix that the fewest of these
	// rules contain, so that a name's lookups bring few candidates.
	share := make(map[string]int)
	for _, i := range infixed {
		for _, k := range pieces(a.rules[i].nameInfix) {
			share[k]++
		}
	}
	a.byInfix = make(map[string][]int32)
	for _, i := range infixed {
		ks := pieces(a.rules[i].nameInfix)
		best := ks[0]
		for _, k := range ks[1:] {
			if share[k] < share[best] {
				best = k
			}
		}
		a.byInfix[best] = append(a.byInfix[best], i)
	}
}

// pieces returns the distinct infixKey-byte substrings of s, in order.
func pieces(s string) []string {
	var out []string
	for i := 0; i+infixKey <= len(s); i++ {
		if k := s[i : i+infixKey]; !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// candidates appends to lists the index lists that can hold a rule
// matching account and name: each is in ascending rule order.
func (a *ACL) candidates(lists [][]int32, account, name string) [][]int32 {
	if b := a.byAccount[account]; len(b) > 0 {
		lists = append(lists, b)
	}
	if len(a.anyName) > 0 {
		lists = append(lists, a.anyName)
	}
	lists = a.byPrefix.appendLists(lists, name, false)
	lists = a.bySuffix.appendLists(lists, name, true)
	if len(a.byInfix) == 0 {
		return lists
	}
	n := len(lists)
	for i := 0; i+infixKey <= len(name); i++ {
		l := a.byInfix[name[i:i+infixKey]]
		// A piece that occurs twice in the name would bring its list twice.
		if len(l) > 0 && !slices.ContainsFunc(lists[n:], func(m []int32) bool { return &m[0] == &l[0] }) {
			lists = append(lists, l)
		}
	}
	return lists
}

// Len returns the number of rules.
func (a *ACL) Len() int {
	if a == nil {
		return 0
	}
	return len(a.rules)
}

// Warnings returns the load-time warnings, each prefixed with its key, such
// as `acl[2].match.account: regex "/admin/" is not anchored; …`.
func (a *ACL) Warnings() []string {
	if a == nil {
		return nil
	}
	return slices.Clone(a.warnings)
}

// Notices returns load-time notes about intended differences from
// docker_auth, each prefixed with its key: today, every glob with a "**"
// path segment. They are logged at info level.
func (a *ACL) Notices() []string {
	if a == nil {
		return nil
	}
	return slices.Clone(a.notices)
}

// Decide returns the decision of the first rule matching req, or a Decision
// with Matched false and Rule -1 when none does.
func (a *ACL) Decide(req *Request) Decision {
	none := Decision{Rule: -1, Actions: []string{}}
	if a == nil || req == nil {
		return none
	}
	e := env{req: req, ip: req.IP.Unmap().WithZone(""), cache: a.cache}
	var buf [8][]int32
	lists := a.candidates(buf[:0], req.Account, req.Name)
	for {
		// The smallest head of the lists is the next rule in order.
		next := -1
		for i, l := range lists {
			if len(l) > 0 && (next < 0 || l[0] < lists[next][0]) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		k := lists[next][0]
		lists[next] = lists[next][1:]
		r := &a.rules[k]
		if !strings.HasPrefix(req.Name, r.namePrefix) || !strings.HasSuffix(req.Name, r.nameSuffix) ||
			(r.nameInfix != "" && !strings.Contains(req.Name, r.nameInfix)) {
			continue // cannot match: most rules of a long list end here
		}
		if r.matches(&e) {
			a.noteCapped(&e, int(k))
			return Decision{Matched: true, Rule: int(k), Comment: r.comment, Actions: r.actions.grant(req.Actions)}
		}
	}
	a.noteCapped(&e, -1)
	return none
}

// noteCapped logs at debug level when a label placeholder pattern gave up
// after MaxLabelCombinations.
func (a *ACL) noteCapped(e *env, decided int) {
	if e.capped {
		a.logger.Debug("acl: label placeholder combinations capped", "max", MaxLabelCombinations,
			"account", e.req.Account, "name", e.req.Name, "rule", decided)
	}
}

// actionSet is a rule's actions.
type actionSet struct {
	all  bool     // the rule lists "*"
	list []string // sorted, deduplicated, when !all
}

func newActionSet(actions []string) actionSet {
	if slices.Contains(actions, "*") {
		return actionSet{all: true}
	}
	list := slices.Clone(actions)
	slices.Sort(list)
	return actionSet{list: slices.Compact(list)}
}

// grant returns requested ∩ the set, sorted and deduplicated, never nil.
// A requested "*" is granted only by a rule listing "*".
func (s *actionSet) grant(requested []string) []string {
	out := make([]string, 0, len(requested))
	for _, act := range requested {
		if act == "" {
			continue
		}
		if s.all {
			out = append(out, act)
		} else if _, ok := slices.BinarySearch(s.list, act); ok {
			out = append(out, act)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
