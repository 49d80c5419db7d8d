package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]crypto.Signer{}
)

// testKey returns a key of kind (rsa1024, rsa2048, p224, p256, p384, p521,
// ed25519), generated once per test binary and kind (RSA generation is slow).
func testKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[kind]; ok {
		return k
	}
	k := newTestKey(t, kind)
	testKeys[kind] = k
	return k
}

// newTestKey generates a fresh key of kind.
func newTestKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyPEM encodes key as a PEM block of format pkcs1, pkcs8 or sec1.
func keyPEM(t testing.TB, key crypto.Signer, format string) []byte {
	t.Helper()
	var block *pem.Block
	switch format {
	case "pkcs1":
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "sec1":
		der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case "pkcs8":
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	default:
		t.Fatalf("unknown key format %q", format)
	}
	return pem.EncodeToMemory(block)
}

// certificate creates a certificate for pub valid from notBefore to
// notAfter, signed by parent/parentKey (self-signed when parent is nil).
func certificate(t testing.TB, cn string, pub crypto.PublicKey, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey crypto.Signer, isCA bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSigned is a self-signed certificate for key valid around testNow.
func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	return certificate(t, "test signer", key.Public(), testNow.Add(-time.Hour), testNow.AddDate(1, 0, 0), nil, key, false)
}

// certsPEM encodes certificates as PEM, in order.
func certsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testSigner builds a Signer for key with a self-signed certificate and
// the fixed clock; modify adjusts the Config before NewSigner.
func testSigner(t testing.TB, key crypto.Signer, modify func(*Config)) *Signer {
	t.Helper()
	dir := t.TempDir()
	c := &Config{
		Issuer:      "test issuer",
		Expiration:  900,
		Certificate: writeFile(t, dir, "token.pem", certsPEM(selfSigned(t, key))),
		Key:         writeFile(t, dir, "token.key", keyPEM(t, key, "pkcs8")),
	}
	if modify != nil {
		modify(c)
	}
	s, err := c.NewSigner(WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// errorPaths returns the dotted key path of each error joined in err and
// fails if one of them is not a *cfgerr.Error or lacks the "token: " prefix.
func errorPaths(t *testing.T, err error) []string {
	t.Helper()
	var paths []string
	for _, e := range cfgerr.Flatten(err) {
		var ce *cfgerr.Error
		if !errors.As(e, &ce) {
			t.Errorf("error %q is not a *cfgerr.Error", e)
			continue
		}
		if msg := ce.Err.Error(); len(msg) < 7 || msg[:7] != "token: " {
			t.Errorf("error %q lacks the \"token: \" prefix", msg)
		}
		paths = append(paths, cfgerr.Key(ce.Path))
	}
	slices.Sort(paths)
	return paths
}

// checkConfigError fails the test unless the key paths of err are
// wantPaths and, if err is not nil, its message contains wantMsg. It
// reports whether err is nil.
func checkConfigError(t *testing.T, err error, wantPaths []string, wantMsg string) bool {
	t.Helper()
	if got := errorPaths(t, err); !slices.Equal(got, wantPaths) {
		t.Fatalf("error paths = %q, want %q (error: %v)", got, wantPaths, err)
	}
	if err != nil && !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("error %q does not contain %q", err, wantMsg)
	}
	return err == nil
}
