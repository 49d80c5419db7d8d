package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestWorkloadIdentitySection(t *testing.T) {
	const good = "workload_identity:\n" + // line 17
		"  - issuer: https://token.actions.githubusercontent.com\n" +
		"    audience: https://registry.example.com\n" +
		"    account: \"ci:${claims:repository}\"\n" + // line 20
		"    labels: {repository: repository, ref: ref}\n" +
		"    required_claims: {repository_owner: octo-org}\n" +
		"    max_age: 10m\n"
	testSections(t, []sectionCase{
		{"github", good, 0, "", ""},
		{"kubernetes with a static key set", "workload_identity:\n  - issuer: kubernetes\n    audience: registry\n    jwks_file: /etc/k8s-jwks.json\n    account: \"k8s:${claims:sub}\"\n", 0, "", ""},
		{"audience missing", "workload_identity:\n  - issuer: https://gitlab.example.com\n", 18, "workload_identity[0].audience", "is required"},
		{"issuer not https", "workload_identity:\n  - issuer: http://gitlab.example.com\n    audience: r\n", 18, "workload_identity[0].issuer", "https URL"},
		{"unknown key", good + "    audiences: [a]\n", 24, "workload_identity[0].audiences", "unknown key"},
		{"bad placeholder", strings.Replace(good, "${claims:repository}", "${claim:repository}", 1), 20, "workload_identity[0].account", "only ${claims:NAME}"},
		{"template without a claim", strings.Replace(good, "ci:${claims:repository}", "ci", 1), 20, "workload_identity[0].account", "names no claim"},
		{"empty required value", strings.Replace(good, "octo-org", `""`, 1), 22, "workload_identity[0].required_claims.repository_owner", "is empty"},
		{"skew too large", good + "    clock_skew: 1h\n", 24, "workload_identity[0].clock_skew", "between 0"},
		{"min refresh too small", good + "    jwks_min_refresh: 1ms\n", 24, "workload_identity[0].jwks_min_refresh", "at least"},
		{"uri and file", good + "    jwks_uri: https://x/jwks\n    jwks_file: /k\n", 25, "workload_identity[0].jwks_file", "exclude"},
		{"not a list", "workload_identity: {issuer: x}\n", 17, "workload_identity.issuer", "cannot unmarshal"},
		{"listed twice", good + strings.TrimPrefix(good, "workload_identity:\n"), 24, "workload_identity[1].issuer", "already listed"},
	}, func(t *testing.T, c *Config) {
		if len(c.Workload) != 1 {
			t.Fatalf("issuers = %d", len(c.Workload))
		}
	})
}

func TestWorkloadIdentityAlone(t *testing.T) {
	yml := "server: {addr: \":5001\"}\ntoken: {issuer: t, expiration: 900, certificate: /c, key: /k}\nacl: []\n" +
		"workload_identity:\n  - issuer: https://gitlab.com\n    audience: https://registry.example.com\n"
	if _, perr := parse(t, yml); perr != nil {
		t.Fatalf("workload_identity as the only authenticator: %v", perr)
	}
}

// TestWorkloadAccountWarning: an account template with no literal text
// before its first placeholder (the default ${claims:sub} included) is
// valid but warned about, at the account key (or the issuer, when account
// is unset): its names can collide with password users'.
func TestWorkloadAccountWarning(t *testing.T) {
	const issuer = "workload_identity:\n  - issuer: https://gitlab.example.com\n    audience: r\n" // lines 17-19
	tests := []struct {
		name, account string
		want          string // "line|key"; "" for no warning
	}{
		{"prefixed", "    account: \"ci:${claims:sub}\"\n", ""},
		{"literal after the claim only", "    account: \"${claims:sub}@gitlab\"\n", "20|workload_identity[0].account"},
		{"claim only", "    account: \"${claims:sub}\"\n", "20|workload_identity[0].account"},
		{"default", "", "18|workload_identity[0].issuer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, perr := parse(t, base+issuer+tc.account)
			if perr != nil {
				t.Fatal(perr)
			}
			var got []string
			for _, p := range c.Warnings() {
				if !strings.Contains(p.Msg, "literal text before the first placeholder") {
					t.Errorf("unexpected warning %q", p)
					continue
				}
				got = append(got, fmt.Sprintf("%d|%s", p.Line, p.Key))
			}
			if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
				t.Fatalf("warnings %v, want %q", got, tc.want)
			}
		})
	}
}
