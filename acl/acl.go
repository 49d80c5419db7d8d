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
//   - a plain string is a glob with path.Match rules ("*" does not cross "/");
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
	logger   *slog.Logger
	cache    *regexCache

	// byAccount holds, per literal account, the indexes of the rules whose
	// account is exactly that literal; generic holds every other rule.
	// Decide merges the request account's bucket with generic in index
	// order, so first-match order is kept while most rules are skipped.
	byAccount map[string][]int32
	generic   []int32
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

// withoutIndex makes Decide scan all rules linearly, for tests that check
// the index against the plain scan and for benchmarks.
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
// rules, …) are logged and kept for Warnings.
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
		r, err := compileRule(i, &rules[i], &a.warnings)
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
	for i := range a.rules {
		acc := a.rules[i].account
		if !o.noIndex && acc != nil && acc.kind == kindLiteral {
			a.byAccount[acc.lit] = append(a.byAccount[acc.lit], int32(i))
		} else {
			a.generic = append(a.generic, int32(i))
		}
	}
	return a, nil
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

// Decide returns the decision of the first rule matching req, or a Decision
// with Matched false and Rule -1 when none does.
func (a *ACL) Decide(req *Request) Decision {
	none := Decision{Rule: -1, Actions: []string{}}
	if a == nil || req == nil {
		return none
	}
	e := env{req: req, ip: req.IP.Unmap().WithZone(""), cache: a.cache}
	bucket, generic := a.byAccount[req.Account], a.generic
	for len(bucket) > 0 || len(generic) > 0 {
		var k int32
		if len(generic) == 0 || (len(bucket) > 0 && bucket[0] < generic[0]) {
			k, bucket = bucket[0], bucket[1:]
		} else {
			k, generic = generic[0], generic[1:]
		}
		r := &a.rules[k]
		if !strings.HasPrefix(req.Name, r.namePrefix) {
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
