package token

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v3token "github.com/distribution/distribution/v3/registry/auth/token"
	v2token "github.com/docker/distribution/registry/auth/token"
	"github.com/docker/libtrust"
	"github.com/go-jose/go-jose/v4"
)

// The tests below hand tokens to the verifiers of registry v2.8.3
// (docker/distribution, libtrust) and v3.1.2 (distribution/distribution,
// go-jose), set up the way their token access controllers set them up from a
// rootcertbundle holding the signing certificate. Those verifiers read the
// real clock, so the certificates here are valid around time.Now.

// registryVerdicts verifies raw as registries v2.8 and v3.1 would with a
// bundle holding cert, and checks the claims they decode.
func registryVerdicts(t *testing.T, raw string, cert *x509.Certificate, sub, aud string, want []Access) (v2err, v3err error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(cert)

	lt, err := libtrust.FromCryptoPublicKey(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := v2token.NewToken(raw)
	if err != nil {
		v2err = fmt.Errorf("parse: %w", err)
	} else if v2err = t2.Verify(v2token.VerifyOptions{TrustedIssuers: []string{"issuer"}, AcceptedAudiences: []string{aud},
		Roots: roots, TrustedKeys: map[string]libtrust.PublicKey{lt.KeyID(): lt}}); v2err == nil {
		checkClaims(t, "v2.8", t2.Claims.Subject, t2.Claims.Access, sub, want)
	}

	t3, err := v3token.NewToken(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.ES512})
	if err != nil {
		return v2err, fmt.Errorf("parse: %w", err)
	}
	cs, v3err := t3.Verify(v3token.VerifyOptions{TrustedIssuers: []string{"issuer"}, AcceptedAudiences: []string{aud},
		Roots: roots, TrustedKeys: map[string]crypto.PublicKey{v3token.GetJWKThumbprint(cert.PublicKey): cert.PublicKey}})
	if v3err == nil {
		checkClaims(t, "v3.1", cs.Subject, v3Access(cs.Access), sub, want)
	}
	return v2err, v3err
}

func v3Access(in []*v3token.ResourceActions) []*v2token.ResourceActions {
	var out []*v2token.ResourceActions
	for _, a := range in {
		out = append(out, &v2token.ResourceActions{Type: a.Type, Name: a.Name, Actions: a.Actions})
	}
	return out
}

func checkClaims(t *testing.T, registry, gotSub string, got []*v2token.ResourceActions, sub string, want []Access) {
	t.Helper()
	if gotSub != sub || len(got) != len(want) {
		t.Errorf("%s decoded sub %q and %d access entries, want %q and %d", registry, gotSub, len(got), sub, len(want))
		return
	}
	for i, a := range got {
		w := want[i]
		if a.Type != w.Type || a.Name != w.Name || !slices.Equal(a.Actions, slices.Sorted(slices.Values(w.Actions))) {
			t.Errorf("%s decoded access[%d] = %+v, want %+v (sorted)", registry, i, *a, w)
		}
	}
}

func TestRegistryVerifiersAcceptTokens(t *testing.T) {
	no, yes := false, true
	modes := []struct {
		name   string
		kid    string
		x5c    *bool
		v2, v3 bool // accepted by
	}{
		{name: "default x5c and libtrust kid", v2: true, v3: true},
		{name: "x5c without kid", kid: KIDNone, x5c: &yes, v2: true, v3: true},
		{name: "libtrust kid only", kid: KIDLibtrust, x5c: &no, v2: true, v3: false},
		{name: "thumbprint kid only", kid: KIDThumbprint, x5c: &no, v2: false, v3: true},
	}
	access := []Access{{Type: "repository", Name: "alice/app", Actions: []string{"push", "pull"}}, {Type: "repository", Name: "other", Actions: []string{}}}
	for _, kind := range []string{"rsa2048", "p256", "p384", "p521"} {
		key := testKey(t, kind)
		now := time.Now()
		cert := certificate(t, "interop", key.Public(), now.Add(-time.Hour), now.Add(time.Hour), nil, key, false)
		for _, m := range modes {
			t.Run(kind+"/"+m.name, func(t *testing.T) {
				dir := t.TempDir()
				c := Config{Issuer: "issuer", Expiration: 300, KID: m.kid, X5C: m.x5c,
					Certificate: writeFile(t, dir, "token.pem", certsPEM(cert)), Key: writeFile(t, dir, "token.key", keyPEM(t, key, "pkcs8"))}
				s, err := c.NewSigner()
				if err != nil {
					t.Fatal(err)
				}
				tok, err := s.Issue("alice", "registry.example.com", access)
				if err != nil {
					t.Fatal(err)
				}
				if i := strings.IndexFunc(tok.Raw, func(r rune) bool { return !isBase64URLOrDot(r) }); i >= 0 {
					t.Fatalf("Raw has %q at %d: auth writes it into JSON unescaped", tok.Raw[i], i)
				}
				v2err, v3err := registryVerdicts(t, tok.Raw, cert, "alice", "registry.example.com", access)
				if (v2err == nil) != m.v2 {
					t.Errorf("registry v2.8: error %v, want accepted=%v", v2err, m.v2)
				}
				if (v3err == nil) != m.v3 {
					t.Errorf("registry v3.1: error %v, want accepted=%v", v3err, m.v3)
				}
			})
		}
	}
}

func isBase64URLOrDot(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}

// TestKeyIDsMatchRegistries compares the key IDs with the registries' own
// functions on fresh keys, enough of them that EC keys with leading zero
// bytes in a coordinate (most P-521 keys, 1 in 128 P-256 keys) occur.
func TestKeyIDsMatchRegistries(t *testing.T) {
	counts := map[string]int{"rsa2048": 1, "p256": 400, "p384": 50, "p521": 20}
	for kind, n := range counts {
		t.Run(kind, func(t *testing.T) {
			for i := range n {
				key := testKey(t, kind)
				if i > 0 {
					key = newTestKey(t, kind)
				}
				pub := key.Public()
				lt, err := libtrust.FromCryptoPublicKey(pub)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := LibtrustKeyID(pub); err != nil || got != lt.KeyID() {
					t.Fatalf("LibtrustKeyID = %q, %v; libtrust says %q", got, err, lt.KeyID())
				}
				if got, err := ThumbprintKeyID(pub); err != nil || got != v3token.GetJWKThumbprint(pub) {
					t.Fatalf("ThumbprintKeyID = %q, %v; distribution v3.1 says %q", got, err, v3token.GetJWKThumbprint(pub))
				}
			}
		})
	}
	ed := testKey(t, "ed25519").Public()
	if got, err := ThumbprintKeyID(ed); err != nil || got != v3token.GetJWKThumbprint(ed) {
		t.Errorf("Ed25519 ThumbprintKeyID = %q, %v; distribution v3.1 says %q", got, err, v3token.GetJWKThumbprint(ed))
	}
}
