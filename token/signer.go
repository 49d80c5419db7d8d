// Package token issues the JWT access tokens that Docker registries
// (distribution v2.8 and v3, zot, Harbor and GitLab forks) accept from a
// token-auth server, and loads or generates the key that signs them.
//
// A Config (the `token:` section of auth_config.yml) is validated and turned
// into a Signer once at startup:
//
//	signer, err := cfg.NewSigner(token.WithLogger(logger))
//	…
//	tok, err := signer.Issue("alice", "registry.example.com", []token.Access{
//		{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}},
//	})
//
// Tokens are compact JWS with header {"alg","typ":"JWT","kid","x5c"} and
// claims iss, sub, aud (a single string, as registry v2.8 requires), exp,
// nbf, iat, jti and access. The key is RSA (RS256) or ECDSA P-256, P-384 or
// P-521 (ES256, ES384, ES512): the algorithms every registry verifies.
//
// Registries find the verification key in the certificate chain of the x5c
// header (both v2.8 and v3 check it first; the default) or by kid: the
// libtrust fingerprint for v2.x (LibtrustKeyID), distribution's JWK
// thumbprint for v3.1+ (ThumbprintKeyID).
package token

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
	"github.com/gatehouse/gatehouse/internal/jsontext"
)

// nbfSkew is how far before iat the nbf claim is set, for verifiers whose
// clock is slightly behind ours.
const nbfSkew = 10 // seconds

// expiryWarning is how close to its end a signing certificate makes
// NewSigner log a warning.
const expiryWarning = 30 * 24 * time.Hour

// Option configures a Signer built by Config.NewSigner.
type Option func(*Signer)

// WithClock sets the clock used for token times and for checking the
// certificate's validity period (time.Now by default). It must be safe for
// concurrent use.
func WithClock(now func() time.Time) Option {
	return func(s *Signer) {
		if now != nil {
			s.now = now
		}
	}
}

// WithLogger sets the logger for startup warnings (slog.Default by default).
func WithLogger(l *slog.Logger) Option {
	return func(s *Signer) {
		if l != nil {
			s.log = l
		}
	}
}

// WithReadOnly makes NewSigner write nothing, for commands that only check
// a configuration: with generate_if_missing and both files absent it signs
// with a development pair generated in memory and logs that serving would
// create the files.
func WithReadOnly() Option { return func(s *Signer) { s.readOnly = true } }

// Access is one entry of the token's "access" claim.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"` // sorted by the signer; never null in JSON (empty array)
}

// Token is a signed access token and its times.
type Token struct {
	// Raw is the compact JWS: base64url and two dots, nothing that JSON
	// or a URL would need to escape.
	Raw string
	// ID is the jti claim: 128 random bits, unpadded base64url.
	ID string
	// IssuedAt is the iat claim (whole seconds, UTC).
	IssuedAt time.Time
	// ExpiresAt is the exp claim (whole seconds, UTC).
	ExpiresAt time.Time
}

// signFunc appends the raw JWS signature of msg (the signing input) to dst.
// A key held by a key service is asked within ctx.
type signFunc func(ctx context.Context, dst, msg []byte) ([]byte, error)

// Signer issues access tokens with one key. Create it with
// Config.NewSigner; it is safe for concurrent use.
type Signer struct {
	alg        string
	kid        string
	issuer     string
	expiration time.Duration
	pub        crypto.PublicKey
	certs      []*x509.Certificate
	x5c        bool
	sign       signFunc
	ext        *externalKey // the key service's key; nil for a key file
	nextExt    *externalKey // next_key's, when it is held by a key service
	health     keyHealth    // outcome of the last signature by ext
	now        func() time.Time
	log        *slog.Logger
	readOnly   bool // WithReadOnly: NewSigner writes no file

	published published  // JWKS and certificate bundle
	refresh   *Refresher // nil when OAuth2 is off
	access    *AccessTokens
	signin    *SignIns

	header      string // base64url(header JSON) + "."
	claimsStart []byte // `{"iss":"…","sub":`
	pool        sync.Pool
}

// init sets the signer up for a loaded key pair.
func (s *Signer) init(c *Config, kp *keyPair) error {
	alg, err := algorithmOf(kp.key.Public())
	if err != nil {
		return cfgerr.At(fmt.Errorf("token: key %s: %w", kp.keyName(c.Key), err), "key")
	}
	if k, ok := kp.key.Public().(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		s.log.Warn("token: RSA signing key is shorter than 2048 bits", "key", kp.keyName(c.Key), "bits", k.N.BitLen())
	}
	s.alg, s.ext = alg, kp.ext
	s.sign = newSignFunc(kp.key, kp.ext, c.remotePolicy(), alg)
	s.pub = kp.key.Public()
	kid, err := keyID(c.kidMode(), s.pub)
	if err != nil {
		return cfgerr.At(err, "key")
	}
	s.kid, s.issuer, s.certs, s.x5c = kid, c.Issuer, kp.certs, c.x5c()
	s.expiration = time.Duration(c.Expiration) * time.Second
	if left := kp.certs[0].NotAfter.Sub(s.now()); left < expiryWarning {
		s.log.Warn("token: signing certificate expires soon; registries reject tokens once it has expired",
			"certificate", c.Certificate, "not_after", kp.certs[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return s.precompute()
}

// precompute encodes the parts of every token that never change: the
// header and the start of the claims.
func (s *Signer) precompute() error {
	h := struct {
		Typ string   `json:"typ"`
		Alg string   `json:"alg"`
		Kid string   `json:"kid,omitempty"`
		X5C []string `json:"x5c,omitempty"`
	}{Typ: "JWT", Alg: s.alg, Kid: s.kid}
	if s.x5c {
		for _, c := range s.certs {
			h.X5C = append(h.X5C, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	js, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("token: encoding header: %w", err)
	}
	s.header = base64.RawURLEncoding.EncodeToString(js) + "."
	s.claimsStart = jsontext.AppendString([]byte(`{"iss":`), s.issuer)
	s.claimsStart = append(s.claimsStart, `,"sub":`...)
	s.pool.New = func() any { return new(buffers) }
	return nil
}

// buffers are the per-call scratch space of Issue, pooled.
type buffers struct {
	claims []byte // claims JSON
	out    []byte // the token being built
	sig    []byte // raw signature
}

// maxPooled is the largest buffer kept for reuse; rare huge tokens do not
// pin memory.
const maxPooled = 64 << 10

// Issue signs an access token for subject (the account, "" for anonymous)
// and audience (the requested service). Each entry's actions are sorted in
// the token; access itself is not modified. Issue is safe for concurrent
// use. It is IssueContext with a context that never ends: calls to a key
// service are still bounded by key_timeout and key_retries.
func (s *Signer) Issue(subject, audience string, access []Access) (*Token, error) {
	return s.IssueContext(context.Background(), subject, audience, access)
}

// IssueContext is Issue with a context bounding the calls to a key service
// that holds the signing key. When the service does not sign in time, the
// error wraps ErrSignerUnavailable.
func (s *Signer) IssueContext(ctx context.Context, subject, audience string, access []Access) (*Token, error) {
	iat := s.now().Unix() // truncated: iat is never in the future
	exp := iat + int64(s.expiration/time.Second)

	var id [16]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand, Go 1.24+)
	var jti [22]byte
	base64.RawURLEncoding.Encode(jti[:], id[:])

	b := s.pool.Get().(*buffers)
	b.claims = s.appendClaims(b.claims[:0], subject, audience, iat, exp, jti[:], access)
	b.out = append(b.out[:0], s.header...)
	b.out = base64.RawURLEncoding.AppendEncode(b.out, b.claims)
	var err error
	b.sig, err = s.sign(ctx, b.sig[:0], b.out)
	if s.ext != nil {
		s.health.record(err, s.now())
	}
	if err != nil {
		s.pool.Put(b)
		return nil, fmt.Errorf("token: signing: %w", err)
	}
	b.out = append(b.out, '.')
	b.out = base64.RawURLEncoding.AppendEncode(b.out, b.sig)
	t := &Token{
		Raw:       string(b.out),
		ID:        string(jti[:]),
		IssuedAt:  time.Unix(iat, 0).UTC(),
		ExpiresAt: time.Unix(exp, 0).UTC(),
	}
	if cap(b.out) <= maxPooled && cap(b.claims) <= maxPooled {
		s.pool.Put(b)
	}
	return t, nil
}

// Algorithm returns the JWS algorithm: "RS256", "ES256", "ES384" or "ES512".
func (s *Signer) Algorithm() string { return s.alg }

// KeyID returns the kid header value ("" with kid: none).
func (s *Signer) KeyID() string { return s.kid }

// PublicKey returns the public key that verifies the tokens.
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

// Certificates returns the certificate chain, leaf first. The slice is a
// copy; the certificates must not be modified.
func (s *Signer) Certificates() []*x509.Certificate {
	return append([]*x509.Certificate(nil), s.certs...)
}

// Expiration returns the token lifetime.
func (s *Signer) Expiration() time.Duration { return s.expiration }

// Issuer returns the iss claim.
func (s *Signer) Issuer() string { return s.issuer }
