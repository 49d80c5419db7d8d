package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewSignerLoadsKeys(t *testing.T) {
	rsaKey := testKey(t, "rsa2048")
	p256 := testKey(t, "p256")
	other := newTestKey(t, "p256")
	caKey := testKey(t, "p384")
	ca := certificate(t, "test CA", caKey.Public(), testNow.Add(-time.Hour), testNow.AddDate(2, 0, 0), nil, caKey, true)
	leaf := certificate(t, "leaf", p256.Public(), testNow.Add(-time.Hour), testNow.AddDate(1, 0, 0), ca, caKey, false)
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})

	tests := []struct {
		name      string
		cert      []byte // nil: file absent
		key       []byte // nil: file absent
		sameFile  bool   // cert and key concatenated in one file
		wantAlg   string
		wantChain int
		wantPaths []string
		wantMsg   string
	}{
		{name: "RSA-2048 PKCS#1", cert: certsPEM(selfSigned(t, rsaKey)), key: keyPEM(t, rsaKey, "pkcs1"), wantAlg: "RS256", wantChain: 1},
		{name: "RSA-2048 PKCS#8", cert: certsPEM(selfSigned(t, rsaKey)), key: keyPEM(t, rsaKey, "pkcs8"), wantAlg: "RS256", wantChain: 1},
		{name: "EC P-256 SEC1", cert: certsPEM(selfSigned(t, p256)), key: keyPEM(t, p256, "sec1"), wantAlg: "ES256", wantChain: 1},
		{name: "EC P-256 PKCS#8", cert: certsPEM(selfSigned(t, p256)), key: keyPEM(t, p256, "pkcs8"), wantAlg: "ES256", wantChain: 1},
		{name: "EC P-384 SEC1", cert: certsPEM(selfSigned(t, testKey(t, "p384"))), key: keyPEM(t, testKey(t, "p384"), "sec1"), wantAlg: "ES384", wantChain: 1},
		{name: "EC P-521 PKCS#8", cert: certsPEM(selfSigned(t, testKey(t, "p521"))), key: keyPEM(t, testKey(t, "p521"), "pkcs8"), wantAlg: "ES512", wantChain: 1},
		{name: "EC PARAMETERS block before the key (openssl ecparam)", cert: certsPEM(selfSigned(t, p256)),
			key: append(ecParams, keyPEM(t, p256, "sec1")...), wantAlg: "ES256", wantChain: 1},
		{name: "key and certificate in one file", cert: certsPEM(selfSigned(t, p256)), key: keyPEM(t, p256, "sec1"), sameFile: true,
			wantAlg: "ES256", wantChain: 1},
		{name: "chain leaf first", cert: certsPEM(leaf, ca), key: keyPEM(t, p256, "pkcs8"), wantAlg: "ES256", wantChain: 2},
		{name: "chain leaf last", cert: certsPEM(ca, leaf), key: keyPEM(t, p256, "pkcs8"),
			wantPaths: []string{"key"}, wantMsg: "matches certificate 2"},
		{name: "key does not match certificate", cert: certsPEM(selfSigned(t, other)), key: keyPEM(t, p256, "sec1"),
			wantPaths: []string{"key"}, wantMsg: "does not match certificate"},
		{name: "RSA key with EC certificate", cert: certsPEM(selfSigned(t, p256)), key: keyPEM(t, rsaKey, "pkcs1"),
			wantPaths: []string{"key"}, wantMsg: "does not match certificate"},
		{name: "Ed25519 rejected", cert: certsPEM(selfSigned(t, testKey(t, "ed25519"))), key: keyPEM(t, testKey(t, "ed25519"), "pkcs8"),
			wantPaths: []string{"key"}, wantMsg: "Ed25519 keys are not supported"},
		{name: "P-224 rejected", cert: certsPEM(selfSigned(t, testKey(t, "p224"))), key: keyPEM(t, testKey(t, "p224"), "sec1"),
			wantPaths: []string{"key"}, wantMsg: "curve P-224 is not supported"},
		{name: "certificate expired",
			cert: certsPEM(certificate(t, "old", p256.Public(), testNow.AddDate(-2, 0, 0), testNow.Add(-time.Second), nil, p256, false)),
			key:  keyPEM(t, p256, "sec1"), wantPaths: []string{"certificate"}, wantMsg: "(CN=old) expired at"},
		{name: "certificate not yet valid",
			cert: certsPEM(certificate(t, "future", p256.Public(), testNow.Add(time.Hour), testNow.AddDate(1, 0, 0), nil, p256, false)),
			key:  keyPEM(t, p256, "sec1"), wantPaths: []string{"certificate"}, wantMsg: "is not valid before"},
		{name: "intermediate expired",
			cert: certsPEM(leaf, certificate(t, "old CA", caKey.Public(), testNow.AddDate(-2, 0, 0), testNow.Add(-time.Second), nil, caKey, true)),
			key:  keyPEM(t, p256, "pkcs8"), wantPaths: []string{"certificate"}, wantMsg: "(CN=old CA) expired"},
		{name: "certificate file absent", key: keyPEM(t, p256, "sec1"),
			wantPaths: []string{"certificate"}, wantMsg: "reading certificate"},
		{name: "both files absent", wantPaths: []string{"certificate", "key"}, wantMsg: "reading key"},
		{name: "key file not PEM", cert: certsPEM(selfSigned(t, p256)), key: []byte("not a key"),
			wantPaths: []string{"key"}, wantMsg: "no PEM data found"},
		{name: "key file holds a certificate", cert: certsPEM(selfSigned(t, p256)), key: certsPEM(selfSigned(t, p256)),
			wantPaths: []string{"key"}, wantMsg: "no PEM private key block found (found CERTIFICATE)"},
		{name: "certificate file holds a key", cert: keyPEM(t, p256, "sec1"), key: keyPEM(t, p256, "sec1"),
			wantPaths: []string{"certificate"}, wantMsg: "no PEM CERTIFICATE block"},
		{name: "certificate block corrupt", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}}),
			key: keyPEM(t, p256, "sec1"), wantPaths: []string{"certificate"}, wantMsg: "block 1"},
		{name: "key block corrupt", cert: certsPEM(selfSigned(t, p256)), key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}),
			wantPaths: []string{"key"}, wantMsg: "parsing EC PRIVATE KEY block"},
		{name: "encrypted PEM key", cert: certsPEM(selfSigned(t, p256)), key: encrypted,
			wantPaths: []string{"key"}, wantMsg: "encrypted PEM keys are not supported"},
		{name: "encrypted PKCS#8 key", cert: certsPEM(selfSigned(t, p256)), key: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}),
			wantPaths: []string{"key"}, wantMsg: "encrypted PKCS#8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := Config{Issuer: "test", Expiration: 300, Certificate: filepath.Join(dir, "token.pem"), Key: filepath.Join(dir, "token.key")}
			if tt.sameFile {
				c.Key = c.Certificate
				writeFile(t, dir, "token.pem", append(append([]byte{}, tt.key...), tt.cert...))
			} else {
				if tt.cert != nil {
					writeFile(t, dir, "token.pem", tt.cert)
				}
				if tt.key != nil {
					writeFile(t, dir, "token.key", tt.key)
				}
			}
			s, err := c.NewSigner(WithClock(fixedClock))
			if !checkConfigError(t, err, tt.wantPaths, tt.wantMsg) {
				return
			}
			if s.Algorithm() != tt.wantAlg {
				t.Errorf("Algorithm() = %q, want %q", s.Algorithm(), tt.wantAlg)
			}
			if got := len(s.Certificates()); got != tt.wantChain {
				t.Errorf("len(Certificates()) = %d, want %d", got, tt.wantChain)
			}
			if !s.Certificates()[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(s.PublicKey()) {
				t.Error("PublicKey() is not the leaf certificate's key")
			}
			if s.Issuer() != "test" || s.Expiration() != 5*time.Minute {
				t.Errorf("Issuer(), Expiration() = %q, %v", s.Issuer(), s.Expiration())
			}
		})
	}
}

func TestNewSignerValidates(t *testing.T) {
	c := Config{Key: "/nonexistent/key"}
	_, err := c.NewSigner()
	if got, want := errorPaths(t, err), []string{"certificate", "expiration", "issuer"}; !slices.Equal(got, want) {
		t.Fatalf("error paths = %q, want %q (error: %v)", got, want, err)
	}
}

func TestNewSignerWarns(t *testing.T) {
	rsa1024 := testKey(t, "rsa1024")
	dir := t.TempDir()
	c := Config{
		Issuer: "test", Expiration: 300,
		Certificate: writeFile(t, dir, "token.pem", certsPEM(certificate(t, "short", rsa1024.Public(), testNow.Add(-time.Hour), testNow.Add(24*time.Hour), nil, rsa1024, false))),
		Key:         writeFile(t, dir, "token.key", keyPEM(t, rsa1024, "pkcs1")),
	}
	var logs bytes.Buffer
	if _, err := c.NewSigner(WithClock(fixedClock), WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shorter than 2048 bits", "expires soon"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not contain %q", logs.String(), want)
		}
	}
}

func TestGenerateIfMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ssl", "dev")
	c := Config{Issuer: "test", Expiration: 900, GenerateIfMissing: true,
		Certificate: filepath.Join(dir, "token.pem"), Key: filepath.Join(dir, "token.key")}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	s1, err := c.NewSigner(WithClock(fixedClock), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "generated a self-signed development signing key") ||
		!strings.Contains(logs.String(), s1.KeyID()) {
		t.Errorf("no generation warning with the kid in log %q", logs.String())
	}
	for path, want := range map[string]os.FileMode{c.Key: 0o600, dir: 0o700 | os.ModeDir} {
		if fi, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", path, fi.Mode(), want)
		}
	}
	certs := s1.Certificates()
	leaf := certs[0]
	pub, ok := s1.PublicKey().(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256():
		t.Errorf("generated key is %T, want EC P-256", s1.PublicKey())
	case s1.Algorithm() != "ES256":
		t.Errorf("Algorithm() = %q", s1.Algorithm())
	case len(certs) != 1 || leaf.Subject.CommonName != devCommonName:
		t.Errorf("certificate subject %q (chain of %d)", leaf.Subject, len(certs))
	case !leaf.NotBefore.Equal(testNow.Add(-time.Hour)) || !leaf.NotAfter.Equal(testNow.AddDate(1, 0, 0)):
		t.Errorf("validity %v – %v", leaf.NotBefore, leaf.NotAfter)
	case leaf.KeyUsage != x509.KeyUsageDigitalSignature || leaf.IsCA:
		t.Errorf("key usage %v, CA %v", leaf.KeyUsage, leaf.IsCA)
	case leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) != nil:
		t.Error("certificate is not self-signed")
	}
	// The registry trusts the generated certificate as its rootcertbundle.
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("generated certificate does not verify against itself: %v", err)
	}

	logs.Reset()
	s2, err := c.NewSigner(WithClock(fixedClock), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(s2.PublicKey()) {
		t.Error("second run generated a new key instead of reusing the files")
	}
	if logs.Len() != 0 {
		t.Errorf("second run logged %q", logs.String())
	}
}

// TestGenerateIfMissingReadOnly: a signer built for a check (validate,
// check) signs with a pair generated in memory and writes nothing, not even
// the directory; serving afterwards still creates the files.
func TestGenerateIfMissingReadOnly(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ssl")
	c := Config{Issuer: "test", Expiration: 900, GenerateIfMissing: true,
		Certificate: filepath.Join(dir, "token.pem"), Key: filepath.Join(dir, "token.key")}
	var logs bytes.Buffer
	s, err := c.NewSigner(WithClock(fixedClock), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Fatalf("a read-only signer wrote %v (%v)", entries, err)
	}
	if !strings.Contains(logs.String(), "would generate") || !strings.Contains(logs.String(), "nothing was written") {
		t.Errorf("log %q does not say what serving would generate", logs.String())
	}
	if _, err := s.Issue("alice", "registry", nil); err != nil {
		t.Fatalf("the in-memory pair does not sign: %v", err)
	}
	if _, err := c.NewSigner(WithClock(fixedClock), WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.Certificate, c.Key} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("serving did not create %s: %v", p, err)
		}
	}
}

func TestGenerateIfMissingOneFileAbsent(t *testing.T) {
	key := testKey(t, "p256")
	tests := []struct {
		name     string
		keep     string // the file that exists
		wantPath string
		wantMsg  string
	}{
		{name: "key absent", keep: "token.pem", wantPath: "key", wantMsg: "token.key does not exist but certificate"},
		{name: "certificate absent", keep: "token.key", wantPath: "certificate", wantMsg: "token.pem does not exist but key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string][]byte{"token.pem": certsPEM(selfSigned(t, key)), "token.key": keyPEM(t, key, "sec1")}
			writeFile(t, dir, tt.keep, files[tt.keep])
			c := Config{Issuer: "test", Expiration: 900, GenerateIfMissing: true,
				Certificate: filepath.Join(dir, "token.pem"), Key: filepath.Join(dir, "token.key")}
			_, err := c.NewSigner(WithClock(fixedClock))
			checkConfigError(t, err, []string{tt.wantPath}, tt.wantMsg)
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory holds %d files, want 1", len(entries))
			}
		})
	}
}
