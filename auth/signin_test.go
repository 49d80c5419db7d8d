package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/oidctest"
)

// siEnv is a Server with oidc_auth against the test provider, served over
// HTTP (the provider redirects the client back to it), on a settable clock.
type siEnv struct {
	s    *Server
	is   *oidctest.Issuer
	base string
	mu   sync.Mutex
	now  time.Time
}

func (e *siEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *siEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// newEnv is a siEnv served over HTTP (the provider redirects the client
// back to it) at e.base, on a clock starting now; serve builds its Server.
func newEnv(t *testing.T, is *oidctest.Issuer) *siEnv {
	t.Helper()
	e := &siEnv{is: is, now: time.Now()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.s.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	e.base = srv.URL
	return e
}

// serve builds e's Server, on e's clock, from a configuration with a
// generated token key and sections (the sign-in section and the acl).
func (e *siEnv) serve(t *testing.T, sections string, opts ...Option) {
	t.Helper()
	var err error
	if e.s, err = New(e.config(t, sections), append([]Option{WithClock(e.clock)}, opts...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.s.Close() })
}

// config is the configuration serve builds from: sections after a token
// section whose key is generated in a directory of its own.
func (e *siEnv) config(t *testing.T, sections string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	yml := fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: test-issuer
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
`, dir) + sections
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newSIEnv builds the server; is may be shared by two envs (two
// Gatehouses signing with different keys, clients of one provider).
func newSIEnv(t *testing.T, is *oidctest.Issuer, client string) *siEnv {
	t.Helper()
	e := newEnv(t, is)
	e.serve(t, oidcSections(is, e, client))
	return e
}

// oidcSections registers client, redirecting to e, and dana (groups devs
// and ops) with is, and returns newSIEnv's oidc_auth section and ACL.
func oidcSections(is *oidctest.Issuer, e *siEnv, client string) string {
	is.AddClient(oidctest.Client{ID: client, Secret: "s3cret", RedirectURI: e.base + "/oidc_auth"})
	is.AddUser(oidctest.User{Name: "dana", Password: "dana-pw",
		Claims: map[string]any{"email": "dana@example.com", "groups": []string{"devs", "ops"}}})
	return fmt.Sprintf(`oidc_auth:
  issuer: %[1]s
  ca_file: %[2]s
  redirect_url: %[3]s/oidc_auth
  client_id: %[4]s
  client_secret: s3cret
  labels_claims: [groups]
  revalidate_after: 1m
acl:
  - match: {labels: {groups: devs}, name: "devs/*"}
    actions: [push, pull]
`, is.URL, is.CAFile, e.base, client)
}

var credentialRE = regexp.MustCompile(`id="credential">([^<]+)<`)

// signIn runs the browser flow with an HTTP client (cookies kept, the
// provider's form posted) and returns the credential from the page.
func (e *siEnv) signIn(t *testing.T, user, password string) string {
	t.Helper()
	status, body := e.signInPage(t, user, password)
	m := credentialRE.FindSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	return html.UnescapeString(string(m[1]))
}

// signInPage runs the browser flow and returns the final status and page.
func (e *siEnv) signInPage(t *testing.T, user, password string) (int, []byte) {
	t.Helper()
	pem, err := os.ReadFile(e.is.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(e.base + "/") // / → /oidc_auth → the provider's form
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	form := resp.Request.URL.Query()
	form.Set("username", user)
	form.Set("password", password)
	resp, err = c.PostForm(e.is.URL+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

const siScope = "service=registry&scope=repository:devs/app:push,pull"

// TestSignInCredential: the credential from the page logs dana in with
// her groups label; a tampered, expired or other Gatehouse's credential,
// and hers under another user name, are 401.
func TestSignInCredential(t *testing.T) {
	is := oidctest.New(t)
	e := newSIEnv(t, is, "gatehouse")
	other := newSIEnv(t, is, "other-gatehouse")
	cred := e.signIn(t, "dana", "dana-pw")
	foreign := other.signIn(t, "dana", "dana-pw")

	if r := get(e.s, siScope, "dana@example.com", cred); r.status != http.StatusOK || !strings.Contains(r.raw, "token") {
		t.Fatalf("valid credential: %d %s", r.status, r.raw)
	}
	for _, tc := range []struct {
		name, user, pass string
		before           func()
	}{
		{"tampered signature", "dana@example.com", cred[:len(cred)-3] + "AAA", nil},
		{"tampered claims", "dana@example.com", tamperClaims(t, cred), nil},
		{"another user name", "erin@example.com", cred, nil},
		{"another Gatehouse's credential", "dana@example.com", foreign, nil},
		{"expired", "dana@example.com", cred, func() { e.advance(config.DefaultOIDCCredentialTTL + time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			if r := get(e.s, siScope, tc.user, tc.pass); r.status != http.StatusUnauthorized {
				t.Fatalf("%s: %d %s, want 401", tc.name, r.status, r.raw)
			}
		})
	}
}

// tamperClaims swaps the credential's account in its payload, keeping the
// signature.
func tamperClaims(t *testing.T, cred string) string {
	parts := strings.Split(cred, ".")
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	p = []byte(strings.Replace(string(p), "dana@example.com", "dana@example.org", 1))
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
}

// TestSignInRevalidation: within revalidate_after the provider is not
// asked; after it, a refresh grant vouches again (and is cached); once the
// user is removed at the provider, the credential is 401 within
// revalidate_after.
func TestSignInRevalidation(t *testing.T) {
	is := oidctest.New(t)
	e := newSIEnv(t, is, "gatehouse")
	cred := e.signIn(t, "dana", "dana-pw")
	login := func(want int, refreshes int64, what string) {
		t.Helper()
		if r := get(e.s, siScope, "dana@example.com", cred); r.status != want {
			t.Fatalf("%s: %d %s, want %d", what, r.status, r.raw, want)
		}
		if got := is.RefreshGrants(); got != refreshes {
			t.Fatalf("%s: %d refresh grants, want %d", what, got, refreshes)
		}
	}
	login(http.StatusOK, 0, "fresh credential")
	e.advance(2 * time.Minute)
	login(http.StatusOK, 1, "after revalidate_after")
	login(http.StatusOK, 1, "revalidated just now")
	e.advance(2 * time.Minute)
	login(http.StatusOK, 2, "again after revalidate_after (the rotated refresh token)")
	is.RemoveUser("dana")
	login(http.StatusOK, 2, "removed, within revalidate_after")
	e.advance(2 * time.Minute)
	login(http.StatusUnauthorized, 2, "removed, after revalidate_after")
}

// TestSignInStateRefused: a callback with no state, a forged one, an
// expired one, or one without the browser's cookie is a 400 errcode.
func TestSignInStateRefused(t *testing.T) {
	is := oidctest.New(t)
	e := newSIEnv(t, is, "gatehouse")
	start := do(e.s, httptest.NewRequest(http.MethodGet, "/oidc_auth", nil))
	loc, _ := url.Parse(start.header.Get("Location"))
	state := loc.Query().Get("state")
	cookie := (&http.Response{Header: start.header}).Cookies()[0]
	if start.status != http.StatusFound || state == "" {
		t.Fatalf("start: %d %s", start.status, loc)
	}
	// Another browser's sign-in: its cookie must not go with this state.
	otherCookie := (&http.Response{Header: do(e.s, httptest.NewRequest(http.MethodGet, "/oidc_auth", nil)).header}).Cookies()[0]
	for _, tc := range []struct {
		name, query string
		cookie      *http.Cookie
		before      func()
	}{
		{"no state", "code=x", cookie, nil},
		{"forged state", "code=x&state=" + url.QueryEscape(state[:len(state)-3]+"AAA"), cookie, nil},
		{"no cookie", "code=x&state=" + url.QueryEscape(state), nil, nil},
		{"another browser's cookie", "code=x&state=" + url.QueryEscape(state), otherCookie, nil},
		{"expired state", "code=x&state=" + url.QueryEscape(state), cookie, func() { e.advance(11 * time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			req := httptest.NewRequest(http.MethodGet, "/oidc_auth?"+tc.query, nil)
			if tc.cookie != nil {
				req.AddCookie(tc.cookie)
			}
			r := do(e.s, req)
			// The refusal is the state check's, not the code exchange's
			// (code x would fail that too).
			if r.status != http.StatusBadRequest || !strings.Contains(r.raw, `"code":"BAD_REQUEST"`) ||
				!strings.Contains(r.raw, "sign-in state") && !strings.Contains(r.raw, "took too long") {
				t.Fatalf("%s: %d %s, want a 400 errcode", tc.name, r.status, r.raw)
			}
		})
	}
}
