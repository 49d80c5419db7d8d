package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// JWK is one entry of a JSON Web Key Set.
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	// RSA
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	// EC
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// JWKS is a JSON Web Key Set, the document served at
// /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// published is what the signer publishes about its keys, computed once.
type published struct {
	jwks   []byte   // JSON
	single [][]byte // JSON, one key set per key with its one entry: current, next
	bundle []byte   // PEM certificates, current first
}

// publish computes the JWKS and certificate bundle for the current key and,
// when set, the next one.
func (s *Signer) publish(next *keyPair) error {
	pubs := []struct {
		pub   crypto.PublicKey
		certs []*x509.Certificate
		alg   string
	}{{s.pub, s.certs, s.alg}}
	if next != nil {
		alg, err := algorithmOf(next.key.Public())
		if err != nil {
			return cfgerr.At(err, "next_key")
		}
		pubs = append(pubs, struct {
			pub   crypto.PublicKey
			certs []*x509.Certificate
			alg   string
		}{next.key.Public(), next.certs, alg})
	}
	var set JWKS
	var single [][]byte
	var bundle []byte
	kid := 0 // the entry whose kid tokens carry: libtrust (also with kid: none) or thumbprint
	for i, p := range pubs {
		keys, err := jwksEntries(p.pub, p.alg)
		if err != nil {
			return err
		}
		if i == 0 {
			kid = max(slices.IndexFunc(keys, func(k JWK) bool { return k.Kid == s.kid }), 0)
		}
		set.Keys = append(set.Keys, keys...)
		one, err := encodeJWKS(JWKS{Keys: keys[kid : kid+1]})
		if err != nil {
			return err
		}
		single = append(single, one)
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.certs[0].Raw})...)
	}
	js, err := encodeJWKS(set)
	if err != nil {
		return err
	}
	s.published = published{jwks: js, single: single, bundle: bundle}
	return nil
}

func encodeJWKS(set JWKS) ([]byte, error) {
	js, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("token: encoding jwks: %w", err)
	}
	return append(js, '\n'), nil
}

// JWKSJSON returns the JSON Web Key Set listing the signing key, and the
// next key when one is configured, once under every kid form registries
// look up: the libtrust fingerprint, distribution's thumbprint and, where it
// differs, the RFC 7638 thumbprint.
func (s *Signer) JWKSJSON() []byte { return s.published.jwks }

// SingleKeyJWKS returns a JSON Web Key Set with one entry, for verifiers
// that take exactly one key (zot): the signing key or, with next, the next
// key, under the kid tokens carry (the libtrust one with kid: none). It
// returns nil for the next key when none is configured.
func (s *Signer) SingleKeyJWKS(next bool) []byte {
	i := 0
	if next {
		i = 1
	}
	if i >= len(s.published.single) {
		return nil
	}
	return s.published.single[i]
}

// CertificateBundle returns the PEM certificates of the signing key and of
// the next key, if any: what a registry's rootcertbundle should hold.
func (s *Signer) CertificateBundle() []byte { return s.published.bundle }

func algorithmOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RS256", nil
	case *ecdsa.PublicKey:
		return ecdsaAlgorithm(k)
	}
	return "", fmt.Errorf("token: unsupported key type %T", pub)
}

func jwksEntries(pub crypto.PublicKey, alg string) ([]JWK, error) {
	b64 := base64.RawURLEncoding
	base := JWK{Use: "sig", Alg: alg}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		base.Kty, base.N, base.E = "RSA", b64.EncodeToString(k.N.Bytes()), b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		point, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("token: jwks: %w", err)
		}
		n := (len(point) - 1) / 2
		base.Kty, base.Crv = "EC", k.Curve.Params().Name
		base.X, base.Y = b64.EncodeToString(point[1:1+n]), b64.EncodeToString(point[1+n:])
	default:
		return nil, fmt.Errorf("token: jwks: unsupported key type %T", pub)
	}
	libtrust, err := LibtrustKeyID(pub)
	if err != nil {
		return nil, err
	}
	thumb, err := ThumbprintKeyID(pub)
	if err != nil {
		return nil, err
	}
	kids := []string{libtrust, thumb}
	if std := rfc7638Thumbprint(base); !slices.Contains(kids, std) {
		kids = append(kids, std)
	}
	out := make([]JWK, 0, len(kids))
	for _, kid := range kids {
		e := base
		e.Kid = kid
		out = append(out, e)
	}
	return out, nil
}

// rfc7638Thumbprint is the standard JWK thumbprint: the members required for
// the key type, in lexicographic order, with coordinates padded to the
// curve size (as in the JWK itself).
func rfc7638Thumbprint(k JWK) string {
	var payload string
	if k.Kty == "RSA" {
		payload = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, k.E, k.N)
	} else {
		payload = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Crv, k.X, k.Y)
	}
	sum := sha256.Sum256([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// loadNextKeyPair loads next_certificate and next_key, placing problems at
// those keys.
func (c *Config) loadNextKeyPair(s *Signer) (*keyPair, error) {
	if c.NextCertificate == "" {
		return nil, nil
	}
	var kp *keyPair
	var err error
	if IsKeyReference(c.NextKey) {
		kp, _, err = loadExternalKeyPair(c.NextCertificate, c.NextKey, s.now(), false, false)
	} else {
		kp, err = loadKeyPair(c.NextCertificate, c.NextKey, s.now())
	}
	if err == nil {
		return kp, nil
	}
	var errs []error
	for _, e := range cfgerr.Flatten(err) {
		var ce *cfgerr.Error
		if errors.As(e, &ce) && len(ce.Path) > 0 {
			e = cfgerr.At(ce.Err, append([]string{"next_" + ce.Path[0]}, ce.Path[1:]...)...)
		}
		errs = append(errs, e)
	}
	return nil, errors.Join(errs...)
}
