package auth

import (
	"encoding/json"
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestRefreshAfterReloadDropsItsAuthenticator reloads a running server
// with a configuration that has no htpasswd_auth: a refresh token issued
// by htpasswd is refused, even though the new configuration has a static
// user of the same name (the token names the authenticator, which must be
// the one that looks the account up), while a static user's token still
// works.
func TestRefreshAfterReloadDropsItsAuthenticator(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	refreshToken := func(user, pass string) string {
		t.Helper()
		r := get(s, "service=registry&offline_token=true", user, pass)
		if r.status != 200 || r.body.RefreshToken == "" {
			t.Fatalf("login of %s: %d %s", user, r.status, r.raw)
		}
		return r.body.RefreshToken
	}
	fromHtpasswd, fromStatic := refreshToken("carol", "carolpw"), refreshToken("alice", "alicepw")
	redeem := func(rt string) result {
		return post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "docker",
			"refresh_token", rt, "scope", "repository:carol/app:pull"))
	}
	if r := redeem(fromHtpasswd); r.status != 200 {
		t.Fatalf("before the reload: %d %s", r.status, r.raw)
	}

	// The same users, carol now a static user with another password, and
	// no htpasswd file.
	carolPW, err := bcrypt.GenerateFromPassword([]byte("carol-static-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	next := *env.server("", fmt.Sprintf("  alice: {password: %q, labels: {team: [blue]}}\n  carol: {password: %q}\n", alicePW, carolPW)).Config()
	next.Htpasswd = nil
	if err := s.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if r := get(s, "service=registry", "carol", "carol-static-pw"); r.status != 200 {
		t.Fatalf("the static carol cannot log in after the reload: %d %s", r.status, r.raw)
	}

	tests := []struct {
		name       string
		rt         string
		wantStatus int
		wantSub    string
	}{
		{"a token of the dropped authenticator is refused", fromHtpasswd, 401, ""},
		{"a token of a kept authenticator still works", fromStatic, 200, "alice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := redeem(tc.rt)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.raw)
			}
			if tc.wantStatus != 200 {
				if r.body.Token != "" || r.body.AccessToken != "" {
					t.Fatalf("a refusal carries a token: %s", r.raw)
				}
				var body errorBody
				if err := json.Unmarshal([]byte(r.raw), &body); err != nil || len(body.Errors) != 1 ||
					body.Errors[0].Code != CodeUnauthorized || body.Errors[0].Message != msgBadRefresh {
					t.Fatalf("body %s, want %s %q", r.raw, CodeUnauthorized, msgBadRefresh)
				}
				return
			}
			if sub := claimsOf(t, r.body.AccessToken).Subject; sub != tc.wantSub {
				t.Fatalf("subject %q, want %q", sub, tc.wantSub)
			}
		})
	}
}
