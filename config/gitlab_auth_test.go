package config

import (
	"strings"
	"testing"
)

// TestSignInSections: gitlab_auth and google_auth accept docker_auth's
// keys and name the line and key of a bad one.
func TestSignInSections(t *testing.T) {
	const gitlab = "gitlab_auth:\n" + // line 17
		"  client_id: abc\n" +
		"  client_secret: s3cret\n" +
		"  redirect_uri: https://auth.example.com/gitlab_auth\n" // line 20
	const google = "google_auth:\n" + // line 17
		"  client_id: 1-x.apps.googleusercontent.com\n" +
		"  client_secret: s3cret\n" // line 19
	testSections(t, []sectionCase{
		{"gitlab minimal", gitlab, 0, "", ""},
		{"gitlab all of docker_auth's keys", gitlab + "  grant_type: authorization_code\n  http_timeout: 5s\n  revalidate_after: 2h\n  gitlab_web_uri: https://gl.example.com/\n  gitlab_api_uri: https://gl.example.com/api/v4\n  registry_url: r.example.com\n  redis_token_db: {redis_options: {addr: x}}\n", 0, "", ""},
		{"gitlab no redirect_uri", strings.Replace(gitlab, "  redirect_uri: https://auth.example.com/gitlab_auth\n", "", 1), 17, "gitlab_auth.redirect_uri", "is required"},
		{"gitlab redirect_uri elsewhere", strings.Replace(gitlab, "/gitlab_auth\n", "/cb\n", 1), 20, "gitlab_auth.redirect_uri", "ending in /gitlab_auth"},
		{"gitlab grant_type", gitlab + "  grant_type: password\n", 21, "gitlab_auth.grant_type", "authorization_code"},
		{"gitlab bad api uri", gitlab + "  gitlab_api_uri: gitlab.com\n", 21, "gitlab_auth.gitlab_api_uri", "absolute http(s) URL"},
		{"google minimal", google, 0, "", ""},
		{"google reference.yml's keys", google + "  domain: example.com\n  token_db: /x.ldb\n  http_timeout: 10\n", 0, "", ""},
		{"google no secret", strings.Replace(google, "  client_secret: s3cret\n", "", 1), 17, "google_auth.client_secret", "is required"},
		{"google bad domain", google + "  domain: \"@example.com\"\n", 20, "google_auth.domain", "domain name"},
		{"google redirect_url elsewhere", google + "  redirect_url: https://a.example.com/cb\n", 20, "google_auth.redirect_url", "ending in /google_auth"},
		{"google unknown key", google + "  issuer: https://evil.test\n", 20, "google_auth.issuer", "unknown key"},
	}, nil)
}
