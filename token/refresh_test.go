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
	raw, err := r.Issue("alice", "registry", "static")
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

	other := testSigner(t, testKey(t, "rsa2048"), nil).Refresher()
	otherRaw, _ := other.Issue("alice", "registry", "static")
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
