package config

import (
	"strings"
	"testing"
)

func TestGithubAuthSection(t *testing.T) {
	const good = "github_auth:\n" + // line 17
		"  organization: acme\n" +
		"  client_id: Iv1.abc\n" +
		"  client_secret: s3cret\n" // line 20
	testSections(t, []sectionCase{
		{"minimal", good, 0, "", ""},
		{"all of docker_auth's keys", good + "  http_timeout: 5s\n  revalidate_after: 2h\n  github_web_uri: https://ghe.example.com/\n  github_api_uri: https://ghe.example.com/api/v3\n  registry_url: r.example.com\n", 0, "", ""},
		{"no secret", strings.Replace(good, "  client_secret: s3cret\n", "", 1), 17, "github_auth.client_secret", "is required"},
		{"both secrets", good + "  client_secret_file: /s\n", 21, "github_auth.client_secret_file", "not both"},
		{"bad api uri", good + "  github_api_uri: api.github.com\n", 21, "github_auth.github_api_uri", "absolute http(s) URL"},
		{"revalidate too often", good + "  revalidate_after: 1s\n", 21, "github_auth.revalidate_after", "at least 1m"},
		{"unknown key", good + "  org: x\n", 21, "github_auth.org", "unknown key"},
	}, func(t *testing.T, c *Config) {
		if c.GithubAuth == nil || c.GithubAuth.WebURI() == "" || strings.HasSuffix(c.GithubAuth.WebURI(), "/") {
			t.Fatal("github_auth not decoded")
		}
	})
}

// TestGithubAuthTokenDBWarning: docker_auth's token database is accepted
// with a warning at its line.
func TestGithubAuthTokenDBWarning(t *testing.T) {
	c, perr := parse(t, base+"github_auth:\n  client_id: x\n  client_secret: y\n  gcs_token_db: {bucket: b}\n")
	if perr != nil {
		t.Fatal(perr)
	}
	w := c.Warnings()
	if len(w) != 1 || w[0].Key != "github_auth.gcs_token_db" || w[0].Line != 20 {
		t.Fatalf("warnings %v, want one for github_auth.gcs_token_db at line 20", w)
	}
}
