package token

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestSignInRecord: a sealed revalidation record opens only as the
// credential's it was sealed for, under the same refresh secret, unaltered;
// a credential's sealed refresh token does not open as a record.
func TestSignInRecord(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }
	s, err := newSignIns([]byte("secret one, at least 32 bytes long!"), "iss", now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newSignIns([]byte("secret two, at least 32 bytes long!"), "iss", now)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"rt":"provider-refresh-token"}`)
	sealed := s.SealRecord("cred-1", plain)
	if bytes.Contains(sealed, []byte("provider-refresh-token")) {
		t.Fatalf("sealed record holds the token in clear: %q", sealed)
	}
	if got, err := s.OpenRecord("cred-1", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenRecord: %q, %v", got, err)
	}
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1

	raw, c, err := s.Mint(SignInClaims{Account: "a", Provider: "gitlab_auth", Subject: "1", RefreshToken: "provider-refresh-token"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var jc signInJWT
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &jc); err != nil {
		t.Fatal(err)
	}
	fromCred, _ := base64.RawURLEncoding.DecodeString(jc.Sealed)

	cases := []struct {
		name   string
		s      *SignIns
		id     string
		sealed []byte
	}{
		{"another credential's id", s, "cred-2", sealed},
		{"another refresh secret", other, "cred-1", sealed},
		{"altered", s, "cred-1", altered},
		{"truncated", s, "cred-1", sealed[:10]},
		{"a credential's sealed refresh token", s, c.ID, fromCred},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.s.OpenRecord(tc.id, tc.sealed); err == nil || !strings.HasPrefix(err.Error(), "token: ") {
				t.Fatalf("opened: %q, %v", got, err)
			}
		})
	}
}
