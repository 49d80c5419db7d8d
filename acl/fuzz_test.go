package acl

import (
	"reflect"
	"slices"
	"testing"
)

// FuzzDecide: any pattern either fails to compile or decides any request
// without a panic, granting only actions that were requested, and the
// index decides as the plain scan of every rule does.
func FuzzDecide(f *testing.F) {
	f.Add("${account}/*", "alice", "alice/app", "dev", "pull,push")
	f.Add("/^(\\w+)-dev$/", "bob-dev", "bob-dev", "ops", "*")
	f.Add("${labels:group}/*", "x", "dev/app", "dev", "pull")
	f.Add("[", "a", "b", "c", "pull")
	f.Add("/${name:1}/", "a", "b", "c", "push")
	f.Add("*team42*", "a", "myteam42x", "c", "pull")
	f.Add("/^team42-.+$/", "a", "team42-app", "c", "pull")
	f.Add("*a\\*bc*", "a", "xa*bcx", "c", "pull")
	f.Add("${account}/**", "alice", "alice/charts/mychart", "dev", "push")
	f.Add("**/sig", "a", "sig", "c", "pull")
	f.Add("a/**/b", "a", "a/x/y/b", "c", "pull")
	f.Add("**/${labels:group}/**", "**", "x/dev/y", "dev", "pull")
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
		req := &Request{Account: account, Type: "repository", Name: name, Service: "registry",
			Labels: map[string][]string{"group": {label, name}}, Actions: requested}
		d := a.Decide(req)
		linear, err := Compile(rules, withoutIndex())
		if err != nil {
			t.Fatalf("compiles with the index, not without: %v", err)
		}
		if w := linear.Decide(req); !reflect.DeepEqual(d, w) {
			t.Fatalf("pattern %q, name %q: indexed %+v, plain scan %+v", pattern, name, d, w)
		}
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
