package token

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// MinExpiration is the shortest token lifetime Config accepts, in seconds.
// Clients treat a shorter expires_in as 60 s anyway and would reuse an
// expired token.
const MinExpiration = 60

// maxExpiration keeps Expiration*time.Second from overflowing.
const maxExpiration = math.MaxInt64 / int64(time.Second)

// Config is the `token:` section of auth_config.yml (docker_auth's keys plus
// Gatehouse's):
//
//	token:
//	  issuer: "Acme auth server"   # must equal the registry's auth.token.issuer
//	  expiration: 900              # seconds, at least 60
//	  certificate: /ssl/token.pem  # PEM certificate (chain) of the signing key
//	  key: /ssl/token.key          # PEM private key: RSA (RS256) or EC P-256/384/521 (ES256/384/512)
//	  x5c: true                    # put the certificate chain in every token header (default true)
//	  kid: libtrust                # libtrust (default) | thumbprint | none
//	  generate_if_missing: false   # development: create a self-signed P-256 key+cert when both files are absent, and log it
//	  key_timeout: 2s              # with a key reference: bound of one signing call to the key service
//	  key_retries: 2               # with a key reference: further calls after a failed one (0-5)
//
// key (and next_key) may instead name a key held by a key service, which
// never leaves it: awskms:///KEY-ID-OR-ARN-OR-ALIAS?region=…&endpoint=… for
// AWS KMS, or an RFC 7512 pkcs11: URI for an HSM (binaries built with the
// pkcs11 tag). The certificate stays a file; with generate_if_missing and no
// certificate file, a self-signed certificate for the key is made and
// written there. Such a key needs refresh_secret_file: the secret of
// refresh tokens, access tokens and sign-in credentials cannot be derived
// from a private key Gatehouse cannot read.
//
// With x5c (the default) both registry v2.8 and v3 verify tokens against a
// rootcertbundle holding the certificate (or its CA) whatever the kid; kid
// matters for registries that do not use x5c: libtrust for v2.x, thumbprint
// for v3.1+ bundle-only, or a JWKS listing the key under the chosen kid.
type Config struct {
	// Issuer is the iss claim; it must equal the registry's issuer.
	Issuer string `yaml:"issuer"`
	// Expiration is the token lifetime in seconds, at least MinExpiration.
	Expiration int64 `yaml:"expiration"`
	// Certificate is the path of the PEM certificate chain, leaf first.
	Certificate string `yaml:"certificate"`
	// Key is the path of the PEM private key (PKCS#1, PKCS#8 or SEC 1).
	Key string `yaml:"key"`
	// X5C puts the certificate chain in the x5c header; nil means true.
	X5C *bool `yaml:"x5c"`
	// KID selects the kid header: KIDLibtrust (default when empty),
	// KIDThumbprint or KIDNone.
	KID string `yaml:"kid"`
	// GenerateIfMissing creates a self-signed development key and
	// certificate when both files are absent.
	GenerateIfMissing bool `yaml:"generate_if_missing"`
	// DisableLegacyKeyID is docker_auth's switch, accepted for
	// compatibility: it means kid: thumbprint (and conflicts with any other
	// kid).
	DisableLegacyKeyID bool `yaml:"disable_legacy_key_id"`

	// OAuth2 enables POST to the token endpoint and refresh tokens; nil
	// means true. With false, POST answers 404 (clients then use GET) and
	// no refresh token is ever issued.
	OAuth2 *bool `yaml:"oauth2"`
	// RefreshExpiration is the refresh-token lifetime in seconds; 0 means
	// DefaultRefreshExpiration. Docker keeps the token from docker login
	// until the next login, so make it long.
	RefreshExpiration int64 `yaml:"refresh_expiration"`
	// RefreshSecretFile holds the secret (at least 32 bytes) that signs
	// refresh tokens. Without it the secret is derived from the signing
	// key, so replacing the key revokes every refresh token; set it to keep
	// them across key rotations. Changing it revokes them all.
	RefreshSecretFile string `yaml:"refresh_secret_file"`
	// NextCertificate and NextKey name the key pair that will sign next.
	// It does not sign yet: it is published in the JWKS and the
	// certificate bundle so registries can trust it before the switch.
	NextCertificate string `yaml:"next_certificate"`
	NextKey         string `yaml:"next_key"`

	// KeyTimeout bounds one signing call to the key service when key (or
	// next_key) is a key reference; 0 means DefaultKeyTimeout.
	KeyTimeout time.Duration `yaml:"key_timeout"`
	// KeyRetries is how many times a failed signing call is tried again
	// (after 50 ms, then double the pause each time); nil means
	// DefaultKeyRetries, at most 5.
	KeyRetries *int `yaml:"key_retries"`
}

// remotePolicy returns how calls to a key service are bounded.
func (c *Config) remotePolicy() remotePolicy {
	p := remotePolicy{timeout: c.KeyTimeout, retries: DefaultKeyRetries, backoff: 50 * time.Millisecond}
	if p.timeout == 0 {
		p.timeout = DefaultKeyTimeout
	}
	if c.KeyRetries != nil {
		p.retries = *c.KeyRetries
	}
	return p
}

// DefaultRefreshExpiration is the refresh-token lifetime when
// refresh_expiration is not set: 90 days.
const DefaultRefreshExpiration = 90 * 24 * 3600

// OAuth2Enabled reports whether POST and refresh tokens are on.
func (c *Config) OAuth2Enabled() bool { return c.OAuth2 == nil || *c.OAuth2 }

// Validate checks the section without touching files and returns every
// problem, joined, each placed at its key with cfgerr.At (paths relative to
// the section): issuer is required, expiration must be at least
// MinExpiration seconds, certificate and key are required (the caller fills
// them in from the server's TLS files beforehand if it offers that
// fallback), and kid must be one of the KID constants.
func (c *Config) Validate() error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, cfgerr.At(fmt.Errorf("token: "+format, args...), key))
	}
	if c.Issuer == "" {
		add("issuer", "issuer is required (it must equal the registry's auth.token.issuer)")
	}
	switch {
	case c.Expiration == 0:
		add("expiration", "expiration is required (token lifetime in seconds, at least %d)", MinExpiration)
	case c.Expiration < MinExpiration:
		add("expiration", "expiration must be at least %d seconds, got %d", MinExpiration, c.Expiration)
	case c.Expiration > maxExpiration:
		add("expiration", "expiration %d seconds is too large", c.Expiration)
	}
	if c.Certificate == "" {
		add("certificate", "certificate is required (PEM certificate of the signing key)")
	}
	if c.Key == "" {
		add("key", "key is required (PEM private key, or a key reference: awskms:…, pkcs11:…)")
	}
	// next_key counts too: the secret must not change when it becomes key.
	scheme := cmp.Or(keyScheme(c.Key), keyScheme(c.NextKey))
	remote := scheme != ""
	if remote && c.RefreshSecretFile == "" {
		add("refresh_secret_file", "refresh_secret_file is required when the key or next_key is held by a key service (%s): the secret of refresh tokens, access tokens and sign-in credentials is otherwise derived from the private key, which Gatehouse cannot read (create one with: head -c 48 /dev/urandom | base64)", scheme)
	}
	if c.KeyTimeout < 0 || c.KeyTimeout > 0 && c.KeyTimeout < time.Millisecond {
		add("key_timeout", "key_timeout must be a duration of at least 1ms with its unit (e.g. 2s), got %s", c.KeyTimeout)
	}
	if c.KeyRetries != nil && (*c.KeyRetries < 0 || *c.KeyRetries > maxKeyRetries) {
		add("key_retries", "key_retries must be between 0 and %d, got %d", maxKeyRetries, *c.KeyRetries)
	}
	switch c.KID {
	case "", KIDLibtrust, KIDThumbprint, KIDNone:
	default:
		add("kid", "kid must be %s, %s or %s, got %q", KIDLibtrust, KIDThumbprint, KIDNone, c.KID)
	}
	switch {
	case c.RefreshExpiration < 0, c.RefreshExpiration > 0 && c.RefreshExpiration < MinExpiration:
		add("refresh_expiration", "refresh_expiration must be at least %d seconds, got %d", MinExpiration, c.RefreshExpiration)
	case c.RefreshExpiration > maxExpiration:
		add("refresh_expiration", "refresh_expiration %d seconds is too large", c.RefreshExpiration)
	}
	if !c.OAuth2Enabled() && (c.RefreshExpiration != 0 || c.RefreshSecretFile != "" && !remote) {
		add("oauth2", "refresh_expiration and refresh_secret_file need oauth2 (refresh tokens are redeemed by POST)")
	}
	if (c.NextCertificate == "") != (c.NextKey == "") {
		add("next_certificate", "next_certificate and next_key go together")
	}
	if c.DisableLegacyKeyID && (c.KID == KIDLibtrust || c.KID == KIDNone) {
		add("disable_legacy_key_id", "disable_legacy_key_id means kid: %s and conflicts with kid: %s; remove one of them", KIDThumbprint, c.KID)
	}
	return errors.Join(errs...)
}

// kidMode returns the effective kid format of a valid Config.
func (c *Config) kidMode() string {
	switch {
	case c.KID != "":
		return c.KID
	case c.DisableLegacyKeyID:
		return KIDThumbprint
	}
	return KIDLibtrust
}

// x5c reports whether the certificate chain goes in the header.
func (c *Config) x5c() bool { return c.X5C == nil || *c.X5C }

// NewSigner validates the section, loads the key pair and returns a Signer.
//
// With GenerateIfMissing and both files absent it first creates a
// self-signed P-256 development key and certificate (key file mode 0600,
// missing parent directories 0700) and logs a warning through the logger set
// with WithLogger (slog.Default otherwise); with WithReadOnly the pair is
// generated in memory only, nothing is written, and the warning says what
// serving would create. If only one of the files exists that is an error
// naming the missing one.
//
// When key is a key reference (awskms:, pkcs11:), the key service is asked
// for the public key, bounded by 15 seconds, and the Signer holds a client
// or session until Close. With GenerateIfMissing and no certificate file, a
// self-signed certificate for that key is written there.
//
// Errors are placed with cfgerr.At at "certificate" or "key": file
// unreadable, not PEM, key type unsupported (RSA and ECDSA P-256/384/521
// only: Ed25519 is rejected because registries v2.8 cannot verify it), key
// not matching the certificate, certificate expired or not yet valid at the
// time of the clock set with WithClock.
func (c *Config) NewSigner(opts ...Option) (_ *Signer, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Signer{now: time.Now}
	for _, opt := range opts {
		opt(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	var kp *keyPair
	var generated bool
	switch {
	case IsKeyReference(c.Key):
		kp, generated, err = loadExternalKeyPair(c.Certificate, c.Key, s.now(), c.GenerateIfMissing, !s.readOnly)
	case c.GenerateIfMissing:
		kp, err = generateIfMissing(c.Certificate, c.Key, s.now(), !s.readOnly)
		generated = kp != nil
	}
	if err == nil && kp == nil {
		kp, err = loadKeyPair(c.Certificate, c.Key, s.now())
	}
	if err != nil {
		return nil, err
	}
	s.ext = kp.ext
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if err := s.init(c, kp); err != nil {
		return nil, err
	}
	next, err := c.loadNextKeyPair(s)
	if err != nil {
		return nil, err
	}
	if next != nil {
		s.nextExt = next.ext
	}
	if err := s.publish(next); err != nil {
		return nil, err
	}
	if s.refresh, err = c.newRefresher(kp.key, s); err != nil {
		return nil, err
	}
	secret, err := c.refreshSecret(kp.key)
	if err != nil {
		return nil, err
	}
	if s.access, err = newAccessTokens(secret, c.Issuer, s.now); err != nil {
		return nil, err
	}
	if s.signin, err = newSignIns(secret, c.Issuer, s.now); err != nil {
		return nil, err
	}
	switch {
	case generated && kp.ext != nil && s.readOnly:
		s.log.Warn("token: certificate does not exist; serving with this configuration would write a self-signed certificate for the key there (generate_if_missing); nothing was written",
			"certificate", c.Certificate, "key", kp.ext.name)
	case generated && kp.ext != nil:
		s.log.Warn("token: wrote a self-signed certificate for the key held by the key service; give it to the registry (rootcertbundle)",
			"certificate", c.Certificate, "key", kp.ext.name, "alg", s.alg, "kid", s.kid,
			"not_after", kp.certs[0].NotAfter.UTC().Format(time.RFC3339))
	case generated && s.readOnly:
		s.log.Warn("token: certificate and key do not exist; serving with this configuration would generate a self-signed development pair there (generate_if_missing); nothing was written",
			"certificate", c.Certificate, "key", c.Key)
	case generated:
		s.log.Warn("token: generated a self-signed development signing key and certificate; do not use them in production",
			"certificate", c.Certificate, "key", c.Key, "alg", s.alg, "kid", s.kid,
			"not_after", kp.certs[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return s, nil
}
