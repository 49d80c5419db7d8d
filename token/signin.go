package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sign-in credentials are what the browser sign-in page (oidc_auth) hands
// a person for docker login: HMAC-SHA256 JWTs with their own header type
// and audience, under a key derived with HKDF from the refresh secret with
// its own label, so one never verifies as an access token, a refresh
// token or a registry token, and no registry accepts one. Each carries the
// account, the provider's subject and the provider's refresh token sealed
// with AES-GCM under a second derived key: the token is stateless, and
// only this Gatehouse can read the refresh token inside it.
const (
	signInType     = "gatehouse-signin+jwt"
	signInAudience = "gatehouse-signin"
)

// ErrInvalidSignIn is returned (wrapped with the reason) for a sign-in
// credential that is malformed, forged, expired, or another kind of token.
var ErrInvalidSignIn = errors.New("token: invalid sign-in credential")

// SignInClaims are what a sign-in credential says.
type SignInClaims struct {
	// ID is the jti claim; revalidation results are cached under it.
	ID string
	// Account is the Gatehouse account (the sub claim).
	Account string
	// Provider names the flow that issued it ("oidc_auth").
	Provider string
	// Subject is the provider's subject (its sub claim) for the person.
	Subject string
	// Labels are the labels the sign-in mapped from the provider's claims.
	Labels map[string][]string
	// RefreshToken is the provider's refresh token ("" when it gave none).
	RefreshToken string
	IssuedAt     time.Time
	ExpiresAt    time.Time
}

type signInJWT struct {
	jwt.RegisteredClaims
	Provider string              `json:"gh_prov"`
	PSub     string              `json:"gh_psub"`
	Labels   map[string][]string `json:"gh_labels,omitempty"`
	Sealed   string              `json:"gh_rt,omitempty"`
}

// SignIns mints and verifies sign-in credentials. It is safe for
// concurrent use.
type SignIns struct {
	key      []byte
	stateKey []byte
	aead     cipher.AEAD
	issuer   string
	now      func() time.Time
	parser   *jwt.Parser
}

// newSignIns derives the signing and sealing keys from the refresh secret.
func newSignIns(secret []byte, issuer string, now func() time.Time) (*SignIns, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, "gatehouse sign-in key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("token: deriving the sign-in key: %w", err)
	}
	seal, err := hkdf.Key(sha256.New, secret, nil, "gatehouse sign-in seal v1", 32)
	if err != nil {
		return nil, fmt.Errorf("token: deriving the sign-in seal key: %w", err)
	}
	block, err := aes.NewCipher(seal)
	if err != nil {
		return nil, fmt.Errorf("token: sign-in seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("token: sign-in seal: %w", err)
	}
	stateKey, err := hkdf.Key(sha256.New, secret, nil, "gatehouse sign-in state v1", 32)
	if err != nil {
		return nil, fmt.Errorf("token: deriving the sign-in state key: %w", err)
	}
	s := &SignIns{key: key, stateKey: stateKey, aead: aead, issuer: issuer, now: now}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(signInAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return s.now() }),
	)
	return s, nil
}

// SignIns returns the signer's sign-in credential minter and verifier.
func (s *Signer) SignIns() *SignIns { return s.signin }

// Mint signs a credential for c.Account that lasts ttl; its ID, IssuedAt
// and ExpiresAt are set here.
func (s *SignIns) Mint(c SignInClaims, ttl time.Duration) (string, *SignInClaims, error) {
	if c.Account == "" || c.Provider == "" || c.Subject == "" || ttl <= 0 {
		return "", nil, errors.New("token: a sign-in credential needs an account, a provider, a subject and a lifetime")
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	c.ID = base64.RawURLEncoding.EncodeToString(id)
	c.IssuedAt = s.now().Truncate(time.Second)
	c.ExpiresAt = c.IssuedAt.Add(ttl)
	claims := signInJWT{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer, Subject: c.Account, Audience: jwt.ClaimStrings{signInAudience},
			IssuedAt: jwt.NewNumericDate(c.IssuedAt), ExpiresAt: jwt.NewNumericDate(c.ExpiresAt), ID: c.ID,
		},
		Provider: c.Provider, PSub: c.Subject, Labels: c.Labels,
	}
	if c.RefreshToken != "" {
		nonce := make([]byte, s.aead.NonceSize())
		_, _ = rand.Read(nonce)
		// The jti is the additional data: a sealed refresh token moved into
		// another credential does not open.
		sealed := s.aead.Seal(nonce, nonce, []byte(c.RefreshToken), []byte(c.ID))
		claims.Sealed = base64.RawURLEncoding.EncodeToString(sealed)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = signInType
	raw, err := t.SignedString(s.key)
	if err != nil {
		return "", nil, fmt.Errorf("token: signing sign-in credential: %w", err)
	}
	return raw, &c, nil
}

// Verify checks raw's signature, type, audience, issuer and expiry and
// opens the sealed refresh token. Every failure wraps ErrInvalidSignIn.
func (s *SignIns) Verify(raw string) (*SignInClaims, error) {
	var c signInJWT
	t, err := s.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != signInType {
			return nil, fmt.Errorf("not a sign-in credential (typ %v)", t.Header["typ"])
		}
		return s.key, nil
	})
	if err != nil || !t.Valid {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSignIn, err)
	}
	if len(c.Audience) != 1 || c.Subject == "" || c.PSub == "" || c.Provider == "" || c.ID == "" || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: no account, provider, subject, id or issue time", ErrInvalidSignIn)
	}
	out := &SignInClaims{ID: c.ID, Account: c.Subject, Provider: c.Provider, Subject: c.PSub,
		Labels: c.Labels, IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time}
	if c.Sealed != "" {
		sealed, err := base64.RawURLEncoding.DecodeString(c.Sealed)
		if err != nil || len(sealed) < s.aead.NonceSize() {
			return nil, fmt.Errorf("%w: malformed sealed refresh token", ErrInvalidSignIn)
		}
		n := s.aead.NonceSize()
		rt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(c.ID))
		if err != nil {
			return nil, fmt.Errorf("%w: sealed refresh token: %w", ErrInvalidSignIn, err)
		}
		out.RefreshToken = string(rt)
	}
	return out, nil
}

// SignInType is the header type of sign-in credentials, for routing a
// password by token.PeekJWT.
const SignInType = signInType

// StateMAC returns an HMAC-SHA256 of msg under a key of its own derived
// from the refresh secret: the sign-in flow signs its state parameter with
// it, so any replica with the same secret can check it.
func (s *SignIns) StateMAC(msg []byte) []byte {
	m := hmac.New(sha256.New, s.stateKey)
	m.Write(msg)
	return m.Sum(nil)
}

// signInRecordAD prefixes a credential's id in the additional data of a
// sealed revalidation record, so a record never opens as a credential's
// sealed refresh token, nor one's as a record.
const signInRecordAD = "gatehouse sign-in record v1\x00"

// SealRecord seals plain (a revalidation record of the credential id, to
// be kept outside Gatehouse: the shared store) with AES-GCM under the key
// that seals refresh tokens in credentials, bound to id: it opens only with
// the refresh secret, and only as id's record.
func (s *SignIns) SealRecord(id string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(signInRecordAD+id))
}

// OpenRecord opens what SealRecord sealed for id; a record of another
// credential, another secret or altered in any way does not open.
func (s *SignIns) OpenRecord(id string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("token: sealed sign-in record too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(signInRecordAD+id))
	if err != nil {
		return nil, fmt.Errorf("token: sealed sign-in record: %w", err)
	}
	return plain, nil
}
