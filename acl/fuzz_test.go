package acl

import (
	"slices"
	"testing"
)

// FuzzDecide: any pattern either fails to compile or decides any request
// without a panic, granting only actions that were requested.
func FuzzDecide(f *testing.F) {
	f.Add("${account}/*", "alice", "alice/app", "dev", "pull,push")
	f.Add("/^(\\w+)-dev$/", "bob-dev", "bob-dev", "ops", "*")
	f.Add("${labels:group}/*", "x", "dev/app", "dev", "pull")
	f.Add("[", "a", "b", "c", "pull")
	f.Add("/${name:1}/", "a", "b", "c", "push")
	f.Fuzz(func(t *testing.T, pattern, account, name, label, actions string) {
		acts := []string{"pull", "push", "*"}
		rules := []Rule{
			{Match: &Match{Name: &pattern}, Actions: &acts},
			{Match: &Match{Account: &pattern, Labels: map[string]string{"group": pattern}}, Actions: &acts},
		}
		a, err := Compile(rules)
		if err != nil {
			return
		}
		var requested []string
		for _, s := range []string{"pull", "push", "*", "delete", actions} {
			if s != "" && !slices.Contains(requested, s) {
				requested = append(requested, s)
			}
		}
		d := a.Decide(&Request{Account: account, Type: "repository", Name: name, Service: "registry",
			Labels: map[string][]string{"group": {label, name}}, Actions: requested})
		for _, g := range d.Actions {
			if !slices.Contains(requested, g) {
				t.Fatalf("granted %q, which was not requested (%v)", g, requested)
			}
		}
		if d.Matched != (d.Rule >= 0) {
			t.Fatalf("decision %+v", d)
		}
	})
}
