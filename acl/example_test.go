package acl_test

import (
	"fmt"
	"log"

	"github.com/gatehouse/gatehouse/acl"
	"gopkg.in/yaml.v3"
)

func Example() {
	const policy = `
- match: {account: "admin"}
  actions: ["*"]
  comment: "admin can do anything"
- match: {account: "/.+/", name: "${account}/*"}
  actions: ["*"]
  comment: "users own ${account}/*"
- match: {name: "public/*"}
  actions: ["pull"]
`
	var rules []acl.Rule
	if err := yaml.Unmarshal([]byte(policy), &rules); err != nil {
		log.Fatal(err)
	}
	a, err := acl.Compile(rules)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range a.Warnings() {
		fmt.Println("warning:", w)
	}

	for _, req := range []acl.Request{
		{Account: "alice", Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}},
		{Account: "alice", Type: "repository", Name: "bob/app", Actions: []string{"pull", "push"}},
		{Account: "", Type: "repository", Name: "public/base", Actions: []string{"pull", "push"}},
		{Account: "admin", Type: "registry", Name: "catalog", Actions: []string{"*"}},
	} {
		d := a.Decide(&req)
		fmt.Printf("%q %s: matched=%v rule=%d actions=%v\n", req.Account, req.Name, d.Matched, d.Rule, d.Actions)
	}
	// Output:
	// "alice" alice/app: matched=true rule=1 actions=[pull push]
	// "alice" bob/app: matched=false rule=-1 actions=[]
	// "" public/base: matched=true rule=2 actions=[pull]
	// "admin" catalog: matched=true rule=0 actions=[*]
}

// A pattern with a capture placeholder: accounts named NAME-dev get the
// NAME-dev/* namespace, and the captured NAME is quoted, so "*-dev" gets
// nothing it does not own.
func ExampleCompile_capture() {
	devName, ns := "/^(.+)-dev$/", "${account:1}-dev/*"
	a, err := acl.Compile([]acl.Rule{{
		Match:   &acl.Match{Account: &devName, Name: &ns},
		Actions: &[]string{"pull", "push"},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, req := range []acl.Request{
		{Account: "alice-dev", Name: "alice-dev/app", Actions: []string{"push"}},
		{Account: "*-dev", Name: "alice-dev/app", Actions: []string{"push"}},
	} {
		fmt.Println(req.Account, a.Decide(&req).Actions)
	}
	// Output:
	// alice-dev [push]
	// *-dev []
}
