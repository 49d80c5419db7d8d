// Package oidctest serves a test OIDC issuer over HTTPS: a discovery
// document and a JSON Web Key Set, with keys that can be rotated and an
// outage that can be switched on, and signs ID tokens shaped like those of
// GitHub Actions and Kubernetes. It is also a small OpenID Connect
// authorization server (provider.go): a login form, the authorization-code
// grant with PKCE and the refresh-token grant, for the browser sign-in
// tests; Gatehouse's own, not dex, whose module would add a large build.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is a test OIDC issuer. Its URL is its iss.
type Issuer struct {
	URL    string
	CAFile string // PEM of the server's certificate, for ca_file
	srv    *httptest.Server

	mu      sync.Mutex
	keys    []Key // served in the JWKS; keys[0] signs
	down    atomic.Bool
	fetches atomic.Int64 // JWKS documents served
	serial  int
	auth    *authServer // the authorization server (provider.go)
}

// Key is a signing key of the issuer.
type Key struct {
	KID     string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
}

// New starts an issuer with one RS256 key; it stops with the test.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/.well-known/jwks",
			"authorization_endpoint": is.URL + "/authorize", "token_endpoint": is.URL + "/token",
			"userinfo_endpoint":                     is.URL + "/userinfo",
			"code_challenge_methods_supported":      []string{"S256"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public", "pairwise"},
		})
	})
	mux.HandleFunc("/.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		is.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(is.JWKS())
	})
	is.auth = newAuthServer(is)
	mux.HandleFunc("/authorize", is.auth.authorize)
	mux.HandleFunc("/token", is.auth.token)
	mux.HandleFunc("/userinfo", is.auth.userinfo)
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	is.CAFile = filepath.Join(t.TempDir(), "issuer-ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw})
	if err := os.WriteFile(is.CAFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	is.Rotate(t, jose.RS256)
	return is
}

// Rotate makes a new key of alg (RS256 or ES256) the signing key, keeping
// the previous one in the set as an issuer does during a rotation; Drop
// removes old ones.
func (is *Issuer) Rotate(t testing.TB, alg jose.SignatureAlgorithm) Key {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.serial++
	k := Key{KID: fmt.Sprintf("key-%d", is.serial), Alg: alg, Private: priv}
	is.keys = append([]Key{k}, is.keys...)
	return k
}

// Drop keeps only the signing key in the set.
func (is *Issuer) Drop() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = is.keys[:1]
}

// SigningKey returns the key tokens are signed with.
func (is *Issuer) SigningKey() Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[0]
}

// SetDown makes discovery and the JWKS answer 502 (true) or work again.
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// Fetches returns how many JWKS documents were served.
func (is *Issuer) Fetches() int64 { return is.fetches.Load() }

// JWKS returns the public key set as served.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range is.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.KID, Algorithm: string(k.Alg), Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}

// Sign signs claims with the signing key.
func (is *Issuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return SignWith(t, is.SigningKey(), claims)
}

// SignWith signs claims with k, its kid in the header as GitHub and
// Kubernetes put it; a Key with no KID signs a header without kid.
func SignWith(t testing.TB, k Key, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.KID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), k.KID)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
