package token

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signRefresh signs claims as a refresh token with r's own secret and the
// refresh-token header: only the claims can make Verify refuse it.
func signRefresh(t *testing.T, r *Refresher, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["typ"] = refreshType
	raw, err := tok.SignedString(r.secret)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRefreshVerifyClaims changes one claim at a time of a refresh token
// signed with the right secret: each must be refused on its own account,
// and the unchanged token accepted (so the refusals are the claim's doing).
// A token minted for another service is covered by TestRefresher.
func TestRefreshVerifyClaims(t *testing.T) {
	r := testSigner(t, testKey(t, "p256"), nil).Refresher()
	valid := jwt.MapClaims{
		"iss":      "test issuer",
		"sub":      "alice",
		"aud":      refreshAudiencePfx + "registry",
		"iat":      testNow.Unix(),
		"exp":      testNow.Add(time.Hour).Unix(),
		"jti":      "id",
		"gh_authn": "static",
		"gh_cred":  "fingerprint",
	}
	tests := []struct {
		name    string
		set     jwt.MapClaims // claims replaced; a nil value removes the claim
		wantErr error         // nil: accepted
		wantMsg string        // in the error's message
	}{
		{"unchanged claims are accepted", nil, nil, ""},
		{"another issuer", jwt.MapClaims{"iss": "another issuer"}, jwt.ErrTokenInvalidIssuer, "issuer"},
		{"an issuer differing in case", jwt.MapClaims{"iss": "Test Issuer"}, jwt.ErrTokenInvalidIssuer, "issuer"},
		{"no issuer", jwt.MapClaims{"iss": nil}, jwt.ErrTokenRequiredClaimMissing, "iss"},
		{"empty subject", jwt.MapClaims{"sub": ""}, ErrInvalidRefreshToken, "subject"},
		{"no subject", jwt.MapClaims{"sub": nil}, ErrInvalidRefreshToken, "subject"},
		{"empty authenticator", jwt.MapClaims{"gh_authn": ""}, ErrInvalidRefreshToken, "authenticator"},
		{"no authenticator", jwt.MapClaims{"gh_authn": nil}, ErrInvalidRefreshToken, "authenticator"},
		{"no expiry", jwt.MapClaims{"exp": nil}, jwt.ErrTokenRequiredClaimMissing, "exp"},
		{"no credential fingerprint", jwt.MapClaims{"gh_cred": nil}, ErrInvalidRefreshToken, "bound to no credential"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims := maps.Clone(valid)
			for k, v := range tc.set {
				if v == nil {
					delete(claims, k)
				} else {
					claims[k] = v
				}
			}
			c, err := r.Verify(signRefresh(t, r, claims), "registry")
			if tc.wantErr == nil {
				if err != nil || c.Subject != "alice" || c.Authenticator != "static" {
					t.Fatalf("claims %+v, err %v; want alice from static", c, err)
				}
				return
			}
			if c != nil || !errors.Is(err, ErrInvalidRefreshToken) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("claims %+v, err %v; want a refusal wrapping ErrInvalidRefreshToken and %v", c, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not name the %s", err, tc.wantMsg)
			}
		})
	}
}

// TestRefreshVerifyExpiry moves the signer's clock: a refresh token is
// accepted until the second before its expiry and refused from then on.
func TestRefreshVerifyExpiry(t *testing.T) {
	var cfg *Config // testSigner's, reused with a clock the test moves
	testSigner(t, testKey(t, "p256"), func(c *Config) { c.RefreshExpiration = 3600; cfg = c })
	now := testNow
	s, err := cfg.NewSigner(WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	r := s.Refresher()
	raw, err := r.Issue("alice", "registry", "static", "$2a$04$hash")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		age     time.Duration // since issue
		expired bool
	}{
		{"just issued", 0, false},
		{"a second before expiry", time.Hour - time.Second, false},
		{"at expiry", time.Hour, true},
		{"a day after expiry", 25 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = testNow.Add(tc.age)
			c, err := r.Verify(raw, "registry")
			switch {
			case !tc.expired && (err != nil || !c.ExpiresAt.Equal(testNow.Add(time.Hour))):
				t.Fatalf("claims %+v, err %v; want accepted, expiring at %v", c, err, testNow.Add(time.Hour))
			case tc.expired && (!errors.Is(err, ErrInvalidRefreshToken) || !errors.Is(err, jwt.ErrTokenExpired)):
				t.Fatalf("claims %+v, err %v; want refused as expired", c, err)
			}
		})
	}
}
