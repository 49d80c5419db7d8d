package config

import (
	"strings"
	"testing"
)

// withoutACL is base without its acl section.
var withoutACL = base[:strings.Index(base, "acl:\n")]

// TestCasbinOnly: casbin_authz counts as an authorizer, so a configuration
// whose rules are all in casbin needs no acl section (docker_auth refuses
// it: "ACL is empty").
func TestCasbinOnly(t *testing.T) {
	c, perr := parse(t, withoutACL+"casbin_authz:\n  model_path: /config/model.conf\n  policy_path: /config/policy.csv\n")
	if perr != nil {
		t.Fatal(perr)
	}
	if c.Casbin == nil || c.Casbin.ModelPath != "/config/model.conf" || c.Casbin.PolicyPath != "/config/policy.csv" {
		t.Fatalf("decoded %+v", c.Casbin)
	}
	files := c.Files()
	for _, f := range []string{"/config/model.conf", "/config/policy.csv"} {
		if !strings.Contains(strings.Join(files, "\n"), f) {
			t.Errorf("Files() = %q, want %s in it (a change must reload)", files, f)
		}
	}
}

// TestCasbinAndPluginProblems: each problem names its line, key and why.
func TestCasbinAndPluginProblems(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		// want lists "line|key|message fragment" for every problem.
		want []string
	}{
		{
			name: "empty casbin_authz and no acl",
			yml:  withoutACL + "casbin_authz:\n",
			want: []string{"1|acl|section is required", "12|casbin_authz|section is empty: give model_path and policy_path"},
		},
		{
			name: "casbin_authz without policy_path, unknown key",
			yml:  base + "casbin_authz:\n  model_path: /m.conf\n  policy: /p.csv\n",
			want: []string{"17|casbin_authz.policy_path|is required", "19|casbin_authz.policy|unknown key"},
		},
		{
			name: "plugin_authn",
			yml:  base + "plugin_authn:\n  plugin_path: /plugins/authn.so\n",
			want: []string{"17|plugin_authn|Go plugins cannot be loaded by Gatehouse: a plugin only loads into a server built with the very same Go toolchain and dependency versions, and Gatehouse ships as a static binary (a FROM-scratch image) that cannot load shared objects at all; run the authenticator as a program with ext_auth instead (docs/ext.md)"},
		},
		{
			name: "plugin_authz",
			yml:  base + "plugin_authz:\n  plugin_path: /plugins/authz.so\n",
			want: []string{"17|plugin_authz|Go plugins cannot be loaded by Gatehouse: a plugin only loads into a server built with the very same Go toolchain and dependency versions, and Gatehouse ships as a static binary (a FROM-scratch image) that cannot load shared objects at all; run the authorizer as a program with ext_authz instead (docs/ext.md)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := parse(t, tc.yml)
			checkProblems(t, perr, tc.want)
		})
	}
}
