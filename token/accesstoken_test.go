package token

import (
	"crypto"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signAccess signs claims with a's key and header typ: only the claims
// (or typ) can make Verify refuse it.
func signAccess(t *testing.T, a *AccessTokens, typ string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["typ"] = typ
	raw, err := tok.SignedString(a.key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mintCI(t *testing.T, a *AccessTokens, ttl time.Duration) (string, *AccessTokenClaims) {
	t.Helper()
	raw, c, err := a.Mint(AccessTokenClaims{Name: "ci-web", Owner: "ci", Authenticator: "static",
		Scopes: []string{"repository:web/*:pull,push"}, ExpiresAt: testNow.Add(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// TestAccessTokenRoundTrip mints a token and reads back what it says.
func TestAccessTokenRoundTrip(t *testing.T) {
	a := testSigner(t, testKey(t, "p256"), nil).AccessTokens()
	raw, minted := mintCI(t, a, 30*24*time.Hour)
	c, err := a.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.ID != minted.ID || c.Name != "ci-web" || c.Owner != "ci" || c.Authenticator != "static" ||
		!c.IssuedAt.Equal(testNow) || !c.ExpiresAt.Equal(testNow.Add(30*24*time.Hour)) ||
		len(c.Scopes) != 1 || c.Scopes[0] != "repository:web/*:pull,push" || c.Lifetime() != 30*24*time.Hour {
		t.Fatalf("claims %+v", c)
	}
	if typ, iss, ok := PeekJWT(raw); !ok || typ != accessTokenType || iss != "test issuer" {
		t.Errorf("PeekJWT = %q, %q, %v", typ, iss, ok)
	}
	if _, _, ok := PeekJWT("hunter2"); ok {
		t.Error("PeekJWT took a password for a JWT")
	}
}

// TestAccessTokenRefusals: every kind of token that is not a valid access
// token of this Gatehouse is refused, each for its own reason, while the
// unchanged claims are accepted (so the refusal is the change's doing).
func TestAccessTokenRefusals(t *testing.T) {
	s := testSigner(t, testKey(t, "p256"), nil)
	a := s.AccessTokens()
	valid := jwt.MapClaims{
		"iss": "test issuer", "sub": "ci", "aud": accessTokenAudience, "iat": testNow.Unix(),
		"exp": testNow.Add(time.Hour).Unix(), "jti": "id1", "gh_name": "ci-web", "gh_authn": "static",
		"gh_scope": []string{"repository:web/*:pull"},
	}
	good, _ := mintCI(t, a, time.Hour)
	refresh, err := s.Refresher().Issue("ci", "registry", "static", "hash")
	if err != nil {
		t.Fatal(err)
	}
	registry, err := s.Issue("ci", "registry", nil)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	other := testSigner(t, newTestKey(t, "p256"), nil).AccessTokens()
	otherRaw, _ := mintCI(t, other, time.Hour)
	tests := []struct {
		name    string
		raw     string
		wantMsg string // "": accepted
	}{
		{"unchanged claims are accepted", signAccess(t, a, accessTokenType, valid), ""},
		{"no expiry is accepted here (the policy decides)", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"exp": nil})), ""},
		{"expired", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"exp": testNow.Add(-time.Second).Unix()})), "expired"},
		{"issued in the future", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"iat": testNow.Add(time.Hour).Unix()})), "issued"},
		{"wrong audience", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"aud": "registry"})), "audience"},
		{"refresh audience", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"aud": refreshAudiencePfx + "registry"})), "audience"},
		{"wrong type", signAccess(t, a, refreshType, valid), "not an access token"},
		{"JWT type", signAccess(t, a, "JWT", valid), "not an access token"},
		{"another issuer", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"iss": "evil"})), "issuer"},
		{"no owner", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"sub": nil})), "no owner"},
		{"no id", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"jti": nil})), "no owner"},
		{"no issue time", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"iat": nil})), "no owner"},
		{"no scope", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"gh_scope": nil})), "no scope"},
		{"malformed scope", signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"gh_scope": []string{"repository"}})), "TYPE:NAME:ACTIONS"},
		{"tampered payload", parts[0] + "." + strings.Split(signAccess(t, a, accessTokenType, with(valid, jwt.MapClaims{"gh_scope": []string{"*:*:*"}})), ".")[1] + "." + parts[2], "signature"},
		{"signed by another Gatehouse", otherRaw, "signature"},
		{"refresh token as access token", refresh, "not an access token"},
		{"registry token as access token", registry.Raw, "signing method"},
		{"alg none", unsignedJWT(t, valid), "signing method"},
		{"not a JWT", "hunter2", "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := a.Verify(tc.raw)
			if tc.wantMsg == "" {
				if err != nil || c.Owner != "ci" {
					t.Fatalf("claims %+v, err %v; want accepted", c, err)
				}
				return
			}
			if c != nil || !errors.Is(err, ErrInvalidAccessToken) {
				t.Fatalf("claims %+v, err %v; want a refusal wrapping ErrInvalidAccessToken", c, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

func with(base, set jwt.MapClaims) jwt.MapClaims {
	c := maps.Clone(base)
	for k, v := range set {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func unsignedJWT(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	tok.Header["typ"] = accessTokenType
	raw, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAccessTokenNotARegistryOrRefreshToken: an access token is refused
// where a registry verifies bearer tokens (with the signing key, the
// registry's algorithms and audience) and where refresh tokens are
// redeemed.
func TestAccessTokenNotARegistryOrRefreshToken(t *testing.T) {
	s := testSigner(t, testKey(t, "p256"), nil)
	raw, _ := mintCI(t, s.AccessTokens(), time.Hour)
	// What distribution does: a JWT verified with the trusted public key,
	// the key's algorithms only, for its service and issuer.
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "ES256", "ES384", "ES512"}),
		jwt.WithAudience("registry"), jwt.WithIssuer("test issuer"), jwt.WithTimeFunc(fixedClock))
	if _, err := p.Parse(raw, func(*jwt.Token) (any, error) { return s.PublicKey().(crypto.PublicKey), nil }); err == nil {
		t.Fatal("a registry would accept the access token as a bearer token")
	}
	// Even with HS256 allowed and the public key's bytes as the HMAC key
	// (the classic confusion), it does not verify.
	p2 := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(fixedClock))
	if _, err := p2.Parse(raw, func(*jwt.Token) (any, error) { return []byte("test issuer"), nil }); err == nil {
		t.Fatal("verified with a guessable key")
	}
	if _, err := s.Refresher().Verify(raw, "registry"); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("access token redeemed as a refresh token: %v", err)
	}
}

// TestRefreshFromAccessToken: a refresh token issued to an access-token
// login never outlives the access token, and carries its id and scopes.
func TestRefreshFromAccessToken(t *testing.T) {
	s := testSigner(t, testKey(t, "p256"), func(c *Config) { c.RefreshExpiration = 90 * 24 * 3600 })
	_, at := mintCI(t, s.AccessTokens(), 2*time.Hour)
	raw, err := s.Refresher().IssueFrom("ci", "registry", "static", "gh-access:"+at.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Refresher().Verify(raw, "registry")
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(at.ExpiresAt) {
		t.Errorf("refresh token expires %v, the access token %v", c.ExpiresAt, at.ExpiresAt)
	}
	if c.From == nil || c.From.ID != at.ID || c.From.Name != "ci-web" || !c.From.ExpiresAt.Equal(at.ExpiresAt) || len(c.From.Scopes) != 1 {
		t.Errorf("from = %+v", c.From)
	}
	plain, _ := s.Refresher().Issue("ci", "registry", "static", "hash")
	if c, _ := s.Refresher().Verify(plain, "registry"); c == nil || c.From != nil || !c.ExpiresAt.Equal(testNow.Add(90*24*time.Hour)) {
		t.Errorf("password refresh token: %+v", c)
	}
}

func TestScopePatterns(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		typ, res string
		granted  []string
		want     string
	}{
		{"inside the glob", []string{"repository:web/*:pull,push"}, "repository", "web/app", []string{"pull", "push", "delete"}, "pull,push"},
		{"deep inside the glob", []string{"repository:web/*:pull"}, "repository", "web/a/b", []string{"pull", "push"}, "pull"},
		{"the prefix alone is not inside", []string{"repository:web/*:pull"}, "repository", "web", []string{"pull"}, ""},
		{"another repository", []string{"repository:web/*:pull"}, "repository", "api/app", []string{"pull"}, ""},
		{"never more than the ACL granted", []string{"repository:web/*:*"}, "repository", "web/app", []string{"pull"}, "pull"},
		{"another type", []string{"repository:web/*:pull"}, "registry", "catalog", []string{"*"}, ""},
		{"any type", []string{"*:*:pull"}, "repository", "x", []string{"pull", "push"}, "pull"},
		{"several patterns add up", []string{"repository:a:pull", "repository:a:push"}, "repository", "a", []string{"pull", "push"}, "pull,push"},
		{"exact name", []string{"repository:a:pull"}, "repository", "ab", []string{"pull"}, ""},
		{"host:port in the name", []string{"repository:reg:5000/a/*:pull"}, "repository", "reg:5000/a/b", []string{"pull"}, "pull"},
		{"star in the middle", []string{"repository:team-*/app:pull"}, "repository", "team-x/app", []string{"pull"}, "pull"},
		{"star in the middle does not match a different end", []string{"repository:team-*/app:pull"}, "repository", "team-x/appx", []string{"pull"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.patterns {
				if err := ValidateScopePattern(p); err != nil {
					t.Fatal(err)
				}
			}
			if got := strings.Join(AllowedActions(tc.patterns, tc.typ, tc.res, tc.granted), ","); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "repository", "repository:web", "repository::pull", ":a:pull", "repository:a:", "repository:a:pull,,push", "repository:a b:pull"} {
		if ValidateScopePattern(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "0d": 0, "90m": 90 * time.Minute} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "x", "-5h", "1.5d", "99999d"} {
		if _, err := ParseTTL(bad); err == nil {
			t.Errorf("ParseTTL(%q) accepted", bad)
		}
	}
}
