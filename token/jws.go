package token

import (
	"context"
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

// hashFor returns the hash of a JWS algorithm: SHA-256 for RS256 and
// ES256, SHA-384 for ES384, SHA-512 for ES512.
func hashFor(alg string) crypto.Hash {
	switch alg {
	case "ES384":
		return crypto.SHA384
	case "ES512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

// appendDigest appends the hash of msg to dst without allocating.
func appendDigest(dst []byte, hash crypto.Hash, msg []byte) []byte {
	switch hash {
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return append(dst, d[:]...)
	case crypto.SHA512:
		d := sha512.Sum512(msg)
		return append(dst, d[:]...)
	}
	d := sha256.Sum256(msg)
	return append(dst, d[:]...)
}

// newSignFunc is the one signing path of every key, in a file or held by a
// key service: hash the signing input, have the key sign the digest (RSA:
// PKCS #1 v1.5; ECDSA: an ASN.1 signature) and, for ECDSA, convert it to the
// fixed-length r||s form JWS requires (RFC 7518 §3.4). ext is nil for a key
// in memory (an *ecdsa.PrivateKey or *rsa.PrivateKey); otherwise key is
// ext.signer and calls are bounded and retried under p.
func newSignFunc(key crypto.Signer, ext *externalKey, p remotePolicy, alg string) signFunc {
	hash := hashFor(alg)
	size := 0
	if pub, ok := key.Public().(*ecdsa.PublicKey); ok {
		size = (pub.Curve.Params().BitSize + 7) / 8
	}
	return func(ctx context.Context, dst, msg []byte) ([]byte, error) {
		var buf [sha512.Size]byte
		digest := appendDigest(buf[:0], hash, msg)
		var sig []byte
		var err error
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			// The concrete calls keep digest on the stack: through the
			// crypto.Signer interface it would escape (one allocation).
			sig, err = ecdsa.SignASN1(rand.Reader, k, digest)
		case *rsa.PrivateKey:
			sig, err = rsa.SignPKCS1v15(nil, k, hash, digest)
		default:
			// A copy, so that buf stays on the stack for the cases above.
			sig, err = signRemote(ctx, ext, p, slices.Clone(digest), hash)
		}
		if err != nil {
			return dst, err
		}
		if size == 0 {
			return append(dst, sig...), nil
		}
		return appendRawECDSA(dst, sig, size)
	}
}

var errECDSASignature = errors.New("malformed ECDSA signature")

// appendRawECDSA converts an ASN.1 ECDSA signature, SEQUENCE { INTEGER r,
// INTEGER s }, to r||s with each integer left-padded to size bytes. On an
// error it returns dst unchanged.
func appendRawECDSA(dst, der []byte, size int) ([]byte, error) {
	start := len(dst)
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
			return dst[:start], errECDSASignature // r may be appended already
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
