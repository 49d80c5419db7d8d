package acl

import (
	"fmt"
	"net/netip"
	"testing"
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
