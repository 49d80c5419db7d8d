package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
)

// Key ID formats accepted in Config.KID.
const (
	// KIDLibtrust is the libtrust fingerprint that registry v2.x (and its
	// forks) look up in their rootcertbundle. It is the default.
	KIDLibtrust = "libtrust"
	// KIDThumbprint is the JWK thumbprint that registry v3.1+ computes for
	// the certificates of its rootcertbundle (see ThumbprintKeyID).
	KIDThumbprint = "thumbprint"
	// KIDNone leaves the kid header out.
	KIDNone = "none"
)

// LibtrustKeyID returns the libtrust fingerprint of an RSA or ECDSA public
// key, the key ID that registry v2.x accepts in the kid header: the SHA-256
// digest of the PKIX (SubjectPublicKeyInfo) DER encoding, truncated to 240
// bits, encoded in standard base32 without padding (48 characters) and
// written as 12 groups of 4 characters joined by ':', for example
// "L5F6:VWHA:OSTK:ZUEY:5JRR:GHA6:R6Z2:KYWB:UKQS:NFSC:IPUE:JQ66".
//
// libtrust knows no other key types, so any other key is an error.
func LibtrustKeyID(pub crypto.PublicKey) (string, error) {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return "", fmt.Errorf("token: libtrust key ID: unsupported public key type %T", pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("token: libtrust key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	enc := base32.StdEncoding.EncodeToString(sum[:30]) // 240 bits: 48 characters, no padding
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/4)
	for i := 0; i < len(enc); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(enc[i : i+4])
	}
	return b.String(), nil
}

// ThumbprintKeyID returns the key ID that distribution (registry) v3.1 and
// later compute for each certificate of their rootcertbundle
// (registry/auth/token GetJWKThumbprint): the unpadded base64url SHA-256
// digest of the JSON object
//
//	{"e":"…","kty":"RSA","n":"…"}                  for RSA keys,
//	{"crv":"P-256","kty":"EC","x":"…","y":"…"}      for ECDSA keys,
//	{"crv":"Ed25519","kty":"OKP","x":"…"}           for Ed25519 keys,
//
// with each value the unpadded base64url encoding of the big-endian bytes
// (the RSA exponent and modulus without leading zero bytes).
//
// This is the RFC 7638 JWK thumbprint for RSA and Ed25519 keys. For ECDSA
// keys it is not always: distribution encodes the coordinates with
// big.Int.Bytes, which drops leading zero bytes, whereas RFC 7518 pads x and
// y to the size of the curve. When X or Y of an EC key starts with a zero
// byte (about 1 key in 128 on P-256 and P-384, and most keys on P-521, whose
// 66-byte coordinates start with a 0 or 1 byte) the two differ, and only this
// value is accepted by a registry that keys its bundle by thumbprint. JWKS
// consumers that compute a standard thumbprint must not assume it equals this
// kid; a JWKS can simply carry it as the key's "kid".
//
// Registries v3.0.x hash the curve's generator point instead of the key for
// ECDSA (every key of a curve gets the same ID); use RSA keys or x5c with
// those.
func ThumbprintKeyID(pub crypto.PublicKey) (string, error) {
	b64 := base64.RawURLEncoding
	var payload []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.E <= 0 {
			return "", fmt.Errorf("token: thumbprint key ID: invalid RSA public key")
		}
		payload = fmt.Appendf(nil, `{"e":"%s","kty":"RSA","n":"%s"}`,
			b64.EncodeToString(big.NewInt(int64(k.E)).Bytes()), b64.EncodeToString(k.N.Bytes()))
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 || X || Y, fixed-size coordinates
		if err != nil {
			return "", fmt.Errorf("token: thumbprint key ID: %w", err)
		}
		n := (len(point) - 1) / 2
		x := bytes.TrimLeft(point[1:1+n], "\x00")
		y := bytes.TrimLeft(point[1+n:], "\x00")
		payload = fmt.Appendf(nil, `{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`,
			k.Curve.Params().Name, b64.EncodeToString(x), b64.EncodeToString(y))
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("token: thumbprint key ID: invalid Ed25519 public key")
		}
		payload = fmt.Appendf(nil, `{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64.EncodeToString(k))
	default:
		return "", fmt.Errorf("token: thumbprint key ID: unsupported public key type %T", pub)
	}
	sum := sha256.Sum256(payload)
	return b64.EncodeToString(sum[:]), nil
}

// keyID computes the kid header value for mode (one of the KID constants).
func keyID(mode string, pub crypto.PublicKey) (string, error) {
	switch mode {
	case KIDLibtrust:
		return LibtrustKeyID(pub)
	case KIDThumbprint:
		return ThumbprintKeyID(pub)
	case KIDNone:
		return "", nil
	}
	return "", fmt.Errorf("token: unknown kid format %q", mode)
}
