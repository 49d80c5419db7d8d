package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/token"
)

// tokenEnv is an oauthEnv with access tokens on, a movable clock and a
// captured log.
type tokenEnv struct {
	*oauthEnv
	mu  sync.Mutex
	now time.Time
	log bytes.Buffer
}

func newTokenEnv(t *testing.T, section string) *tokenEnv {
	e := &tokenEnv{oauthEnv: newOAuthEnv(t), now: time.Now().Truncate(time.Second)}
	e.top = section
	return e
}

func (e *tokenEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }

func (e *tokenEnv) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

func (e *tokenEnv) start(users string) *Server {
	return e.server("", users, WithClock(e.clock), WithLogger(slog.New(slog.NewJSONHandler(&e.log, nil))))
}

// mint signs an access token with s's key, as gatehouse token create does.
func mint(t *testing.T, s *Server, owner, authenticator string, ttl time.Duration, scopes ...string) (string, *token.AccessTokenClaims) {
	t.Helper()
	st := s.state.Load()
	var exp time.Time
	if ttl > 0 {
		exp = s.now().Add(ttl)
	}
	raw, c, err := st.signer.AccessTokens().Mint(token.AccessTokenClaims{Name: "ci-" + owner, Owner: owner,
		Authenticator: authenticator, Scopes: scopes, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// lastLine returns the last log line that contains want, decoded.
func (e *tokenEnv) lastLine(t *testing.T, want string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(e.log.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], want) {
			var m map[string]any
			if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no log line contains %q:\n%s", want, e.log.String())
	return nil
}

const tokenSection = "access_tokens:\n  max_ttl: 30d\n  max_ttl_by_label: {\"team=blue\": 60d}\n"

// TestAccessTokenGrantsTheIntersection: a token grants what both its scope
// patterns and the owner's ACL allow, on GET and on the OAuth2 password
// POST, and the audit line names it.
func TestAccessTokenGrantsTheIntersection(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	raw, c := mint(t, s, "alice", "static", 24*time.Hour, "repository:alice/*:pull", "repository:blue/*:pull,push")
	tests := []struct {
		name  string
		scope string
		want  string
	}{
		{"the token narrows the ACL", "repository:alice/app:pull,push", "repository:alice/app:pull"},
		{"the ACL narrows the token", "repository:blue/x:pull,push", "repository:blue/x:pull"},
		{"outside the token's patterns", "repository:public/x:pull", "repository:public/x:"},
		{"outside both", "repository:bob/x:pull", "repository:bob/x:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(s, "service=registry&scope="+tc.scope, "alice", raw)
			if r.status != 200 {
				t.Fatalf("GET: %d %s", r.status, r.raw)
			}
			if got := grants(claimsOf(t, r.body.Token)); got != tc.want {
				t.Errorf("GET granted %q, want %q", got, tc.want)
			}
			p := post(s, form("grant_type", "password", "service", "registry", "client_id", "ci",
				"username", "alice", "password", raw, "scope", tc.scope))
			if p.status != 200 {
				t.Fatalf("POST: %d %s", p.status, p.raw)
			}
			if got := grants(claimsOf(t, p.body.AccessToken)); got != tc.want {
				t.Errorf("POST granted %q, want %q", got, tc.want)
			}
			if n := countRequests(t, s, OutcomeDenied, GrantAccessToken); n == 0 {
				t.Error("access-token logins are not counted under grant=access_token")
			}
			line := e.lastLine(t, auditMessage)
			if line["token_id"] != c.ID || line["token_name"] != "ci-alice" || line["grant"] != GrantAccessToken || line["account"] != "alice" {
				t.Errorf("audit line %v does not name the token", line)
			}
		})
	}
}

// TestAccessTokenRefused: every refusal is a 401 with the errcode body and
// a log line with the precise reason.
func TestAccessTokenRefused(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	good, _ := mint(t, s, "alice", "static", time.Hour, "repository:alice/*:pull")
	parts := strings.Split(good, ".")
	other, _ := mint(t, s, "alice", "static", time.Hour, "*:*:*")
	tampered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
	refresh := get(s, "service=registry&offline_token=true", "alice", "alicepw").body.RefreshToken
	registry := get(s, "service=registry&scope=repository:alice/app:pull", "alice", "alicepw").body.Token
	revoked, rc := mint(t, s, "alice", "static", time.Hour, "repository:alice/*:pull")
	e.top = tokenSection + "  revoked: [" + rc.ID + "]\n"
	next := *e.server("", "").Config()
	if err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	noExpiry, _ := mint(t, s, "alice", "static", 0, "repository:alice/*:pull")
	tooLong, _ := mint(t, s, "alice", "static", 61*24*time.Hour, "repository:alice/*:pull")
	ghost, _ := mint(t, s, "ghost", "static", time.Hour, "repository:alice/*:pull")
	tests := []struct {
		name, user, password, reason string
	}{
		{"tampered", "alice", tampered, "signature is invalid"},
		{"revoked", "alice", revoked, "is revoked"},
		{"refresh token as access token", "alice", refresh, "not an access token"},
		{"registry token as access token", "alice", registry, "signing method"},
		{"another user name", "bob", good, "not the token's owner"},
		{"no expiry", "alice", noExpiry, "no expiry"},
		{"longer than the owner may have", "alice", tooLong, "longer than"},
		{"an owner nobody knows", "ghost", ghost, `no longer knows "ghost"`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := getAt(s, fmt.Sprintf("198.51.100.%d", i+1), "service=registry&scope=repository:alice/app:pull", tc.user, tc.password)
			checkTokenRefusal(t, e, r, msgBadAccessToken, tc.reason)
		})
	}
	t.Run("expired", func(t *testing.T) {
		e.advance(time.Hour + time.Second)
		r := get(s, "service=registry&scope=repository:alice/app:pull", "alice", good)
		checkTokenRefusal(t, e, r, msgBadAccessToken, "expired")
	})
}

func checkTokenRefusal(t *testing.T, e *tokenEnv, r result, message, reason string) {
	t.Helper()
	if r.status != 401 || r.body.Token != "" {
		t.Fatalf("status %d, want 401: %s", r.status, r.raw)
	}
	var body errorBody
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil || len(body.Errors) != 1 ||
		body.Errors[0].Code != CodeUnauthorized || body.Errors[0].Message != message {
		t.Fatalf("body %s, want %s %q", r.raw, CodeUnauthorized, message)
	}
	line := e.lastLine(t, "token request refused")
	if got, _ := line["reason"].(string); !strings.Contains(got, reason) {
		t.Fatalf("logged reason %q, want %q", got, reason)
	}
}

// TestAccessTokenAcrossReloads: the owner's password change leaves the
// token working; a revocation or the owner's removal by a reload stops it
// at once, and so the refresh tokens issued to its logins, which never
// outlive it.
func TestAccessTokenAcrossReloads(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	raw, c := mint(t, s, "alice", "static", 2*time.Hour, "repository:alice/*:pull")
	login := get(s, "service=registry&offline_token=true", "alice", raw)
	if login.status != 200 || login.body.RefreshToken == "" {
		t.Fatalf("login: %d %s", login.status, login.raw)
	}
	rt := login.body.RefreshToken
	if exp := claimsOf(t, rt).ExpiresAt.Time; exp.After(c.ExpiresAt) {
		t.Errorf("the refresh token expires %v, after the access token (%v)", exp, c.ExpiresAt)
	}
	redeem := func() result {
		return post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "docker",
			"refresh_token", rt, "scope", "repository:alice/app:pull,push"))
	}
	if r := redeem(); r.status != 200 || grants(claimsOf(t, r.body.AccessToken)) != "repository:alice/app:pull" {
		t.Fatalf("redeem: %d %s (want pull only, the token's scope)", r.status, r.raw)
	}
	use := func() result { return get(s, "service=registry&scope=repository:alice/app:pull", "alice", raw) }
	reload := func(section, users string) {
		t.Helper()
		e.top = section
		next := *e.server("", users).Config()
		if err := s.Reload(&next); err != nil {
			t.Fatal(err)
		}
	}

	newPW, _ := bcrypt.GenerateFromPassword([]byte("new-alice-pw"), bcrypt.MinCost)
	reload(tokenSection, fmt.Sprintf("  alice: {password: %q}\n", newPW))
	if r := use(); r.status != 200 {
		t.Fatalf("after the owner's password change: %d %s", r.status, r.raw)
	}
	if r := redeem(); r.status != 200 {
		t.Fatalf("refresh after the owner's password change: %d %s", r.status, r.raw)
	}

	reload(tokenSection+"  revoked: ["+c.ID+"]\n", fmt.Sprintf("  alice: {password: %q}\n", newPW))
	checkTokenRefusal(t, e, use(), msgBadAccessToken, "is revoked")
	checkTokenRefusal(t, e, redeem(), msgBadRefresh, "is revoked")

	reload(tokenSection, fmt.Sprintf("  bob: {password: %q}\n", newPW))
	checkTokenRefusal(t, e, use(), msgBadAccessToken, `no longer knows "alice"`)
	checkTokenRefusal(t, e, redeem(), msgBadRefresh, `no longer knows "alice"`)

	reload(tokenSection, "")
	e.advance(2*time.Hour + time.Second)
	checkTokenRefusal(t, e, redeem(), msgBadRefresh, "expired")
}

// TestAccessTokensOff: without the access_tokens section a token is just
// a wrong password.
func TestAccessTokensOff(t *testing.T) {
	e := newTokenEnv(t, "")
	s := e.start("")
	raw, _ := mint(t, s, "alice", "static", time.Hour, "repository:alice/*:pull")
	checkTokenRefusal(t, e, get(s, "service=registry", "alice", raw), msgBadCredentials, "wrong password")
}

// countRequests reads gatehouse_token_requests_total{outcome, grant}.
func countRequests(t *testing.T, s *Server, outcome, grant string) float64 {
	t.Helper()
	mfs, err := s.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_token_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["outcome"] == outcome && labels["grant"] == grant {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
