package acl

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sync"
	"testing"
)

func str(s string) *string { return &s }

func acts(a ...string) *[]string {
	if a == nil {
		a = []string{}
	}
	return &a
}

// one is a single-rule ACL.
func one(m Match, actions ...string) []Rule {
	return []Rule{{Match: &m, Actions: acts(actions...)}}
}

func mustCompile(t testing.TB, rules []Rule, opts ...Option) *ACL {
	t.Helper()
	a, err := Compile(rules, opts...)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return a
}

var (
	pullPush = []string{"pull", "push"}
	pull     = []string{"pull"}
	nothing  = []string{}
)

func grant(rule int, actions ...string) Decision {
	if actions == nil {
		actions = []string{}
	}
	return Decision{Matched: true, Rule: rule, Actions: actions}
}

var noMatch = Decision{Rule: -1, Actions: []string{}}

func TestDecide(t *testing.T) {
	ip := netip.MustParseAddr
	labels := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	tests := []struct {
		name  string
		rules []Rule
		req   Request
		want  Decision
	}{
		// Literals and globs.
		{"literal account", one(Match{Account: str("alice")}, "pull"), Request{Account: "alice", Actions: pullPush}, grant(0, "pull")},
		{"literal account mismatch", one(Match{Account: str("alice")}, "pull"), Request{Account: "bob", Actions: pull}, noMatch},
		{"empty account is anonymous", one(Match{Account: str("")}, "pull"), Request{Account: "", Actions: pull}, grant(0, "pull")},
		{"empty account not a user", one(Match{Account: str("")}, "pull"), Request{Account: "alice", Actions: pull}, noMatch},
		{"glob star", one(Match{Name: str("alice/*")}, "pull"), Request{Name: "alice/app", Actions: pull}, grant(0, "pull")},
		{"glob star does not cross slash", one(Match{Name: str("alice/*")}, "pull"), Request{Name: "alice/team/app", Actions: pull}, noMatch},
		{"glob question mark", one(Match{Name: str("app?")}, "pull"), Request{Name: "app1", Actions: pull}, grant(0, "pull")},
		{"glob class", one(Match{Account: str("[a-c]*")}, "pull"), Request{Account: "dave", Actions: pull}, noMatch},
		{"glob escaped star is literal", one(Match{Name: str(`a\*`)}, "pull"), Request{Name: "ab", Actions: pull}, noMatch},
		{"missing keys match anything", one(Match{Type: str("repository")}, "pull"), Request{Account: "x", Type: "repository", Name: "y/z", Service: "s", Actions: pull}, grant(0, "pull")},
		{"service", one(Match{Service: str("registry.local")}, "pull"), Request{Service: "other", Actions: pull}, noMatch},
		{"catalog", one(Match{Type: str("registry"), Name: str("catalog")}, "*"), Request{Type: "registry", Name: "catalog", Actions: []string{"*"}}, grant(0, "*")},

		// "**" path segments (doublestar_test.go has more).
		{"double star nested", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "alice", Name: "alice/charts/mychart", Actions: pullPush}, grant(0, "pull", "push")},
		{"double star one level", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "alice", Name: "alice/app", Actions: pullPush}, grant(0, "pull", "push")},
		{"double star other namespace", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "alice", Name: "bob/x/y", Actions: pullPush}, noMatch},
		{"double star not the namespace itself", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "alice", Name: "alice", Actions: pull}, noMatch},
		{"double star account quoted", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "**", Name: "alice/x/y", Actions: pull}, noMatch},
		{"double star account star quoted", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "a*", Name: "ab/x/y", Actions: pull}, noMatch},
		{"double star account literal", one(Match{Name: str("${account}/**")}, "*"), Request{Account: "a*", Name: "a*/x/y", Actions: pull}, grant(0, "pull")},
		{"double star beside a placeholder is one star", one(Match{Name: str("${account}**")}, "*"), Request{Account: "a/", Name: "a/b/c", Actions: pull}, noMatch},
		{"double star start", one(Match{Name: str("**/sig")}, "pull"), Request{Name: "sig", Actions: pull}, grant(0, "pull")},
		{"double star start nested", one(Match{Name: str("**/sig")}, "pull"), Request{Name: "a/b/sig", Actions: pull}, grant(0, "pull")},
		{"double star middle", one(Match{Name: str("team/**/app")}, "pull"), Request{Name: "team/a/b/app", Actions: pull}, grant(0, "pull")},
		{"double star middle zero segments", one(Match{Name: str("team/**/app")}, "pull"), Request{Name: "team/app", Actions: pull}, grant(0, "pull")},
		{"double star middle mismatch", one(Match{Name: str("team/**/app")}, "pull"), Request{Name: "team/a/xapp", Actions: pull}, noMatch},
		{"double star inside a segment is one star", one(Match{Name: str("team/a**")}, "pull"), Request{Name: "team/ab/c", Actions: pull}, noMatch},
		{"double star label value", one(Match{Name: str("${labels:group}/**")}, "*"), Request{Name: "ops/x/y", Labels: labels("group", "dev", "group", "ops"), Actions: pull}, grant(0, "pull")},
		{"double star capture", one(Match{Account: str(`/^(\w+)-ci$/`), Name: str("${account:1}/**")}, "*"), Request{Account: "alice-ci", Name: "alice/charts/x", Actions: pull}, grant(0, "pull")},
		{"regex stars unaffected", one(Match{Name: str(`/^alice\/\*\*$/`)}, "pull"), Request{Name: "alice/x/y", Actions: pull}, noMatch},
		{"regex stars literal", one(Match{Name: str(`/^alice\/\*\*$/`)}, "pull"), Request{Name: "alice/**", Actions: pull}, grant(0, "pull")},

		// Regexes (unanchored, as in docker_auth).
		{"regex unanchored", one(Match{Account: str("/admin/")}, "*"), Request{Account: "notadmin", Actions: pull}, grant(0, "pull")},
		{"regex anchored", one(Match{Account: str("/^admin$/")}, "*"), Request{Account: "notadmin", Actions: pull}, noMatch},
		{"regex .+ excludes anonymous", one(Match{Account: str("/.+/")}, "*"), Request{Account: "", Actions: pull}, noMatch},
		{"regex flags", one(Match{Account: str("/(?i)^ADMIN$/")}, "*"), Request{Account: "admin", Actions: pull}, grant(0, "pull")},
		{"empty regex matches all", one(Match{Name: str("//")}, "pull"), Request{Name: "", Actions: pull}, grant(0, "pull")},

		// Placeholders and quoting.
		{"account placeholder", one(Match{Name: str("${account}/*")}, "*"), Request{Account: "alice", Name: "alice/app", Actions: pullPush}, grant(0, "pull", "push")},
		{"account placeholder other namespace", one(Match{Name: str("${account}/*")}, "*"), Request{Account: "bob", Name: "alice/app", Actions: pullPush}, noMatch},
		{"account star matches only itself", one(Match{Name: str("${account}/*")}, "*"), Request{Account: "*", Name: "alice/app", Actions: pull}, noMatch},
		{"account star literal", one(Match{Name: str("${account}/*")}, "*"), Request{Account: "*", Name: "*/app", Actions: pull}, grant(0, "pull")},
		{"account class quoted", one(Match{Name: str("${account}")}, "*"), Request{Account: "[a-z]", Name: "b", Actions: pull}, noMatch},
		{"account question quoted", one(Match{Name: str("${account}-*")}, "*"), Request{Account: "a?", Name: "ab-x", Actions: pull}, noMatch},
		{"account dot quoted in regex", one(Match{Name: str(`/^${account}/[^/]+$/`)}, "*"), Request{Account: "a.b", Name: "axb/app", Actions: pull}, noMatch},
		{"account dot literal in regex", one(Match{Name: str(`/^${account}/[^/]+$/`)}, "*"), Request{Account: "a.b", Name: "a.b/app", Actions: pull}, grant(0, "pull")},
		{"account hyphen quoted in class", one(Match{Name: str(`/^[${account}]+$/`)}, "*"), Request{Account: "a-z", Name: "b", Actions: pull}, noMatch},
		{"account backslash quoted", one(Match{Name: str("${account}/*")}, "*"), Request{Account: `a\`, Name: `a\/x`, Actions: pull}, grant(0, "pull")},
		{"service and type placeholders", one(Match{Name: str("${service}/${type}")}, "*"), Request{Service: "reg", Type: "repository", Name: "reg/repository", Actions: pull}, grant(0, "pull")},

		// Regex captures.
		{"capture", one(Match{Account: str(`/^(\w+)-dev$/`), Name: str("${account:1}/*")}, "*"), Request{Account: "alice-dev", Name: "alice/app", Actions: pullPush}, grant(0, "pull", "push")},
		{"capture other namespace", one(Match{Account: str(`/^(\w+)-dev$/`), Name: str("${account:1}/*")}, "*"), Request{Account: "alice-dev", Name: "bob/app", Actions: pull}, noMatch},
		{"capture regex fails", one(Match{Account: str(`/^(\w+)-dev$/`), Name: str("${account:1}/*")}, "*"), Request{Account: "alice-prod", Name: "alice/app", Actions: pull}, noMatch},
		{"capture quoted into regex", one(Match{Account: str(`/^(.+)-dev$/`), Name: str(`/^${account:1}-dev\//`)}, "*"), Request{Account: "a.-dev", Name: "ab-dev/x", Actions: pull}, noMatch},
		{"capture into regex match", one(Match{Account: str(`/^(\w+)-dev$/`), Name: str(`/^${account:1}-dev\//`)}, "*"), Request{Account: "al_1-dev", Name: "al_1-dev/x", Actions: pull}, grant(0, "pull")},
		{"capture group zero", one(Match{Account: str(`/[a-z]+/`), Name: str("${account:0}/*")}, "*"), Request{Account: "42bob!", Name: "bob/x", Actions: pull}, grant(0, "pull")},
		{"capture unmatched group is empty", one(Match{Account: str(`/^(a)?(b+)$/`), Name: str("${account:1}x")}, "*"), Request{Account: "bb", Name: "x", Actions: pull}, grant(0, "pull")},
		{"capture value quoted", one(Match{Account: str(`/^(.+)-dev$/`), Name: str("${account:1}/*")}, "*"), Request{Account: "*-dev", Name: "foo/app", Actions: pull}, noMatch},
		{"capture of name in label", one(Match{Name: str(`/^(\w+)\//`), Labels: map[string]string{"team": "${name:1}"}}, "*"), Request{Name: "web/app", Labels: labels("team", "web"), Actions: pull}, grant(0, "pull")},

		// IP addresses.
		{"ipv4", one(Match{IP: str("10.1.2.3")}, "pull"), Request{IP: ip("10.1.2.3"), Actions: pull}, grant(0, "pull")},
		{"ipv4 mismatch", one(Match{IP: str("10.1.2.3")}, "pull"), Request{IP: ip("10.1.2.4"), Actions: pull}, noMatch},
		{"ipv4 cidr", one(Match{IP: str("10.0.0.0/8")}, "pull"), Request{IP: ip("10.200.0.1"), Actions: pull}, grant(0, "pull")},
		{"ipv6 cidr", one(Match{IP: str("2001:db8::/32")}, "pull"), Request{IP: ip("2001:db8:1::5"), Actions: pull}, grant(0, "pull")},
		{"ipv6 single", one(Match{IP: str("::1")}, "pull"), Request{IP: ip("::1"), Actions: pull}, grant(0, "pull")},
		{"ipv6 rule ipv4 request", one(Match{IP: str("::/0")}, "pull"), Request{IP: ip("10.0.0.1"), Actions: pull}, noMatch},
		{"4in6 request", one(Match{IP: str("10.0.0.0/8")}, "pull"), Request{IP: ip("::ffff:10.1.2.3"), Actions: pull}, grant(0, "pull")},
		{"4in6 rule", one(Match{IP: str("::ffff:10.0.0.0/104")}, "pull"), Request{IP: ip("10.1.2.3"), Actions: pull}, grant(0, "pull")},
		{"4in6 single rule", one(Match{IP: str("::ffff:10.0.0.1")}, "pull"), Request{IP: ip("10.0.0.1"), Actions: pull}, grant(0, "pull")},
		{"unknown ip", one(Match{IP: str("0.0.0.0/0")}, "pull"), Request{Actions: pull}, noMatch},
		{"zoned request ip", one(Match{IP: str("fe80::/10")}, "pull"), Request{IP: ip("fe80::1%eth0"), Actions: pull}, grant(0, "pull")},

		// Labels.
		{"label or across values", one(Match{Labels: map[string]string{"group": "ops"}}, "*"), Request{Labels: labels("group", "dev", "group", "ops"), Actions: pull}, grant(0, "pull")},
		{"label and across keys", one(Match{Labels: map[string]string{"group": "ops", "tier": "prod"}}, "*"), Request{Labels: labels("group", "ops"), Actions: pull}, noMatch},
		{"label and both", one(Match{Labels: map[string]string{"group": "ops", "tier": "prod"}}, "*"), Request{Labels: labels("group", "ops", "tier", "prod"), Actions: pull}, grant(0, "pull")},
		{"label glob", one(Match{Labels: map[string]string{"group": "team-*"}}, "*"), Request{Labels: labels("group", "team-a"), Actions: pull}, grant(0, "pull")},
		{"label regex", one(Match{Labels: map[string]string{"group": "/^(ops|sre)$/"}}, "*"), Request{Labels: labels("group", "sre"), Actions: pull}, grant(0, "pull")},
		{"label lacking key", one(Match{Labels: map[string]string{"group": "*"}}, "*"), Request{Actions: pull}, noMatch},
		{"label account placeholder", one(Match{Labels: map[string]string{"owner": "${account}"}}, "*"), Request{Account: "al", Labels: labels("owner", "al"), Actions: pull}, grant(0, "pull")},
		{"labels placeholder second value", one(Match{Name: str("${labels:group}/*")}, "*"), Request{Name: "b/app", Labels: labels("group", "a", "group", "b"), Actions: pull}, grant(0, "pull")},
		{"labels placeholder no value fits", one(Match{Name: str("${labels:group}/*")}, "*"), Request{Name: "c/app", Labels: labels("group", "a", "group", "b"), Actions: pull}, noMatch},
		{"labels placeholder missing label", one(Match{Name: str("${labels:group}/*")}, "*"), Request{Name: "/app", Actions: pull}, noMatch},
		{"labels combination", one(Match{Name: str("${labels:project}-${labels:tier}/*")}, "*"), Request{Name: "api-back/x", Labels: labels("project", "web", "project", "api", "tier", "front", "tier", "back"), Actions: pull}, grant(0, "pull")},
		{"labels combination mismatch", one(Match{Name: str("${labels:project}-${labels:tier}/*")}, "*"), Request{Name: "web-x/x", Labels: labels("project", "web", "project", "api", "tier", "front", "tier", "back"), Actions: pull}, noMatch},
		{"label repeated key same value", one(Match{Name: str("${labels:g}/${labels:g}")}, "*"), Request{Name: "a/b", Labels: labels("g", "a", "g", "b"), Actions: pull}, noMatch},
		{"label value star quoted", one(Match{Name: str("${labels:group}/*")}, "*"), Request{Name: "x/app", Labels: labels("group", "*"), Actions: pull}, noMatch},
		{"label value star literal", one(Match{Name: str("${labels:group}/*")}, "*"), Request{Name: "*/app", Labels: labels("group", "*"), Actions: pull}, grant(0, "pull")},
		{"label value regex quoted", one(Match{Name: str("/^${labels:group}$/")}, "*"), Request{Name: "abc", Labels: labels("group", ".*"), Actions: pull}, noMatch},
		{"label placeholder in label pattern", one(Match{Labels: map[string]string{"owner": "${labels:group}"}}, "*"), Request{Labels: labels("group", "a", "owner", "a"), Actions: pull}, grant(0, "pull")},

		// Order and actions.
		{"first match wins", []Rule{{Match: &Match{Account: str("alice")}, Actions: acts("pull")}, {Match: &Match{}, Actions: acts("*")}}, Request{Account: "alice", Actions: pullPush}, grant(0, "pull")},
		{"first match skips", []Rule{{Match: &Match{Account: str("bob")}, Actions: acts("pull")}, {Match: &Match{}, Actions: acts("*"), Comment: "all"}}, Request{Account: "alice", Actions: pullPush}, Decision{Matched: true, Rule: 1, Comment: "all", Actions: pullPush}},
		{"deny stops", []Rule{{Match: &Match{Account: str("bob")}, Actions: acts()}, {Match: &Match{}, Actions: acts("*")}}, Request{Account: "bob", Actions: pullPush}, grant(0)},
		{"star grants requested", one(Match{}, "*"), Request{Actions: []string{"push", "delete", "pull"}}, grant(0, "delete", "pull", "push")},
		{"requested star needs rule star", one(Match{}, "pull", "push"), Request{Actions: []string{"*"}}, grant(0)},
		{"star among others wins", one(Match{}, "pull", "*"), Request{Actions: []string{"push", "delete"}}, grant(0, "delete", "push")},
		{"intersection sorted dedup", one(Match{}, "push", "pull", "push"), Request{Actions: []string{"push", "delete", "pull", "push"}}, grant(0, "pull", "push")},
		{"unknown actions pass through star", one(Match{}, "*"), Request{Actions: []string{"frobnicate", "delete"}}, grant(0, "delete", "frobnicate")},
		{"delete listed", one(Match{}, "delete"), Request{Actions: []string{"delete", "pull"}}, grant(0, "delete")},
		{"nothing requested", one(Match{}, "*"), Request{}, grant(0)},
		{"empty requested action dropped", one(Match{}, "*"), Request{Actions: []string{"", "pull"}}, grant(0, "pull")},
		{"no rules", nil, Request{Account: "a", Actions: pull}, noMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, index := range []bool{true, false} {
				var opts []Option
				if !index {
					opts = append(opts, withoutIndex())
				}
				got := mustCompile(t, tt.rules, opts...).Decide(&tt.req)
				if got.Actions == nil {
					t.Errorf("index=%v: Actions is nil", index)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("index=%v: Decide = %+v, want %+v", index, got, tt.want)
				}
			}
		})
	}
}

// seedPolicy is the policy the examples and end-to-end tests use.
func seedPolicy() []Rule {
	return []Rule{
		{Match: &Match{Account: str("admin")}, Actions: acts("*"), Comment: "admin can do anything"},
		{Match: &Match{Account: str("/.+/"), Name: str("${account}/**")}, Actions: acts("*"), Comment: "users own ${account}/**"},
	}
}

func TestSeedPolicy(t *testing.T) {
	a := mustCompile(t, seedPolicy())
	tests := []struct {
		name, account, typ, repo string
		actions                  []string
		want                     Decision
	}{
		{"alice own repo", "alice", "repository", "alice/app", pullPush, Decision{Matched: true, Rule: 1, Comment: "users own ${account}/**", Actions: pullPush}},
		{"alice other repo", "alice", "repository", "bob/app", pullPush, noMatch},
		{"alice nested repo", "alice", "repository", "alice/charts/mychart", pullPush, Decision{Matched: true, Rule: 1, Comment: "users own ${account}/**", Actions: pullPush}},
		{"alice other nested repo", "alice", "repository", "bob/x/y", pullPush, noMatch},
		{"alice repo named after her", "alice", "repository", "alice", pullPush, noMatch},
		{"anonymous", "", "repository", "alice/app", pull, noMatch},
		{"anonymous own-looking repo", "", "repository", "/app", pull, noMatch},
		{"admin anything", "admin", "repository", "bob/app", []string{"push", "pull", "delete"}, Decision{Matched: true, Rule: 0, Comment: "admin can do anything", Actions: []string{"delete", "pull", "push"}}},
		{"admin catalog", "admin", "registry", "catalog", []string{"*"}, Decision{Matched: true, Rule: 0, Comment: "admin can do anything", Actions: []string{"*"}}},
		{"alice catalog", "alice", "registry", "catalog", []string{"*"}, noMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := a.Decide(&Request{Account: tt.account, Type: tt.typ, Name: tt.repo, Service: "registry", Actions: tt.actions})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
	// "/.+/" means the same anchored or not: the seed policy loads quietly.
	if w := a.Warnings(); len(w) != 0 {
		t.Errorf("Warnings = %q, want none", w)
	}
}

func TestNilSafety(t *testing.T) {
	var a *ACL
	if got := a.Decide(&Request{}); !reflect.DeepEqual(got, noMatch) {
		t.Errorf("nil ACL: %+v", got)
	}
	if a.Len() != 0 || a.Warnings() != nil {
		t.Error("nil ACL: Len or Warnings not empty")
	}
	b := mustCompile(t, seedPolicy())
	if got := b.Decide(nil); !reflect.DeepEqual(got, noMatch) {
		t.Errorf("nil request: %+v", got)
	}
	if b.Len() != 2 {
		t.Errorf("Len = %d, want 2", b.Len())
	}
}

// TestLabelCombinationCap checks that a search beyond MaxLabelCombinations
// fails closed.
func TestLabelCombinationCap(t *testing.T) {
	a := mustCompile(t, one(Match{Name: str("${labels:a}/${labels:b}")}, "pull"))
	vals := make([]string, 20)
	for i := range vals {
		vals[i] = fmt.Sprint(i)
	}
	req := func(name string) *Request {
		return &Request{Name: name, Labels: map[string][]string{"a": vals, "b": vals}, Actions: pull}
	}
	// Combinations are tried in order a[0]b[0], a[0]b[1], …: 12*20+15 = 255 is the last one tried.
	if got := a.Decide(req("12/15")); !got.Matched {
		t.Errorf("combination 255 not tried: %+v", got)
	}
	if got := a.Decide(req("12/16")); got.Matched {
		t.Errorf("combination 256 tried: %+v", got)
	}
}

// TestIndexMatchesLinearScan decides random requests against random rule
// lists with and without the account index.
func TestIndexMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	accounts := []string{"", "alice", "bob", "carol", "a.b", "*"}
	patterns := []string{"alice", "bob", "carol", "", "*", "/^b/", "${name}", "a*", "/.+/"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	for round := range 500 {
		rules := make([]Rule, 1+rng.IntN(30))
		for i := range rules {
			m := &Match{}
			if rng.IntN(4) > 0 {
				m.Account = str(pick(patterns))
			}
			if rng.IntN(2) == 0 {
				// Name prefixes of several lengths, shared and nested, and
				// names without one (placeholder, regex, leading glob).
				m.Name = str(pick([]string{"${account}/*", "x/*", "*/*", "x/app", "xy/*", "x", "x*", "xy/app",
					"team1/*", "te*", "/^x/", "x/app*", "[x]/*", "*/app", "*app", "*/app/v2", "[x]/app", "*y", "?/app",
					"*/z", "x*app", "*app*", "*/ap*", "?app*", "*eam1*", "*pp*v*", "*x[y]*", "*ap?/*", "*a\\pp*", "**app**",
					"x/**", "**/app", "**/v2", "x/**/v2", "**/app/**", "**", "${account}/**", "**/**/app", "**/ap*", "*/**/z"}))
			}
			rules[i] = Rule{Match: m, Actions: acts(pick([]string{"pull", "push", "*"}))}
			if rng.IntN(5) == 0 {
				rules[i].Actions = acts() // deny
			}
		}
		indexed, linear := mustCompile(t, rules), mustCompile(t, rules, withoutIndex())
		for range 20 {
			acc := pick(accounts)
			req := &Request{Account: acc, Name: pick([]string{acc + "/app", "x/app", "y/z", "xy/app", "x", "", "te/a",
				"team1/z", "x/app/v2", "xy", "app", "appapp/x", "myteam1x", "z/apps/v", "xy/ap1/z", acc + "/x/app", "v2", "x/v2", "a/app/b"}), Actions: pullPush}
			if g, w := indexed.Decide(req), linear.Decide(req); !reflect.DeepEqual(g, w) {
				t.Fatalf("round %d: %+v: indexed %+v, linear %+v", round, req, g, w)
			}
		}
	}
}

// TestConcurrentDecide runs Decide from many goroutines (for -race),
// exercising the regex cache.
func TestConcurrentDecide(t *testing.T) {
	a := mustCompile(t, []Rule{
		{Match: &Match{Name: str(`/^${account}\/[a-z]+$/`)}, Actions: acts("*")},
		{Match: &Match{Name: str(`/^${labels:group}\//`)}, Actions: acts("pull")},
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				acc := fmt.Sprintf("user%d", (g*500+i)%700)
				d := a.Decide(&Request{Account: acc, Name: acc + "/app", Actions: pullPush})
				if !d.Matched || d.Rule != 0 || len(d.Actions) != 2 {
					t.Errorf("%s: %+v", acc, d)
					return
				}
				d = a.Decide(&Request{Account: acc, Name: "team/app", Labels: map[string][]string{"group": {"team"}}, Actions: pullPush})
				if d.Rule != 1 || !reflect.DeepEqual(d.Actions, pull) {
					t.Errorf("%s team: %+v", acc, d)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := a.cache.len(); n > regexCacheSize {
		t.Errorf("regex cache holds %d entries, more than %d", n, regexCacheSize)
	}
}

// TestInfixIndex checks the index of rules found by a run of literal text
// inside their name glob (no literal start or end) against the plain scan,
// on policies made mostly of such rules.
func TestInfixIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := []string{"*app*", "?app*", "*ap?*", "*pp*v*", "*x[y]*", "*a\\pp*", "**app**", "*eam1*",
		"*team1*", "*ea*", "*apa*", "*", "x*", "*x", "*app*x*", "**/app", "**/apa*", "**/**/team1", "**/pp/**", "*/**/app",
		"/app/", "/^app/", "/eam1$/", "/(?i)APP/", "/app?x/", "/ap+/", "/team1|xy/", "/^x.z$/", "/\\Aapp/", "/pa?p/"}
	names := []string{"app", "xapp", "appx", "apxv", "ppv", "myteam1", "team1x", "xy", "xyz", "apapa", "a", "",
		"appxapp", "team12", "eam1eam1", "x/app", "y/x/app", "pp/x", "a/pp/x", "team1", "apax"}
	for round := range 300 {
		rules := make([]Rule, 1+rng.IntN(12))
		for i := range rules {
			rules[i] = Rule{Match: &Match{Name: str(shapes[rng.IntN(len(shapes))])}, Actions: acts("pull")}
		}
		indexed, linear := mustCompile(t, rules), mustCompile(t, rules, withoutIndex())
		for _, n := range names {
			req := &Request{Account: "alice", Name: n, Actions: pullPush}
			if g, w := indexed.Decide(req), linear.Decide(req); !reflect.DeepEqual(g, w) {
				t.Fatalf("round %d: %+v: indexed %+v, linear %+v", round, req, g, w)
			}
		}
	}
	// The index is in use: "*team1*" rules are not in anyName.
	a := mustCompile(t, []Rule{{Match: &Match{Name: str("*team1*")}, Actions: acts("pull")}})
	if len(a.anyName) != 0 || len(a.byInfix) != 1 {
		t.Fatalf("*team1* not indexed by infix: anyName %v, byInfix %v", a.anyName, a.byInfix)
	}
}

func TestLiteralInfix(t *testing.T) {
	tests := []struct{ glob, want string }{ // globs and regexes
		{"*team42*", "team42"},
		{"*a*bcd*e*", "bcd"},
		{"?xyz?", "xyz"},
		{"*ab[cd]efgh*", "ab"}, // runs after a class are not parsed
		{`*ab\*cdefg*`, "ab"},  // nor after an escape
		{"**", ""},
		{"**/team42*", "team42"}, // not "/team42": "**/" may match nothing
		{"**/**/team42*", "team42"},
		{"/^team42-.+$/", "team42-"},
		{"/team42/", "team42"},
		{"/(?i)team42/", ""},
		{"/abc|abd/", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.glob, func(t *testing.T) {
			a := mustCompile(t, []Rule{{Match: &Match{Name: str(tt.glob)}, Actions: acts("pull")}})
			if got := a.rules[0].nameInfix; got != tt.want {
				t.Fatalf("infix %q, want %q", got, tt.want)
			}
		})
	}
}
