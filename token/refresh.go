package token

import (
	"crypto"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Refresh tokens are HMAC-signed JWTs that only Gatehouse can verify. They
// differ from access tokens in algorithm (HS256 with a secret no registry
// holds), header type and audience ("gatehouse-refresh:" + service), so a
// registry never accepts one as an access token.
const (
	refreshType        = "gatehouse-refresh+jwt"
	refreshAudiencePfx = "gatehouse-refresh:"
	// MinRefreshSecret is the shortest refresh_secret_file content accepted.
	MinRefreshSecret = 32
)

// ErrInvalidRefreshToken is returned (wrapped with the reason) for a refresh
// token that is malformed, forged, expired or meant for another service.
var ErrInvalidRefreshToken = errors.New("token: invalid refresh token")

// RefreshClaims are what a refresh token says.
type RefreshClaims struct {
	// Subject is the account the token was issued to.
	Subject string
	// Service is the audience it may be redeemed for.
	Service string
	// Authenticator names the backend that authenticated the account; the
	// account is looked up there again on every use.
	Authenticator string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	// From is set when the token was issued to a login with an access
	// token: its use is bound to that token's id (revocation), owner and
	// scopes, and it expires no later than the access token.
	From *AccessTokenClaims
	// credential is the fingerprint of the stored credential the token was
	// issued against; Refresher.Bound compares it with the current one.
	credential string
}

type refreshJWT struct {
	jwt.RegisteredClaims
	Authenticator string `json:"gh_authn"`
	// Credential is a keyed fingerprint of the stored credential
	// (authn.Account.Credential): a password change revokes the token.
	Credential string `json:"gh_cred"`
	// From binds a refresh token issued to an access-token login to it.
	From *fromAccess `json:"gh_at,omitempty"`
}

// fromAccess is what a refresh token keeps of the access token it was
// issued to a login with.
type fromAccess struct {
	ID        string   `json:"jti"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scope"`
	IssuedAt  int64    `json:"iat"`
	ExpiresAt int64    `json:"exp,omitempty"`
}

// Refresher issues and verifies refresh tokens. It is safe for concurrent
// use.
type Refresher struct {
	secret  []byte
	credKey []byte // keys the credential fingerprints
	issuer  string
	ttl     time.Duration
	now     func() time.Time
	parser  *jwt.Parser
}

// newRefresher returns nil when OAuth2 is off. The secret comes from
// refresh_secret_file, else it is derived from the signing key with HKDF.
func (c *Config) newRefresher(key crypto.Signer, s *Signer) (*Refresher, error) {
	if !c.OAuth2Enabled() {
		return nil, nil
	}
	secret, err := c.refreshSecret(key)
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(c.RefreshExpiration) * time.Second
	if ttl == 0 {
		ttl = DefaultRefreshExpiration * time.Second
	}
	credKey, err := hkdf.Key(sha256.New, secret, nil, "gatehouse refresh-token credential fingerprint v1", 32)
	if err != nil {
		return nil, fmt.Errorf("token: deriving the credential fingerprint key: %w", err)
	}
	r := &Refresher{secret: secret, credKey: credKey, issuer: c.Issuer, ttl: ttl, now: s.now}
	r.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(c.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return r.now() }),
	)
	return r, nil
}

// refreshSecret reads refresh_secret_file, or derives the secret from the
// signing key with HKDF when there is none.
func (c *Config) refreshSecret(key crypto.Signer) ([]byte, error) {
	var secret []byte
	if c.RefreshSecretFile != "" {
		data, err := os.ReadFile(c.RefreshSecretFile)
		if err != nil {
			return nil, cfgerr.At(fmt.Errorf("token: reading refresh secret: %w", err), "refresh_secret_file")
		}
		secret = []byte(strings.TrimSpace(string(data)))
		if len(secret) < MinRefreshSecret {
			return nil, cfgerr.At(fmt.Errorf("token: refresh secret in %s is %d bytes; use at least %d (e.g. head -c 48 /dev/urandom | base64)", c.RefreshSecretFile, len(secret), MinRefreshSecret), "refresh_secret_file")
		}
	} else {
		// Only key files get here: Validate requires refresh_secret_file
		// for a key held by a key service, whose private key cannot be read.
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, cfgerr.At(fmt.Errorf("token: deriving refresh secret: %w", err), "key")
		}
		secret, err = hkdf.Key(sha256.New, der, nil, "gatehouse refresh-token secret v1", 32)
		if err != nil {
			return nil, fmt.Errorf("token: deriving refresh secret: %w", err)
		}
	}
	return secret, nil
}

// Refresher returns the signer's refresh-token issuer, or nil when OAuth2
// is off.
func (s *Signer) Refresher() *Refresher { return s.refresh }

// Issue returns a refresh token for subject, redeemable for service, bound
// to credential: the stored credential (authn.Account.Credential) the
// subject's password was checked against, of which it keeps a keyed
// fingerprint.
func (r *Refresher) Issue(subject, service, authenticator, credential string) (string, error) {
	return r.IssueFrom(subject, service, authenticator, credential, nil)
}

// IssueFrom is Issue for a login with the access token from (nil: a
// password): the refresh token carries from's id, name and scopes, and
// expires no later than it.
func (r *Refresher) IssueFrom(subject, service, authenticator, credential string, from *AccessTokenClaims) (string, error) {
	now := r.now().Truncate(time.Second)
	exp := now.Add(r.ttl)
	var bound *fromAccess
	if from != nil {
		bound = &fromAccess{ID: from.ID, Name: from.Name, Scopes: from.Scopes, IssuedAt: from.IssuedAt.Unix()}
		if !from.ExpiresAt.IsZero() {
			bound.ExpiresAt = from.ExpiresAt.Unix()
			if from.ExpiresAt.Before(exp) {
				exp = from.ExpiresAt
			}
		}
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("token: refresh token id: %w", err)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, refreshJWT{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    r.issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{refreshAudiencePfx + service},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        base64.RawURLEncoding.EncodeToString(id),
		},
		Authenticator: authenticator,
		Credential:    r.fingerprint(authenticator, subject, credential),
		From:          bound,
	})
	t.Header["typ"] = refreshType
	raw, err := t.SignedString(r.secret)
	if err != nil {
		return "", fmt.Errorf("token: signing refresh token: %w", err)
	}
	return raw, nil
}

// Verify checks raw and that it was issued for service. Every failure wraps
// ErrInvalidRefreshToken.
func (r *Refresher) Verify(raw, service string) (*RefreshClaims, error) {
	var c refreshJWT
	t, err := r.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != refreshType {
			return nil, errors.New("not a refresh token")
		}
		return r.secret, nil
	})
	if err != nil || !t.Valid {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRefreshToken, err)
	}
	if len(c.Audience) != 1 || c.Audience[0] != refreshAudiencePfx+service {
		return nil, fmt.Errorf("%w: issued for another service", ErrInvalidRefreshToken)
	}
	if c.Subject == "" || c.Authenticator == "" {
		return nil, fmt.Errorf("%w: no subject or authenticator", ErrInvalidRefreshToken)
	}
	if c.Credential == "" {
		// Issued before tokens were bound to credentials: it cannot show
		// that the password did not change since.
		return nil, fmt.Errorf("%w: bound to no credential", ErrInvalidRefreshToken)
	}
	out := &RefreshClaims{
		Subject:       c.Subject,
		Service:       service,
		Authenticator: c.Authenticator,
		IssuedAt:      c.IssuedAt.Time,
		ExpiresAt:     c.ExpiresAt.Time,
		credential:    c.Credential,
	}
	if f := c.From; f != nil {
		if f.ID == "" || len(f.Scopes) == 0 {
			return nil, fmt.Errorf("%w: bound to an access token without id or scope", ErrInvalidRefreshToken)
		}
		out.From = &AccessTokenClaims{ID: f.ID, Name: f.Name, Owner: c.Subject, Authenticator: c.Authenticator,
			Scopes: f.Scopes, IssuedAt: time.Unix(f.IssuedAt, 0).UTC()}
		if f.ExpiresAt != 0 {
			out.From.ExpiresAt = time.Unix(f.ExpiresAt, 0).UTC()
		}
	}
	return out, nil
}

// Bound reports whether the token c came from was issued against
// credential, the account's stored credential now: false once the password
// changed.
func (r *Refresher) Bound(c *RefreshClaims, credential string) bool {
	want := r.fingerprint(c.Authenticator, c.Subject, credential)
	return hmac.Equal([]byte(c.credential), []byte(want))
}

// fingerprint is a keyed, truncated HMAC-SHA256 of a stored credential and
// whose it is: it tells a changed credential from the same one without
// revealing anything about it (the key never leaves Gatehouse).
func (r *Refresher) fingerprint(authenticator, subject, credential string) string {
	m := hmac.New(sha256.New, r.credKey)
	for _, s := range []string{authenticator, subject, credential} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}
