package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// TestOneKeyJWKS: /.well-known/jwks.json?key=current is a key set with
// exactly one key, the one tokens are signed with, as zot's bearer "cert"
// requires ("expected 1 key in JWKS"); ?key=next is the next key alone.
func TestOneKeyJWKS(t *testing.T) {
	env := newOAuthEnv(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "next"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(env.dir, "next.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(env.dir, "next.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	withNext := fmt.Sprintf("  next_certificate: %[1]s/next.pem\n  next_key: %[1]s/next.key\n", env.dir)

	// oneKey parses the answer as zot does (go-jose) and returns its key.
	oneKey := func(t *testing.T, s *Server, query string) any {
		t.Helper()
		r := do(s, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json?"+query, nil))
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", query, r.status, r.raw)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(r.raw), &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("%s: want one key, got %v: %s", query, err, r.raw)
		}
		return set.Keys[0].Key
	}
	for _, tc := range []struct{ name, extra string }{
		{"current key only", ""},
		{"with the next key", withNext},
		{"kid thumbprint, no x5c", "  kid: thumbprint\n  x5c: false\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := env.server(tc.extra, "")
			pub := oneKey(t, s, "key=current")
			tok := get(s, "service=registry&scope=repository:alice/app:pull", "alice", "alicepw").body.Token
			if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
				t.Fatalf("a token does not verify with the one key: %v", err)
			}
			if tc.extra == withNext {
				if next := oneKey(t, s, "key=next"); !key.PublicKey.Equal(next) {
					t.Fatalf("?key=next is not the next key")
				}
			} else if r := do(s, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json?key=next", nil)); r.status != 404 || !json.Valid([]byte(r.raw)) {
				t.Fatalf("?key=next without a next key: %d %s", r.status, r.raw)
			}
		})
	}
	s := env.server(withNext, "")
	for _, q := range []string{"key=", "key=all", "key=CURRENT"} {
		if r := do(s, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json?"+q, nil)); r.status != 400 || !json.Valid([]byte(r.raw)) {
			t.Errorf("?%s: %d %s", q, r.status, r.raw)
		}
	}
	// Without the parameter: every key, as before.
	r := do(s, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json?other=1", nil))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(r.raw), &set); err != nil || len(set.Keys) < 4 {
		t.Fatalf("full set: %v, %d keys: %s", err, len(set.Keys), r.raw)
	}
}
