//go:build pkcs11

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
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/hsmtest"
)

// hsmConfig is a token section signing with ref, with a certificate at
// cert and a refresh secret (required with a key service).
func hsmConfig(t testing.TB, ref, cert string) *Config {
	t.Helper()
	secret := writeFile(t, t.TempDir(), "refresh", []byte(strings.Repeat("s", 48)))
	return &Config{Issuer: "test issuer", Expiration: 900, Certificate: cert, Key: ref, RefreshSecretFile: secret}
}

// hsmSigner is NewSigner for c at the fixed clock; the signer is closed
// when the test ends.
func hsmSigner(t testing.TB, c *Config) *Signer {
	t.Helper()
	s, err := c.NewSigner(WithClock(fixedClock), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", c.Key, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// importTestKey imports key into tok as label with id 01 and writes its
// self-signed certificate; it returns the certificate's path.
func importTestKey(t testing.TB, tok *hsmtest.Token, key crypto.Signer, label string) string {
	t.Helper()
	dir := t.TempDir()
	tok.ImportKey(t, label, []byte{1}, writeFile(t, dir, "key.pem", keyPEM(t, key, "pkcs8")))
	return writeFile(t, dir, "token.pem", certsPEM(selfSigned(t, key)))
}

func TestPKCS11SignAndVerify(t *testing.T) {
	for _, tc := range []struct {
		kind, alg string
	}{
		{"p256", "ES256"},
		{"p384", "ES384"},
		{"rsa2048", "RS256"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			tok := hsmtest.New(t, "gatehouse")
			key := testKey(t, tc.kind)
			cert := importTestKey(t, tok, key, "token-key")
			s := hsmSigner(t, hsmConfig(t, tok.Ref("token-key"), cert))
			file := testSigner(t, key, nil)

			if s.KeyKind() != "pkcs11" || s.Algorithm() != tc.alg {
				t.Errorf("KeyKind, Algorithm = %s, %s; want pkcs11, %s", s.KeyKind(), s.Algorithm(), tc.alg)
			}
			if s.KeyID() != file.KeyID() || !bytes.Equal(s.JWKSJSON(), file.JWKSJSON()) {
				t.Errorf("kid %s, JWKS %s\nwant those of the same key in a file: kid %s, JWKS %s", s.KeyID(), s.JWKSJSON(), file.KeyID(), file.JWKSJSON())
			}
			for range 3 { // an ECDSA signature's r or s with a leading zero must still convert
				issued, err := s.Issue("alice", "registry", []Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}})
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				// Verified against the public key of the file signer: the HSM signed with that key.
				if _, err := verify(file, issued.Raw); err != nil {
					t.Fatalf("golang-jwt rejects the token signed in SoftHSM2: %v", err)
				}
			}
		})
	}
}

func TestPKCS11KeyErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ref    func(tok *hsmtest.Token, dir string) string
		want   string
		wantAt string
	}{
		{name: "wrong PIN", want: "the PIN in the pin-source file is wrong", wantAt: "key",
			ref: func(tok *hsmtest.Token, dir string) string {
				pin := writeFile(t, dir, "wrong-pin", []byte("0000-wrong\n"))
				return strings.Replace(tok.Ref("token-key"), tok.PINFile, pin, 1)
			}},
		{name: "missing object", want: "pkcs11:token=gatehouse;object=no-such-key: no key pair with that object (CKA_LABEL) and id (CKA_ID) on the token", wantAt: "key",
			ref: func(tok *hsmtest.Token, _ string) string { return tok.Ref("no-such-key") }},
		{name: "missing token", want: "pkcs11:token=elsewhere;object=token-key: opening the token", wantAt: "key",
			ref: func(tok *hsmtest.Token, _ string) string {
				return strings.Replace(tok.Ref("token-key"), "token=gatehouse", "token=elsewhere", 1)
			}},
		{name: "missing PIN file", want: "reading the PIN", wantAt: "key",
			ref: func(tok *hsmtest.Token, dir string) string {
				return strings.Replace(tok.Ref("token-key"), tok.PINFile, filepath.Join(dir, "absent"), 1)
			}},
		{name: "missing module", want: "PKCS #11 module", wantAt: "key",
			ref: func(tok *hsmtest.Token, dir string) string {
				return strings.Replace(tok.Ref("token-key"), hsmtest.ModulePath, filepath.Join(dir, "libabsent.so"), 1)
			}},
		{name: "RSA key too small", want: "RSA key of 1024 bits", wantAt: "key",
			ref: func(tok *hsmtest.Token, _ string) string {
				tok.GenerateRSA(t, "small", []byte{9}, 1024)
				return tok.Ref("small")
			}},
		{name: "curve not for JWS", want: "unsupported ECDSA curve P-224", wantAt: "key",
			ref: func(tok *hsmtest.Token, _ string) string {
				tok.GenerateECDSA(t, "p224", []byte{8}, elliptic.P224())
				return tok.Ref("p224")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := hsmtest.New(t, "gatehouse")
			tok.GenerateECDSA(t, "token-key", []byte{1}, elliptic.P256())
			dir := t.TempDir()
			c := hsmConfig(t, tc.ref(tok, dir), writeFile(t, dir, "token.pem", nil))
			s, err := c.NewSigner(WithClock(fixedClock))
			if err == nil {
				s.Close()
				t.Fatal("NewSigner succeeded")
			}
			checkConfigError(t, err, []string{tc.wantAt}, tc.want)
			if strings.Contains(err.Error(), hsmtest.PIN) || strings.Contains(err.Error(), "0000-wrong") {
				t.Errorf("the error shows a PIN: %v", err)
			}
		})
	}
}

func TestPKCS11GenerateIfMissingWritesOnlyTheCertificate(t *testing.T) {
	tok := hsmtest.New(t, "gatehouse")
	pub := tok.GenerateECDSA(t, "token-key", []byte{1}, elliptic.P256())
	dir := t.TempDir()
	c := hsmConfig(t, tok.Ref("token-key"), filepath.Join(dir, "token.pem"))
	c.GenerateIfMissing = true
	s := hsmSigner(t, c)

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "token.pem" {
		t.Fatalf("the directory holds %v, want token.pem alone", entries)
	}
	data, err := os.ReadFile(filepath.Join(dir, "token.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("token.pem is not one certificate:\n%s", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(*ecdsa.PublicKey).Equal(cert.PublicKey) || !pub.(*ecdsa.PublicKey).Equal(s.PublicKey()) {
		t.Fatal("the certificate's key is not the key in the token")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Fatalf("the self-signed certificate's signature (made in the token) does not verify: %v", err)
	}
}

// TestPKCS11TwoSignersOneToken is a reload: the new signer opens the token
// while the old one still has it open; closing either keeps the other
// signing.
func TestPKCS11TwoSignersOneToken(t *testing.T) {
	for _, tc := range []struct {
		name       string
		closeFirst int // which signer is closed: 0 the old one, 1 the new one
	}{
		{"old closed after the reload", 0},
		{"new closed, old kept", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := hsmtest.New(t, "gatehouse")
			key := testKey(t, "p256")
			cert := importTestKey(t, tok, key, "token-key")
			file := testSigner(t, key, nil)
			var signers [2]*Signer
			for i := range signers {
				signers[i] = hsmSigner(t, hsmConfig(t, tok.Ref("token-key"), cert))
			}
			issue := func(s *Signer, when string) {
				t.Helper()
				issued, err := s.Issue("alice", "registry", nil)
				if err != nil {
					t.Fatalf("%s: Issue: %v", when, err)
				}
				if _, err := verify(file, issued.Raw); err != nil {
					t.Fatalf("%s: golang-jwt rejects the token: %v", when, err)
				}
			}
			issue(signers[0], "both open, first")
			issue(signers[1], "both open, second")
			if err := signers[tc.closeFirst].Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			kept := signers[1-tc.closeFirst]
			issue(kept, "after the other was closed")
			if _, err := signers[tc.closeFirst].Issue("alice", "registry", nil); err == nil {
				t.Error("the closed signer still signs")
			}
			// And the token can be opened again while the kept one is open.
			issue(hsmSigner(t, hsmConfig(t, tok.Ref("token-key"), cert)), "a third, opened after the close")
			issue(kept, "kept, at the end")
		})
	}
}

// TestPKCS11ReloadChecksThePIN: while a key of the token is open the token
// stays logged in and the module accepts any further login, so a reload
// whose PIN file holds another PIN is refused; the same PIN (in another
// file) is accepted.
func TestPKCS11ReloadChecksThePIN(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pin     string
		wantErr string
	}{
		{name: "wrong PIN while the token is open", pin: "0000-wrong", wantErr: "restart gatehouse to use another PIN"},
		{name: "same PIN in another file", pin: hsmtest.PIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := hsmtest.New(t, "gatehouse")
			key := testKey(t, "p256")
			cert := importTestKey(t, tok, key, "token-key")
			hsmSigner(t, hsmConfig(t, tok.Ref("token-key"), cert)) // the signer in use
			pinFile := writeFile(t, t.TempDir(), "pin", []byte(tc.pin+"\n"))
			c := hsmConfig(t, strings.Replace(tok.Ref("token-key"), tok.PINFile, pinFile, 1), cert)
			s, err := c.NewSigner(WithClock(fixedClock))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("NewSigner: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("NewSigner accepted a wrong PIN")
			}
			checkConfigError(t, err, []string{"key"}, tc.wantErr)
		})
	}
}
