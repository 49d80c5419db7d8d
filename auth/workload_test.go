package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/oidctest"
)

const wlAudience = "https://registry.example.com"

// wlEnv is a Server trusting a test OIDC issuer, on a settable clock, its
// log in a buffer.
type wlEnv struct {
	s     *Server
	is    *oidctest.Issuer
	mu    sync.Mutex
	now   time.Time
	log   *bytes.Buffer
	other *oidctest.Issuer // served, but not configured
	seen  string           // the lines ext_auth was given
}

func (e *wlEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *wlEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// github signs a GitHub Actions token for the configured audience now.
func (e *wlEnv) github(t testing.TB, edit func(map[string]any)) string {
	c := oidctest.GitHubClaims(e.is.URL, wlAudience, e.clock())
	if edit != nil {
		edit(c)
	}
	return e.is.Sign(t, c)
}

// newWLEnv builds the server. ext_auth accepts any password for mallory
// and self: a JWT from an issuer that is not trusted must never reach it as
// mallory's password; one with iss = token.issuer is left to the chain, as
// Gatehouse's own access tokens are.
func newWLEnv(t testing.TB, cache ...string) *wlEnv {
	t.Helper()
	e := &wlEnv{is: oidctest.New(t), other: oidctest.New(t), now: time.Now(), log: &bytes.Buffer{}}
	dir := t.TempDir()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	// ext_auth accepts any password of mallory and self, and writes down
	// every line it is given.
	prog := filepath.Join(dir, "ext.sh")
	e.seen = filepath.Join(dir, "seen")
	script := "#!/bin/sh\nread -r line\necho \"$line\" >> " + e.seen + "\ncase \"$line\" in mallory\\ *|self\\ *) exit 0;; esac\nexit 2\n"
	if err := os.WriteFile(prog, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	cacheSection := "cache: {ttl: 1h}"
	if len(cache) > 0 {
		cacheSection = cache[0]
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: test-issuer
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
%[7]s
users:
  alice: {password: %[2]q}
ext_auth: {command: %[3]s}
workload_identity:
  - issuer: %[4]s
    audience: %[5]s
    ca_file: %[6]s
    account: "ci:${claims:repository}"
    labels: {repository: repository, ref: ref}
    required_claims: {repository_owner: octo-org}
acl:
  - match: {account: "/^ci:.+/", labels: {ref: refs/heads/main}, name: "${labels:repository}/*"}
    actions: [push, pull]
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
`, dir, hash("alicepw"), prog, e.is.URL, wlAudience, e.is.CAFile, cacheSection)
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(e.log, nil))
	e.s, err = New(cfg, WithClock(e.clock), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.s.Close() })
	return e
}

const wlScope = "service=registry&scope=repository:octo-org/octo-repo/app:push,pull"

func TestWorkloadLogin(t *testing.T) {
	e := newWLEnv(t)
	tok := e.github(t, nil)
	for _, tc := range []struct {
		name string
		run  func() result
	}{
		{"Basic GET, any user name", func() result { return get(e.s, wlScope, "anything", tok) }},
		{"Basic GET, another user name", func() result { return get(e.s, wlScope, "oauth2accesstoken", tok) }},
		{"password POST, offline", func() result {
			return post(e.s, form("grant_type", "password", "username", "ci", "password", tok, "service", "registry",
				"client_id", "docker", "access_type", "offline", "scope", "repository:octo-org/octo-repo/app:push,pull"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.run()
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			c := claimsOf(t, r.body.AccessToken)
			if c.Subject != "ci:octo-org/octo-repo" || grants(c) != "repository:octo-org/octo-repo/app:pull,push" {
				t.Errorf("sub %q, grants %q", c.Subject, grants(c))
			}
			if r.body.RefreshToken != "" {
				t.Error("a refresh token was issued for a workload identity")
			}
		})
	}
	// A token from a feature branch gets nothing (the ACL's ref label).
	branch := e.github(t, func(c map[string]any) { c["ref"] = "refs/heads/feature" })
	if r := get(e.s, wlScope, "ci", branch); r.status != 200 || grants(claimsOf(t, r.body.Token)) != "repository:octo-org/octo-repo/app:" {
		t.Errorf("feature branch: status %d, %s", r.status, r.raw)
	}
}

// TestWorkloadRefused: each bad token is a 401 with an errcode body, and
// the log line of the refusal says why.
func TestWorkloadRefused(t *testing.T) {
	e := newWLEnv(t)
	now := e.clock()
	valid := e.github(t, nil)
	parts := strings.Split(valid, ".")
	tamperedClaims := oidctest.GitHubClaims(e.is.URL, wlAudience, now)
	tamperedClaims["repository"] = "octo-org/other"
	tb, _ := json.Marshal(tamperedClaims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tb) + "." + parts[2]
	ghost := oidctest.Key{KID: "ghost", Alg: jose.RS256, Private: e.other.SigningKey().Private}
	for i, tc := range []struct {
		name, user, token, why string
	}{
		{"expired", "ci", e.github(t, func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), "expired"},
		{"wrong audience", "ci", e.github(t, func(c map[string]any) { c["aud"] = "https://github.com/octo-org" }), "aud"},
		{"wrong owner", "ci", e.github(t, func(c map[string]any) { c["repository_owner"] = "evil" }), "required claim"},
		{"untrusted issuer", "ci", e.other.Sign(t, oidctest.GitHubClaims(e.other.URL, wlAudience, now)), "not configured"},
		{"unknown kid", "ci", oidctest.SignWith(t, ghost, oidctest.GitHubClaims(e.is.URL, wlAudience, now)), "unknown kid"},
		{"alg none", "ci", "eyJhbGciOiJub25lIn0." + parts[1] + ".", "algorithm"},
		{"tampered payload", "ci", tampered, "signature verification failed"},
		{"oversized", "ci", e.github(t, func(c map[string]any) { c["pad"] = strings.Repeat("x", 13<<10) }), "more than"},
		// The JWT-shaped password of a static user, from an issuer
		// that is not trusted: refused, never tried as her password.
		{"untrusted JWT as a user's password", "mallory", e.other.Sign(t, oidctest.GitHubClaims(e.other.URL, wlAudience, now)), "not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.log.Reset()
			req := httptest.NewRequest(http.MethodGet, "/auth?"+wlScope, nil)
			req.SetBasicAuth(tc.user, tc.token)
			req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", i+1) // one failure per client: no 429
			r := do(e.s, req)
			if r.status != 401 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			var body struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal([]byte(r.raw), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNAUTHORIZED" {
				t.Fatalf("body %s", r.raw)
			}
			if strings.Contains(r.raw, tc.why) {
				t.Errorf("the client is told the reason: %s", r.raw)
			}
			if !strings.Contains(e.log.String(), tc.why) || !strings.Contains(e.log.String(), "token request refused") {
				t.Errorf("log does not say %q: %s", tc.why, e.log)
			}
			if seen, _ := os.ReadFile(e.seen); strings.Contains(string(seen), tc.token) {
				t.Error("the token was given to ext_auth as a password")
			}
		})
	}
}

// TestWorkloadTheirOwnTokens: a JWT-shaped password with iss = token.issuer
// still reaches the chain (Gatehouse's own tokens are handled there).
func TestWorkloadTheirOwnTokens(t *testing.T) {
	e := newWLEnv(t)
	self := e.other.Sign(t, oidctest.GitHubClaims("test-issuer", wlAudience, e.clock()))
	if r := get(e.s, "service=registry", "self", self); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if r := get(e.s, "service=registry", "alice", "alicepw"); r.status != 200 {
		t.Fatalf("a plain password: status %d", r.status)
	}
}

// TestWorkloadCachedUntilExp: a token is verified once and answered from
// the credential cache afterwards, but never past its exp, even with a
// longer cache ttl.
func TestWorkloadCachedUntilExp(t *testing.T) {
	e := newWLEnv(t)
	tok := e.github(t, nil) // exp in 5 minutes; cache ttl 1h
	for i := range 5 {
		q := wlScope + "&n=" + url.QueryEscape(fmt.Sprint(i)) // past the grant cache
		if r := get(e.s, q, "ci", tok); r.status != 200 {
			t.Fatalf("request %d: status %d", i, r.status)
		}
	}
	if n := e.s.state.Load().chain.cache.len(); n != 1 {
		t.Fatalf("cache entries = %d, want 1", n)
	}
	m := do(e.s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw
	if want := `gatehouse_credential_cache_requests_total{result="hit"} 4`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
	e.advance(6 * time.Minute)
	e.log.Reset()
	if r := get(e.s, wlScope+"&n=late", "ci", tok); r.status != 401 || !strings.Contains(e.log.String(), "expired") {
		t.Fatalf("past exp: status %d, log %s", r.status, e.log)
	}
}

// TestWorkloadCachedPastTTL: a verified token stays in the credential
// cache until its exp even when cache.ttl is shorter (a job pulling 50
// layers over 10 minutes verifies once), while a password's entry still
// ends at cache.ttl.
func TestWorkloadCachedPastTTL(t *testing.T) {
	e := newWLEnv(t, "cache: {ttl: 1m}")
	tok := e.github(t, func(c map[string]any) { c["exp"] = e.clock().Add(10 * time.Minute).Unix() })
	for i := range 5 {
		q := wlScope + "&n=" + url.QueryEscape(fmt.Sprint(i)) // past the grant cache
		if r := get(e.s, q, "ci", tok); r.status != 200 {
			t.Fatalf("workload request %d: status %d", i, r.status)
		}
		if r := get(e.s, "service=registry&n="+fmt.Sprint(i), "alice", "alicepw"); r.status != 200 {
			t.Fatalf("password request %d: status %d", i, r.status)
		}
		e.advance(2 * time.Minute) // past cache.ttl between requests
	}
	m := do(e.s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw
	// The token: one verification, four hits; alice: five checks.
	for _, want := range []string{
		`gatehouse_credential_cache_requests_total{result="hit"} 4`,
		`gatehouse_credential_cache_requests_total{result="miss"} 6`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	e.advance(time.Minute) // 11 minutes: past exp (and its skew)
	e.log.Reset()
	if r := get(e.s, wlScope+"&n=late", "ci", tok); r.status != 401 || !strings.Contains(e.log.String(), "expired") {
		t.Fatalf("past exp: status %d, log %s", r.status, e.log)
	}
}
