package auth

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokensOnly: an account named by access_tokens.tokens_only (by name,
// label or authenticator) is refused a registry login with its password,
// on GET and on the OAuth2 password POST, with a 401 errcode body that
// says to use an access token; its access tokens work; other accounts'
// passwords work.
func TestTokensOnly(t *testing.T) {
	tests := []struct {
		name       string
		tokensOnly string
		refused    []string // of alice (static, team=blue) and carol (htpasswd)
		allowed    []string
	}{
		{"by account", "{accounts: [alice]}", []string{"alice"}, []string{"carol"}},
		{"by label", "{labels: [\"team=blue\"]}", []string{"alice"}, []string{"carol"}},
		{"by authenticator", "{authenticators: [htpasswd]}", []string{"carol"}, []string{"alice"}},
	}
	passwords := map[string]string{"alice": "alicepw", "carol": "carolpw"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTokenEnv(t, tokenSection+"  tokens_only: "+tc.tokensOnly+"\n")
			s := e.start("")
			for _, who := range tc.refused {
				r := get(s, "service=registry&scope=repository:"+who+"/app:pull", who, passwords[who])
				checkPasswordRefused(t, e, r, who)
				p := post(s, form("grant_type", "password", "service", "registry", "client_id", "ci",
					"username", who, "password", passwords[who], "scope", "repository:"+who+"/app:pull"))
				checkPasswordRefused(t, e, p, who)
				authn := "static"
				if who == "carol" {
					authn = "htpasswd"
				}
				raw, _ := mint(t, s, who, authn, time.Hour, "repository:"+who+"/*:pull")
				if r := get(s, "service=registry&scope=repository:"+who+"/app:pull", who, raw); r.status != 200 ||
					grants(claimsOf(t, r.body.Token)) != "repository:"+who+"/app:pull" {
					t.Errorf("%s's access token: %d %s", who, r.status, r.raw)
				}
			}
			for _, who := range tc.allowed {
				if r := get(s, "service=registry&scope=repository:"+who+"/app:pull", who, passwords[who]); r.status != 200 {
					t.Errorf("%s's password: %d %s, want 200 (not tokens-only)", who, r.status, r.raw)
				}
			}
		})
	}
}

// TestTokensOnlyRefusesPasswordRefreshTokens: a refresh token issued to a
// password login before the account became tokens-only is refused once it
// is; one issued to an access-token login keeps working.
func TestTokensOnlyRefusesPasswordRefreshTokens(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	raw, _ := mint(t, s, "alice", "static", time.Hour, "repository:alice/*:pull")
	fromPassword := get(s, "service=registry&offline_token=true", "alice", "alicepw").body.RefreshToken
	fromToken := get(s, "service=registry&offline_token=true", "alice", raw).body.RefreshToken
	if fromPassword == "" || fromToken == "" {
		t.Fatal("no refresh token issued")
	}
	e.top = tokenSection + "  tokens_only: {accounts: [alice]}\n"
	next := *e.server("", "").Config()
	if err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	redeem := func(rt string) result {
		return post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "docker",
			"refresh_token", rt, "scope", "repository:alice/app:pull"))
	}
	checkPasswordRefused(t, e, redeem(fromPassword), "alice")
	if r := redeem(fromToken); r.status != 200 {
		t.Errorf("refresh token of an access-token login: %d %s", r.status, r.raw)
	}
}

func checkPasswordRefused(t *testing.T, e *tokenEnv, r result, who string) {
	t.Helper()
	if r.status != 401 || r.body.Token != "" || r.body.AccessToken != "" {
		t.Fatalf("%s's password: status %d, want 401: %s", who, r.status, r.raw)
	}
	var body errorBody
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != CodeUnauthorized {
		t.Fatalf("%s's password: body %s, want one UNAUTHORIZED error", who, r.raw)
	}
	if msg := body.Errors[0].Message; !strings.Contains(msg, "password login is disabled for "+who) || !strings.Contains(msg, "access token") {
		t.Fatalf("%s's password: message %q does not say to use an access token", who, msg)
	}
	line := e.lastLine(t, "token request refused")
	if got, _ := line["reason"].(string); !strings.Contains(got, "tokens_only") {
		t.Fatalf("logged reason %q, want tokens_only", got)
	}
}

// TestAccessTokenAnyUsername: with any_username the docker login user name
// is ignored and the token acts for its owner (as the audit line says);
// without it another name is refused.
func TestAccessTokenAnyUsername(t *testing.T) {
	tests := []struct {
		name    string
		section string
		status  int
	}{
		{"any user name", tokenSection + "  any_username: true\n", 200},
		{"the owner's name only", tokenSection, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTokenEnv(t, tc.section)
			s := e.start("")
			raw, c := mint(t, s, "alice", "static", time.Hour, "repository:alice/*:pull")
			r := get(s, "service=registry&scope=repository:alice/app:pull", "gitlab-ci-token", raw)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			if tc.status != 200 {
				return
			}
			if cl := claimsOf(t, r.body.Token); cl.Subject != "alice" || grants(cl) != "repository:alice/app:pull" {
				t.Errorf("token for %q granting %q, want alice's, pull", cl.Subject, grants(cl))
			}
			if line := e.lastLine(t, auditMessage); line["account"] != "alice" || line["token_id"] != c.ID {
				t.Errorf("audit line %v, want account alice and the token's id", line)
			}
		})
	}
}

// TestAccessTokenOwnerRemovedFromHtpasswd: a token owned by an htpasswd
// user stops working once the user is removed from the file and the
// configuration reloads, and so the refresh tokens of its logins.
func TestAccessTokenOwnerRemovedFromHtpasswd(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	raw, _ := mint(t, s, "carol", "htpasswd", time.Hour, "repository:carol/*:pull")
	use := func() result { return get(s, "service=registry&scope=repository:carol/app:pull", "carol", raw) }
	login := get(s, "service=registry&offline_token=true", "carol", raw)
	if r := use(); r.status != 200 || login.body.RefreshToken == "" {
		t.Fatalf("before the removal: %d %s / %s", r.status, r.raw, login.raw)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "htpasswd"), []byte("# carol left\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := *e.server("", "").Config()
	if err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	checkTokenRefusal(t, e, use(), msgBadAccessToken, `htpasswd no longer knows "carol"`)
	r := post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "docker",
		"refresh_token", login.body.RefreshToken, "scope", "repository:carol/app:pull"))
	checkTokenRefusal(t, e, r, msgBadRefresh, `htpasswd no longer knows "carol"`)
}

// TestAccessTokenGrantCache: a repeated access-token login is answered by
// the grant cache (the audit line still names the token), never after the
// token expires, and not after a reload that revokes it.
func TestAccessTokenGrantCache(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	raw, _ := mint(t, s, "alice", "static", time.Hour, "repository:alice/*:pull")
	other, oc := mint(t, s, "alice", "static", 2*time.Hour, "repository:alice/*:pull")
	use := func(tok string) result {
		return get(s, "service=registry&scope=repository:alice/app:pull", "alice", tok)
	}
	for i := range 2 {
		if r := use(raw); r.status != 200 {
			t.Fatalf("use %d: %d %s", i, r.status, r.raw)
		}
		if r := use(other); r.status != 200 {
			t.Fatalf("use %d of the other token: %d %s", i, r.status, r.raw)
		}
	}
	if got := metric(t, s, "gatehouse_grant_cache_hits_total"); got != "2" {
		t.Fatalf("grant cache hits %q, want 2", got)
	}
	if line := e.lastLine(t, auditMessage); line["token_id"] != oc.ID {
		t.Errorf("the cached answer's audit line %v does not name the token", line)
	}
	e.advance(time.Hour + time.Second)
	checkTokenRefusal(t, e, use(raw), msgBadAccessToken, "expired")

	e.top = tokenSection + "  revoked: [" + oc.ID + "]\n"
	next := *e.server("", "").Config()
	if err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	checkTokenRefusal(t, e, use(other), msgBadAccessToken, "is revoked")
}
