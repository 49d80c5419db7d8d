package token

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestRefresher(t *testing.T) {
	key := testKey(t, "p256")
	s := testSigner(t, key, nil)
	r := s.Refresher()
	if r == nil {
		t.Fatal("OAuth2 is on by default, but there is no refresher")
	}
	raw, err := r.Issue("alice", "registry", "static", "$2a$10$alicehash")
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Verify(raw, "registry")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Authenticator != "static" || c.Service != "registry" ||
		!c.ExpiresAt.Equal(testNow.Truncate(time.Second).Add(DefaultRefreshExpiration*time.Second)) {
		t.Fatalf("claims %+v", c)
	}
	if !r.Bound(c, "$2a$10$alicehash") {
		t.Fatal("the token is not bound to the credential it was issued against")
	}

	other := testSigner(t, testKey(t, "rsa2048"), nil).Refresher()
	otherRaw, _ := other.Issue("alice", "registry", "static", "$2a$10$alicehash")
	retyped := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "test issuer", "sub": "alice", "aud": "gatehouse-refresh:registry", "exp": testNow.Add(time.Hour).Unix(), "gh_authn": "static"})
		out, _ := tok.SignedString(r.secret) // right secret, but typ JWT
		return out
	}()
	parts := strings.Split(raw, ".")
	tests := []struct {
		name, raw, service string
	}{
		{"another service", raw, "other"},
		{"another key's secret", otherRaw, "registry"},
		{"tampered claims", parts[0] + "." + parts[1] + "x." + parts[2], "registry"},
		{"access-token type", retyped, "registry"},
		{"an access token", mustIssue(t, s), "registry"},
		{"garbage", "not.a.token", "registry"},
		{"empty", "", "registry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Verify(tc.raw, tc.service); !errors.Is(err, ErrInvalidRefreshToken) {
				t.Fatalf("err = %v, want ErrInvalidRefreshToken", err)
			}
		})
	}
}

// TestRefreshTokenBoundToCredential: a refresh token carries a keyed
// fingerprint of the stored credential and its owner, so it stops working
// when the password (and so the stored hash) changes, and it cannot be
// moved to another account or authenticator.
func TestRefreshTokenBoundToCredential(t *testing.T) {
	r := testSigner(t, testKey(t, "p256"), nil).Refresher()
	raw, err := r.Issue("alice", "registry", "static", "$2a$10$old")
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Verify(raw, "registry")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, credential string
		change           func(c RefreshClaims) RefreshClaims
		want             bool
	}{
		{"same credential", "$2a$10$old", nil, true},
		{"changed credential", "$2a$10$new", nil, false},
		{"credential removed", "", nil, false},
		{"another account", "$2a$10$old", func(c RefreshClaims) RefreshClaims { c.Subject = "bob"; return c }, false},
		{"another authenticator", "$2a$10$old", func(c RefreshClaims) RefreshClaims { c.Authenticator = "htpasswd"; return c }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := *c
			if tc.change != nil {
				claims = tc.change(claims)
			}
			if got := r.Bound(&claims, tc.credential); got != tc.want {
				t.Fatalf("Bound = %v, want %v", got, tc.want)
			}
		})
	}
	if strings.Contains(raw, "old") {
		t.Fatal("the token carries the credential in clear")
	}
	t.Run("a token without a fingerprint is refused", func(t *testing.T) {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "test issuer", "sub": "alice", "aud": "gatehouse-refresh:registry", "exp": testNow.Add(time.Hour).Unix(), "gh_authn": "static"})
		tok.Header["typ"] = refreshType
		unbound, _ := tok.SignedString(r.secret)
		if _, err := r.Verify(unbound, "registry"); !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "bound to no credential") {
			t.Fatalf("err = %v, want ErrInvalidRefreshToken: bound to no credential", err)
		}
	})
}

func mustIssue(t *testing.T, s *Signer) string {
	tok, err := s.Issue("alice", "registry", nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Raw
}

func TestRefreshSecretFile(t *testing.T) {
	key := testKey(t, "p256")
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tooshort"), 0o600)
	c := &Config{Issuer: "i", Expiration: 900, RefreshSecretFile: short,
		Certificate: writeFile(t, dir, "c.pem", certsPEM(selfSigned(t, key))), Key: writeFile(t, dir, "k.pem", keyPEM(t, key, "pkcs8"))}
	_, err := c.NewSigner(WithClock(fixedClock))
	if paths := errorPaths(t, err); len(paths) != 1 || paths[0] != "refresh_secret_file" {
		t.Fatalf("err %v", err)
	}
	f := false
	c.RefreshSecretFile, c.OAuth2 = "", &f
	s, err := c.NewSigner(WithClock(fixedClock))
	if err != nil || s.Refresher() != nil {
		t.Fatalf("oauth2 off: refresher %v, err %v", s.Refresher(), err)
	}
}
