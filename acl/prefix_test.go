package acl

import (
	"fmt"
	"testing"
)

// TestNamePrefixSkipsOnlyNonMatches checks the quick reject of Decide: a
// rule passed over because the name lacks its literal prefix must be one
// its checks would have refused.
func TestNamePrefixSkipsOnlyNonMatches(t *testing.T) {
	patterns := []string{"a", "ab", "a/b", "a/*", "a*", "*a", "a?c", "a[bc]d", `a\*b`, "ns/**", "**/b", "a/**/b", "**", "${account}/**", "", "team/app", "team/*/x", "${account}/*", "x-${labels:g}/*"}
	names := []string{"", "a", "ab", "abc", "a/b", "a/bc", "a*b", "acd", "abd", "a?c", "ba", "ns/x/y", "team/app", "team/app2", "team/q/x", "alice/x", "x-ops/y", "é"}
	matched := 0
	for _, pattern := range patterns {
		rules := []Rule{{Match: &Match{Name: str(pattern)}, Actions: acts("pull")}}
		a, ref := mustCompile(t, rules), mustCompile(t, rules)
		ref.rules[0].namePrefix = ""
		for _, name := range names {
			req := Request{Account: "alice", Type: "repository", Name: name, Labels: map[string][]string{"g": {"ops"}}, Actions: pull}
			got, want := a.Decide(&req), ref.Decide(&req)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("name pattern %q, name %q: %+v, without the prefix check %+v", pattern, name, got, want)
			}
			if got.Matched {
				matched++
			}
		}
	}
	if matched < len(patterns) {
		t.Fatalf("only %d matches: the cases do not exercise the patterns", matched)
	}
}
