package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"slices"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/jsontext"
)

// signRS256 signs with RSASSA-PKCS1-v1_5 and SHA-256.
func signRS256(key *rsa.PrivateKey) signFunc {
	return func(dst, msg []byte) ([]byte, error) {
		digest := sha256.Sum256(msg)
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
		if err != nil {
			return dst, err
		}
		return append(dst, sig...), nil
	}
}

// signECDSA signs with ECDSA and the hash that goes with alg (ES256, ES384
// or ES512), producing the fixed-length r||s signature JWS requires (RFC
// 7518 §3.4) rather than Go's ASN.1 form.
func signECDSA(key *ecdsa.PrivateKey, alg string) signFunc {
	size := (key.Curve.Params().BitSize + 7) / 8
	return func(dst, msg []byte) ([]byte, error) {
		var digest []byte
		switch alg {
		case "ES384":
			d := sha512.Sum384(msg)
			digest = d[:]
		case "ES512":
			d := sha512.Sum512(msg)
			digest = d[:]
		default:
			d := sha256.Sum256(msg)
			digest = d[:]
		}
		der, err := ecdsa.SignASN1(rand.Reader, key, digest)
		if err != nil {
			return dst, err
		}
		return appendRawECDSA(dst, der, size)
	}
}

var errECDSASignature = errors.New("malformed ECDSA signature")

// appendRawECDSA converts an ASN.1 ECDSA signature, SEQUENCE { INTEGER r,
// INTEGER s }, to r||s with each integer left-padded to size bytes.
func appendRawECDSA(dst, der []byte, size int) ([]byte, error) {
	seq, rest, ok := derElement(der, 0x30)
	if !ok || len(rest) != 0 {
		return dst, errECDSASignature
	}
	r, seq, ok1 := derElement(seq, 0x02)
	s, seq, ok2 := derElement(seq, 0x02)
	if !ok1 || !ok2 || len(seq) != 0 {
		return dst, errECDSASignature
	}
	for _, n := range [2][]byte{r, s} {
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) > size {
			return dst, errECDSASignature
		}
		dst = append(dst, make([]byte, size-len(n))...)
		dst = append(dst, n...)
	}
	return dst, nil
}

// derElement splits the DER element with tag at the start of b into its
// contents and what follows. Only lengths below 256 occur in signatures.
func derElement(b []byte, tag byte) (content, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, b := int(b[1]), b[2:]
	if n == 0x81 {
		if len(b) < 1 {
			return nil, nil, false
		}
		n, b = int(b[0]), b[1:]
	} else if n > 0x7f {
		return nil, nil, false
	}
	if len(b) < n {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}

// appendClaims appends the claims JSON. The result is byte for byte what
// encoding/json produces for the equivalent struct (with HTML escaping off)
// but costs no allocations when the actions are already sorted.
func (s *Signer) appendClaims(dst []byte, sub, aud string, iat, exp int64, jti []byte, access []Access) []byte {
	dst = append(dst, s.claimsStart...)
	dst = jsontext.AppendString(dst, sub)
	dst = append(dst, `,"aud":`...)
	dst = jsontext.AppendString(dst, aud)
	dst = append(dst, `,"exp":`...)
	dst = strconv.AppendInt(dst, exp, 10)
	dst = append(dst, `,"nbf":`...)
	dst = strconv.AppendInt(dst, iat-nbfSkew, 10)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, iat, 10)
	dst = append(dst, `,"jti":"`...)
	dst = append(dst, jti...) // base64url: nothing to escape
	dst = append(dst, `","access":[`...)
	for i, a := range access {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":`...)
		dst = jsontext.AppendString(dst, a.Type)
		dst = append(dst, `,"name":`...)
		dst = jsontext.AppendString(dst, a.Name)
		dst = append(dst, `,"actions":[`...)
		actions := a.Actions
		if !slices.IsSorted(actions) {
			actions = slices.Sorted(slices.Values(actions))
		}
		for j, act := range actions {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = jsontext.AppendString(dst, act)
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, "]}"...)
}
