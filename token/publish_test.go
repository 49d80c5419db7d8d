package token

import (
	"crypto"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestSingleKeyJWKS checks the one-key sets zot needs: one entry, the
// signing (or next) key, under the kid the tokens carry.
func TestSingleKeyJWKS(t *testing.T) {
	next := testKey(t, "p384")
	for _, tc := range []struct {
		name    string
		key     string
		kid     string
		withNew bool
	}{
		{"rsa libtrust", "rsa2048", KIDLibtrust, false},
		{"p256 thumbprint", "p256", KIDThumbprint, false},
		{"p256 no kid", "p256", KIDNone, false},
		{"rsa thumbprint with next key", "rsa2048", KIDThumbprint, true},
		{"p256 libtrust with next key", "p256", KIDLibtrust, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(t, tc.key)
			s := testSigner(t, key, func(c *Config) {
				c.KID = tc.kid
				if tc.withNew {
					dir := t.TempDir()
					c.NextCertificate = writeFile(t, dir, "next.pem", certsPEM(selfSigned(t, next)))
					c.NextKey = writeFile(t, dir, "next.key", keyPEM(t, next, "pkcs8"))
				}
			})
			checkOneKey(t, s.SingleKeyJWKS(false), key.Public(), tc.kid)
			got := s.SingleKeyJWKS(true)
			if !tc.withNew {
				if got != nil {
					t.Fatalf("next key set without a next key: %s", got)
				}
				return
			}
			checkOneKey(t, got, next.Public(), tc.kid)
		})
	}
}

// checkOneKey parses doc as go-jose (zot's JWKS reader) does and checks it
// holds exactly pub, under its kid of mode (libtrust for none).
func checkOneKey(t *testing.T, doc []byte, pub crypto.PublicKey, mode string) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1: %s", len(set.Keys), doc)
	}
	k := set.Keys[0]
	if eq, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub) {
		t.Fatalf("the set holds another key: %s", doc)
	}
	if mode == KIDNone {
		mode = KIDLibtrust
	}
	want, _ := keyID(mode, pub)
	if k.KeyID != want || k.Use != "sig" || k.Algorithm == "" {
		t.Fatalf("entry kid %q use %q alg %q, want kid %q: %s", k.KeyID, k.Use, k.Algorithm, want, doc)
	}
}
