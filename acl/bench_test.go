package acl

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// benchPolicy is a realistic n-rule ACL: an admin rule, a few regex and
// placeholder rules, per-user namespace rules with literal accounts (the
// bulk), and a public rule at the end.
func benchPolicy(n int) (rules []Rule, lastUser string) {
	rules = []Rule{
		{Match: &Match{Account: str("admin")}, Actions: acts("*")},
		{Match: &Match{Account: str(`/^ci-[a-z]+$/`), Name: str("ci/*")}, Actions: acts("pull")},
		{Match: &Match{Account: str(`/^(\w+)-dev$/`), Name: str("${account:1}-dev/*")}, Actions: acts("*")},
		{Match: &Match{Labels: map[string]string{"group": "/^(ops|sre)$/"}, Name: str("${labels:group}/*")}, Actions: acts("*")},
		{Match: &Match{IP: str("10.0.0.0/8"), Name: str("internal/*")}, Actions: acts("pull")},
	}
	for i := 0; len(rules) < n-1; i++ {
		lastUser = fmt.Sprintf("user%05d", i)
		rules = append(rules, Rule{Match: &Match{Account: str(lastUser), Name: str(lastUser + "/*")}, Actions: acts("pull", "push")})
	}
	rules = append(rules, Rule{Match: &Match{Name: str("public/*")}, Actions: acts("pull")})
	return rules, lastUser
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		rules, last := benchPolicy(n)
		requests := []struct {
			name string
			req  Request
		}{
			// The last per-user rule: near the end of the list.
			{"user-near-end", Request{Account: last, Type: "repository", Name: last + "/app", Service: "registry", Actions: pullPush}},
			// Falls through every rule to the public one.
			{"public-last", Request{Account: last, Type: "repository", Name: "public/base", Service: "registry", Actions: pull}},
			// No rule matches: an unknown account.
			{"no-match", Request{Account: "mallory", Type: "repository", Name: "x/y", Service: "registry", IP: netip.MustParseAddr("192.0.2.1"), Actions: pullPush}},
			// The capture placeholder rule.
			{"capture", Request{Account: "alice-dev", Type: "repository", Name: "alice-dev/app", Service: "registry", Actions: pullPush}},
			// The label placeholder rule, several label values.
			{"labels", Request{Account: "bob", Type: "repository", Name: "sre/tool", Service: "registry", Labels: map[string][]string{"group": {"dev", "ops", "sre"}}, Actions: pullPush}},
		}
		for _, mode := range []string{"indexed", "linear"} {
			var opts []Option
			if mode == "linear" {
				opts = append(opts, withoutIndex())
			}
			a := mustCompile(b, rules, opts...)
			for _, r := range requests {
				b.Run(fmt.Sprintf("rules=%d/%s/%s", n, mode, r.name), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if d := a.Decide(&r.req); r.name != "no-match" && !d.Matched {
							b.Fatalf("%+v", d)
						}
					}
				})
			}
		}
	}
}

func BenchmarkCompile10000(b *testing.B) {
	rules, _ := benchPolicy(10000)
	b.ReportAllocs()
	for b.Loop() {
		mustCompile(b, rules)
	}
}

// BenchmarkDecideLatency measures the distribution of single decisions on
// 10,000-rule policies, not only the mean: every Decide is timed on its own
// and the p50, p99 and p99.9 are reported (the two clock reads, ~40 ns,
// are included). "indexed" is benchPolicy as Compile builds it (literal
// accounts); "by-name" is 10,000 rules on names only ("team00042/*"),
// which the name-prefix index narrows; "by-suffix" 10,000 rules whose
// names start with a wildcard ("*/team00042"), narrowed by name suffix;
// "by-infix" 10,000 rules with neither ("*team00042*"), narrowed by a
// 3-byte piece of the text inside (name regexes with a literal start,
// "/^team00042-.+$/", are indexed the same way); "scan" 10,000
// case-insensitive name regexes ("/(?i)^team00042-.+$/"), which have no
// literal text to index: every request runs every rule, the worst case
// for the size.
//
//	go test -run '^$' -bench BenchmarkDecideLatency ./acl
func BenchmarkDecideLatency(b *testing.B) {
	rules, last := benchPolicy(10000)
	byName := make([]Rule, 0, 10000)
	bySuffix := make([]Rule, 0, 10000)
	byInfix := make([]Rule, 0, 10000)
	scan := make([]Rule, 0, 10000)
	for i := 0; len(byName) < 9999; i++ {
		byName = append(byName, Rule{Match: &Match{Name: str(fmt.Sprintf("team%05d/*", i))}, Actions: acts("pull", "push")})
		bySuffix = append(bySuffix, Rule{Match: &Match{Name: str(fmt.Sprintf("*/team%05d", i))}, Actions: acts("pull", "push")})
		byInfix = append(byInfix, Rule{Match: &Match{Name: str(fmt.Sprintf("*team%05d*", i))}, Actions: acts("pull", "push")})
		scan = append(scan, Rule{Match: &Match{Name: str(fmt.Sprintf("/(?i)^team%05d-.+$/", i))}, Actions: acts("pull", "push")})
	}
	byName = append(byName, Rule{Match: &Match{Name: str("public/*")}, Actions: acts("pull")})
	bySuffix = append(bySuffix, Rule{Match: &Match{Name: str("*/base")}, Actions: acts("pull")})
	byInfix = append(byInfix, Rule{Match: &Match{Name: str("*base*")}, Actions: acts("pull")})
	scan = append(scan, Rule{Match: &Match{Name: str("/(?i)^public-.+$/")}, Actions: acts("pull")})
	cases := []struct {
		name  string
		rules []Rule
		req   Request
	}{
		{"indexed/user-near-end", rules, Request{Account: last, Type: "repository", Name: last + "/app", Service: "registry", Actions: pullPush}},
		{"indexed/public-last", rules, Request{Account: last, Type: "repository", Name: "public/base", Service: "registry", Actions: pull}},
		{"indexed/no-match", rules, Request{Account: "mallory", Type: "repository", Name: "x/y", Service: "registry", IP: netip.MustParseAddr("192.0.2.1"), Actions: pullPush}},
		{"indexed/labels", rules, Request{Account: "bob", Type: "repository", Name: "sre/tool", Service: "registry", Labels: map[string][]string{"group": {"dev", "ops", "sre"}}, Actions: pullPush}},
		{"by-name/near-end", byName, Request{Account: "alice", Type: "repository", Name: "team09990/app", Service: "registry", Actions: pull}},
		{"by-name/last-rule", byName, Request{Account: "alice", Type: "repository", Name: "public/base", Service: "registry", Actions: pull}},
		{"by-name/no-match", byName, Request{Account: "alice", Type: "repository", Name: "x/y", Service: "registry", Actions: pullPush}},
		{"by-suffix/last-rule", bySuffix, Request{Account: "alice", Type: "repository", Name: "public/base", Service: "registry", Actions: pull}},
		{"by-suffix/no-match", bySuffix, Request{Account: "alice", Type: "repository", Name: "x/y", Service: "registry", Actions: pullPush}},
		{"by-infix/near-end", byInfix, Request{Account: "alice", Type: "repository", Name: "myteam09990", Service: "registry", Actions: pull}},
		{"by-infix/last-rule", byInfix, Request{Account: "alice", Type: "repository", Name: "database", Service: "registry", Actions: pull}},
		{"by-infix/no-match", byInfix, Request{Account: "alice", Type: "repository", Name: "x/y", Service: "registry", Actions: pullPush}},
		{"scan/last-rule", scan, Request{Account: "alice", Type: "repository", Name: "public-base", Service: "registry", Actions: pull}},
		{"scan/no-match", scan, Request{Account: "alice", Type: "repository", Name: "x/y", Service: "registry", Actions: pullPush}},
	}
	for _, c := range cases {
		a := mustCompile(b, c.rules)
		b.Run("rules=10000/"+c.name, func(b *testing.B) {
			durations := make([]time.Duration, 0, 1<<20)
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				a.Decide(&c.req)
				if len(durations) < cap(durations) {
					durations = append(durations, time.Since(t))
				}
			}
			slices.Sort(durations)
			at := func(q float64) float64 { return float64(durations[int(q*float64(len(durations)-1))]) }
			b.ReportMetric(at(0.50), "p50-ns")
			b.ReportMetric(at(0.99), "p99-ns")
			b.ReportMetric(at(0.999), "p99.9-ns")
		})
	}
}
