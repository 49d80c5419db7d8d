package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/oidctest"
)

// newGoogleEnv is a Gatehouse with google_auth (domain example.com, no
// redirect_url: derived from the request) whose issuer is the test
// provider posing as Google.
func newGoogleEnv(t *testing.T, is *oidctest.Issuer) *siEnv {
	t.Helper()
	e := newEnv(t, is)
	is.AddClient(oidctest.Client{ID: "google-client", Secret: "g-secret", RedirectURI: e.base + "/google_auth"})
	is.AddUser(oidctest.User{Name: "dana", Password: "dana-pw",
		Claims: map[string]any{"email": "dana@example.com", "hd": "example.com"}})
	is.AddUser(oidctest.User{Name: "eve", Password: "eve-pw", Claims: map[string]any{"email": "eve@gmail.com"}})
	is.AddUser(oidctest.User{Name: "mallory", Password: "m-pw",
		Claims: map[string]any{"email": "mallory@example.com.evil.test", "hd": "example.com.evil.test"}})
	// Google's issuer is fixed; only this unexported option replaces it.
	e.serve(t, `google_auth:
  domain: example.com
  client_id: google-client
  client_secret: g-secret
  token_db: /tmp/unused
  http_timeout: 10
  revalidate_after: 1m
acl:
  - match: {account: "/.+@example.com/", name: "devs/*"}
    actions: [push, pull]
`, withGoogleIssuer(is.URL, is.CAFile))
	return e
}

// TestGoogleSignIn: google_auth signs dana (hd example.com) in through
// / → /google_auth → the provider → the callback; her credential logs in
// and is revalidated with the refresh-token grant after revalidate_after,
// refused once the provider no longer knows her. A Gmail account (no hd)
// and another domain's are refused with a 403.
func TestGoogleSignIn(t *testing.T) {
	is := oidctest.New(t)
	e := newGoogleEnv(t, is)
	cred := e.signIn(t, "dana", "dana-pw")
	if r := get(e.s, siScope, "dana@example.com", cred); r.status != http.StatusOK || !strings.Contains(r.raw, "token") {
		t.Fatalf("valid credential: %d %s", r.status, r.raw)
	}
	for u, pw := range map[string]string{"eve": "eve-pw", "mallory": "m-pw"} {
		status, body := e.signInPage(t, u, pw)
		if status != http.StatusForbidden || !strings.Contains(string(body), "not in the domain example.com") {
			t.Errorf("%s: %d %s, want 403 naming the domain", u, status, body)
		}
	}
	refreshes := is.RefreshGrants()
	e.advance(2 * time.Minute)
	if r := get(e.s, siScope, "dana@example.com", cred); r.status != http.StatusOK {
		t.Fatalf("revalidated: %d %s", r.status, r.raw)
	}
	if is.RefreshGrants() == refreshes {
		t.Fatal("no refresh grant after revalidate_after")
	}
	is.RemoveUser("dana")
	e.advance(2 * time.Minute)
	if r := get(e.s, siScope, "dana@example.com", cred); r.status != http.StatusUnauthorized {
		t.Fatalf("removed at the provider: %d, want 401", r.status)
	}
}
