package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// mintReq POSTs body to /access_tokens with Basic user:pass (none when
// user is "-") from ip.
func mintReq(s *Server, ip, user, pass, body string) result {
	req := httptest.NewRequest(http.MethodPost, "/access_tokens", strings.NewReader(body))
	req.RemoteAddr = ip + ":40000"
	req.Header.Set("Content-Type", "application/json")
	if user != "-" {
		req.SetBasicAuth(user, pass)
	}
	return do(s, req)
}

// minted decodes a minting answer.
func minted(t *testing.T, r result) mintAnswer {
	t.Helper()
	if r.status != http.StatusCreated {
		t.Fatalf("mint: status %d, want 201: %s", r.status, r.raw)
	}
	var a mintAnswer
	if err := json.Unmarshal([]byte(r.raw), &a); err != nil || a.Token == "" {
		t.Fatalf("mint: %v: %s", err, r.raw)
	}
	return a
}

// checkErrcode fails unless r is status with one errcode entry of code
// whose message contains msg.
func checkErrcode(t *testing.T, r result, status int, code, msg string) {
	t.Helper()
	var body errorBody
	if r.status != status || json.Unmarshal([]byte(r.raw), &body) != nil || len(body.Errors) != 1 ||
		body.Errors[0].Code != code || !strings.Contains(body.Errors[0].Message, msg) {
		t.Fatalf("got %d %s, want %d %s %q", r.status, r.raw, status, code, msg)
	}
}

// TestMintHappyPath: alice mints a token with her password and with a
// refresh token of a password login; the token works as her password and
// grants the intersection of its patterns and her ACL, whatever patterns
// she asked for; the answer and the audit line name it.
func TestMintHappyPath(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	a := minted(t, mintReq(s, "192.0.2.1", "alice", "alicepw", `{"name":"ci-web","scopes":["repository:alice/*:pull","repository:bob/*:pull,push"],"ttl":"2d"}`))
	if a.Owner != "alice" || a.Name != "ci-web" || len(a.Scopes) != 2 || a.ID == "" {
		t.Errorf("answer %+v", a)
	}
	if exp, err := time.Parse(time.RFC3339, a.ExpiresAt); err != nil || !exp.Equal(e.clock().Add(48*time.Hour)) {
		t.Errorf("expires_at %q, want %v", a.ExpiresAt, e.clock().Add(48*time.Hour))
	}
	if line := e.lastLine(t, "access token minted"); line["token_id"] != a.ID || line["account"] != "alice" {
		t.Errorf("log line %v", line)
	}
	for scope, want := range map[string]string{
		"repository:alice/app:pull,push": "repository:alice/app:pull", // narrowed by the token
		"repository:bob/app:pull":        "repository:bob/app:",       // stored as asked, not granted by her ACL
	} {
		r := get(s, "service=registry&scope="+scope, "alice", a.Token)
		if r.status != 200 || grants(claimsOf(t, r.body.Token)) != want {
			t.Errorf("%s with the minted token: %d %s, want %s", scope, r.status, r.raw, want)
		}
	}

	rt := get(s, "service=registry&offline_token=true", "alice", "alicepw").body.RefreshToken
	b := minted(t, mintReq(s, "192.0.2.1", "", rt, `{"name":"from-refresh","scopes":["repository:alice/*:pull"],"service":"registry"}`))
	if b.Owner != "alice" {
		t.Errorf("minted with a refresh token for %q", b.Owner)
	}
	if exp, _ := time.Parse(time.RFC3339, b.ExpiresAt); !exp.Equal(e.clock().Add(30 * 24 * time.Hour)) {
		t.Errorf("without ttl: expires_at %q, want the default (30d, max_ttl)", b.ExpiresAt)
	}
}

// TestMintTokenCannotMint: an access token as the password, or a refresh
// token issued to an access-token login, cannot mint (403 DENIED).
func TestMintTokenCannotMint(t *testing.T) {
	e := newTokenEnv(t, tokenSection)
	s := e.start("")
	raw, _ := mint(t, s, "alice", "static", time.Hour, "*:*:*")
	rt := get(s, "service=registry&offline_token=true", "alice", raw).body.RefreshToken
	if rt == "" {
		t.Fatal("no refresh token for the access-token login")
	}
	body := `{"name":"more","scopes":["repository:alice/*:pull"],"service":"registry"}`
	checkErrcode(t, mintReq(s, "192.0.2.2", "alice", raw, body), 403, CodeDenied, "cannot mint")
	checkErrcode(t, mintReq(s, "192.0.2.2", "", rt, body), 403, CodeDenied, "cannot mint")
}

// TestMintLifetimePolicy: the lifetime policy holds at minting, by label.
func TestMintLifetimePolicy(t *testing.T) {
	e := newTokenEnv(t, tokenSection) // max_ttl 30d, team=blue 60d; alice is team=blue
	s := e.start("")
	tests := []struct {
		name, user, pass, body string
		status                 int
		msg                    string
	}{
		{"within the label's maximum", "alice", "alicepw", `{"name":"a","scopes":["*:*:*"],"ttl":"60d"}`, 201, ""},
		{"beyond the label's maximum", "alice", "alicepw", `{"name":"a","scopes":["*:*:*"],"ttl":"61d"}`, 400, "longer than"},
		{"beyond max_ttl without the label", "carol", "carolpw", `{"name":"a","scopes":["*:*:*"],"ttl":"31d"}`, 400, "longer than"},
		{"no expiry refused", "alice", "alicepw", `{"name":"a","scopes":["*:*:*"],"no_expiry":true}`, 400, "allow_no_expiry"},
		{"a bad lifetime", "alice", "alicepw", `{"name":"a","scopes":["*:*:*"],"ttl":"forever"}`, 400, "ttl"},
		{"a bad pattern", "alice", "alicepw", `{"name":"a","scopes":["repository"]}`, 400, "repository"},
		{"no scopes", "alice", "alicepw", `{"name":"a"}`, 400, "scopes"},
		{"no name", "alice", "alicepw", `{"scopes":["*:*:*"]}`, 400, "name"},
		{"an unknown field", "alice", "alicepw", `{"name":"a","scopes":["*:*:*"],"owner":"bob"}`, 400, "unknown field"},
		{"not JSON", "alice", "alicepw", `name=a`, 400, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mintReq(s, "192.0.2.3", tc.user, tc.pass, tc.body)
			if tc.status == 201 {
				minted(t, r)
				return
			}
			checkErrcode(t, r, tc.status, CodeBadRequest, tc.msg)
		})
	}
}

// TestMintUnauthenticated: no credentials or a wrong password is a 401
// with a challenge; failures are throttled like logins; a tokens-only
// account mints with its password; other methods and bodies are refused
// with errcode bodies; with access tokens off the endpoint is 404.
func TestMintUnauthenticated(t *testing.T) {
	e := newTokenEnv(t, tokenSection+"  tokens_only: {accounts: [alice]}\n")
	s := e.start("")
	body := `{"name":"a","scopes":["repository:alice/*:pull"]}`
	r := mintReq(s, "192.0.2.4", "-", "", body)
	checkErrcode(t, r, 401, CodeUnauthorized, msgNoCredentials)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without a challenge")
	}
	checkErrcode(t, mintReq(s, "192.0.2.4", "alice", "wrong", body), 401, CodeUnauthorized, msgBadCredentials)
	minted(t, mintReq(s, "192.0.2.5", "alice", "alicepw", body)) // tokens-only: the password mints

	throttled := false
	for range 20 {
		if r := mintReq(s, "192.0.2.6", "alice", "wrong", body); r.status == http.StatusTooManyRequests {
			checkErrcode(t, r, 429, CodeTooManyRequests, "too many")
			throttled = true
			break
		}
	}
	if !throttled {
		t.Error("20 wrong passwords in a row were never throttled")
	}

	get := httptest.NewRequest(http.MethodGet, "/access_tokens", nil)
	checkErrcode(t, do(s, get), 405, CodeUnsupported, "POST")
	form := httptest.NewRequest(http.MethodPost, "/access_tokens", strings.NewReader(body))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	checkErrcode(t, do(s, form), 415, CodeUnsupported, "application/json")
	big := mintReq(s, "192.0.2.7", "alice", "alicepw", `{"name":"`+strings.Repeat("a", maxMintBody)+`"}`)
	checkErrcode(t, big, 413, CodeTooLarge, "larger")

	off := newTokenEnv(t, "").start("")
	checkErrcode(t, mintReq(off, "192.0.2.8", "alice", "alicepw", body), 404, CodeNotFound, "not enabled")
}
