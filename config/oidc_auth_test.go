package config

import (
	"strings"
	"testing"
)

func TestOIDCAuthSection(t *testing.T) {
	const good = "oidc_auth:\n" + // line 17
		"  issuer: https://id.example.com/realms/corp\n" +
		"  redirect_url: https://auth.example.com/oidc_auth\n" +
		"  client_id: gatehouse\n" + // line 20
		"  client_secret: s3cret\n" +
		"  labels_claims: [groups]\n"
	testSections(t, []sectionCase{
		{"keycloak", good, 0, "", ""},
		{"all of docker_auth's keys", good + "  http_timeout: 5s\n  registry_url: r.example.com\n  user_claim: preferred_username\n  scopes: [openid, email, offline_access]\n", 0, "", ""},
		{"redirect_url not /oidc_auth", strings.Replace(good, "/oidc_auth\n", "/callback\n", 1), 19, "oidc_auth.redirect_url", "must be the absolute URL"},
		{"no issuer", strings.Replace(good, "  issuer: https://id.example.com/realms/corp\n", "", 1), 17, "oidc_auth.issuer", "provider's URL"},
		{"no secret", strings.Replace(good, "  client_secret: s3cret\n", "", 1), 17, "oidc_auth.client_secret", "is required"},
		{"both secrets", good + "  client_secret_file: /s\n", 23, "oidc_auth.client_secret_file", "not both"},
		{"scopes without openid", good + "  scopes: [email]\n", 23, "oidc_auth.scopes", "include openid"},
		{"both label spellings", good + "  label_claims: [groups]\n", 23, "oidc_auth.label_claims", "labels_claims only"},
		{"revalidate too often", good + "  revalidate_after: 1s\n", 23, "oidc_auth.revalidate_after", "at least 1m"},
		{"unknown key", good + "  client_secrets: x\n", 23, "oidc_auth.client_secrets", "unknown key"},
	}, func(t *testing.T, c *Config) {
		if c.OIDCAuth == nil || c.OIDCAuth.Claim() == "" {
			t.Fatal("oidc_auth not decoded")
		}
	})
}

// TestOIDCAuthWarnings: docker_auth's documented label_claims spelling and
// its token databases are accepted, each with a warning at its line.
func TestOIDCAuthWarnings(t *testing.T) {
	c, perr := parse(t, base+"oidc_auth:\n"+ // line 17
		"  issuer: https://id.example.com\n"+
		"  redirect_url: https://auth.example.com/oidc_auth\n"+
		"  client_id: gatehouse\n"+ // line 20
		"  client_secret: s3cret\n"+
		"  label_claims: [groups]\n"+
		"  level_token_db: {path: /data/tokens.ldb}\n"+
		"  redis_token_db: {redis_options: {addr: 'redis:6379'}}\n")
	if perr != nil {
		t.Fatal(perr)
	}
	if got := c.OIDCAuth.Labels(); len(got) != 1 || got[0] != "groups" {
		t.Fatalf("labels claims %v, want [groups] from label_claims", got)
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.Key+"@"+strings.Fields(w.Msg)[0])
		if w.Line == 0 {
			t.Errorf("warning without a line: %v", w)
		}
	}
	want := "oidc_auth.label_claims@label_claims oidc_auth.level_token_db@level_token_db oidc_auth.redis_token_db@redis_token_db"
	if strings.Join(got, " ") != want {
		t.Fatalf("warnings %v, want %s", got, want)
	}
}
