package token

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Access tokens (for machines: CI jobs, deploys) are HMAC-SHA256 JWTs that
// only Gatehouse can verify, used as the password of docker login. Their
// key is derived with HKDF from the refresh-token secret (refresh_secret_file,
// else derived from the signing key), under its own label, so an access
// token's signature never verifies as a refresh token's and the other way
// round. They differ from registry tokens in algorithm (HS256 with a secret
// no registry holds), header type and audience, so no registry accepts one
// as a bearer token; and from refresh tokens in header type and audience.
const (
	accessTokenType     = "gatehouse-access+jwt"
	accessTokenAudience = "gatehouse-access"
)

// ErrInvalidAccessToken is returned (wrapped with the reason) for an access
// token that is malformed, forged, expired, or another kind of token.
var ErrInvalidAccessToken = errors.New("token: invalid access token")

// AccessTokenClaims are what an access token says.
type AccessTokenClaims struct {
	// ID is the jti claim: what a revocation list names.
	ID string
	// Name is the operator's name for the token ("ci-web").
	Name string
	// Owner is the account it acts for (the sub claim).
	Owner string
	// Authenticator names the backend the owner is looked up in on every
	// use: a removed owner's tokens stop working at once.
	Authenticator string
	// Scopes are the patterns the token may use ("repository:web/*:pull,push");
	// what it grants is their intersection with the owner's ACL.
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time // zero: no expiry
}

// Lifetime is ExpiresAt-IssuedAt, or 0 without expiry.
func (c *AccessTokenClaims) Lifetime() time.Duration {
	if c.ExpiresAt.IsZero() {
		return 0
	}
	return c.ExpiresAt.Sub(c.IssuedAt)
}

type accessJWT struct {
	jwt.RegisteredClaims
	Name          string   `json:"gh_name"`
	Authenticator string   `json:"gh_authn"`
	Scopes        []string `json:"gh_scope"`
}

// AccessTokens mints and verifies access tokens. It is safe for concurrent
// use. An access token carries no fingerprint of the owner's credential: it
// survives a change of the owner's password (that is its point: a machine
// does not hold the password); it ends by expiry, by revocation of its jti,
// or by removal of its owner.
type AccessTokens struct {
	key    []byte
	issuer string
	now    func() time.Time
	parser *jwt.Parser
}

// newAccessTokens derives the access-token key from the refresh secret.
func newAccessTokens(secret []byte, issuer string, now func() time.Time) (*AccessTokens, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, "gatehouse access-token key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("token: deriving the access-token key: %w", err)
	}
	a := &AccessTokens{key: key, issuer: issuer, now: now}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return a.now() }),
	)
	return a, nil
}

// AccessTokens returns the signer's access-token minter and verifier.
func (s *Signer) AccessTokens() *AccessTokens { return s.access }

// Mint signs an access token for c.Owner with c's name, authenticator,
// scopes and expiry (zero: none); its ID and IssuedAt are set here and
// returned in the claims. The scopes must pass ValidateScopePattern.
func (a *AccessTokens) Mint(c AccessTokenClaims) (string, *AccessTokenClaims, error) {
	if c.Owner == "" || c.Authenticator == "" || c.Name == "" {
		return "", nil, errors.New("token: an access token needs an owner, an authenticator and a name")
	}
	if len(c.Scopes) == 0 {
		return "", nil, errors.New("token: an access token needs at least one scope")
	}
	for _, p := range c.Scopes {
		if err := ValidateScopePattern(p); err != nil {
			return "", nil, err
		}
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	c.ID = base64.RawURLEncoding.EncodeToString(id)
	c.IssuedAt = a.now().Truncate(time.Second)
	if !c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.ExpiresAt.Truncate(time.Second)
		if !c.ExpiresAt.After(c.IssuedAt) {
			return "", nil, errors.New("token: an access token must expire after it is issued")
		}
	}
	claims := accessJWT{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:   a.issuer,
			Subject:  c.Owner,
			Audience: jwt.ClaimStrings{accessTokenAudience},
			IssuedAt: jwt.NewNumericDate(c.IssuedAt),
			ID:       c.ID,
		},
		Name:          c.Name,
		Authenticator: c.Authenticator,
		Scopes:        c.Scopes,
	}
	if !c.ExpiresAt.IsZero() {
		claims.ExpiresAt = jwt.NewNumericDate(c.ExpiresAt)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = accessTokenType
	raw, err := t.SignedString(a.key)
	if err != nil {
		return "", nil, fmt.Errorf("token: signing access token: %w", err)
	}
	return raw, &c, nil
}

// Verify checks raw's signature, type, audience, issuer and expiry. Every
// failure wraps ErrInvalidAccessToken. Revocation, the owner's existence
// and the lifetime policy are the caller's to check.
func (a *AccessTokens) Verify(raw string) (*AccessTokenClaims, error) {
	var c accessJWT
	t, err := a.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != accessTokenType {
			return nil, fmt.Errorf("not an access token (typ %v)", t.Header["typ"])
		}
		return a.key, nil
	})
	if err != nil || !t.Valid {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAccessToken, err)
	}
	if len(c.Audience) != 1 || c.Audience[0] != accessTokenAudience {
		return nil, fmt.Errorf("%w: wrong audience %v", ErrInvalidAccessToken, c.Audience)
	}
	if c.Subject == "" || c.Authenticator == "" || c.ID == "" || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: no owner, authenticator, id or issue time", ErrInvalidAccessToken)
	}
	if len(c.Scopes) == 0 {
		return nil, fmt.Errorf("%w: no scope", ErrInvalidAccessToken)
	}
	for _, p := range c.Scopes {
		if err := ValidateScopePattern(p); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidAccessToken, err)
		}
	}
	out := &AccessTokenClaims{ID: c.ID, Name: c.Name, Owner: c.Subject, Authenticator: c.Authenticator,
		Scopes: c.Scopes, IssuedAt: c.IssuedAt.Time}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

// PeekJWT reads, without verifying anything, the header type and the
// issuer of a string shaped like a compact JWS; ok is false for anything
// else (a password). It lets the authenticator chain route a Gatehouse
// token to its verifier before any password check.
func PeekJWT(s string) (typ, issuer string, ok bool) {
	if len(s) > 16<<10 || strings.Count(s, ".") != 2 {
		return "", "", false
	}
	h, rest, _ := strings.Cut(s, ".")
	p, _, _ := strings.Cut(rest, ".")
	var head struct {
		Typ string `json:"typ"`
	}
	var body struct {
		Iss string `json:"iss"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(h)
	pb, err2 := base64.RawURLEncoding.DecodeString(p)
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &head) != nil || json.Unmarshal(pb, &body) != nil {
		return "", "", false
	}
	return head.Typ, body.Iss, true
}

// ParseTTL parses a lifetime written as a Go duration ("720h") or a number
// of days ("30d").
func ParseTTL(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("token: want a lifetime such as 30d or 12h, got %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("token: want a lifetime such as 30d or 12h, got %q", s)
	}
	return v, nil
}
