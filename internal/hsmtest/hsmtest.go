//go:build pkcs11

// Package hsmtest gives a test a SoftHSM2 token of its own: a softhsm2.conf
// and a token directory in the test's temporary directory (SOFTHSM2_CONF is
// set for the test and the processes it starts), a token initialised with
// softhsm2-util, and key pairs generated in it through crypto11.
//
// It needs the Debian package softhsm2 (scripts/test.sh installs it). When
// it is missing, New skips the test, or fails it when the environment
// variable CI is "true". SoftHSM2 reads its configuration when the module
// is initialised, once per process while any session is open, so tests that
// use it must not run in parallel (t.Setenv enforces it).
//
//	tok := hsmtest.New(t, "gatehouse")
//	pub := tok.GenerateECDSA(t, "token-key", []byte{1}, elliptic.P256())
//	ref := tok.Ref("token-key") // pkcs11:token=gatehouse;object=token-key?module-path=…&pin-source=file:…
//
// Only tests import it.
package hsmtest

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// ModulePath is SoftHSM2's PKCS #11 module as Debian installs it.
const ModulePath = "/usr/lib/softhsm/libsofthsm2.so"

// The PINs of every test token.
const (
	PIN   = "1234-user"
	SOPIN = "5678-so"
)

// Token is an initialised SoftHSM2 token.
type Token struct {
	// Label is the token's label: the reference's token attribute.
	Label string
	// Dir is the test's SoftHSM2 directory (configuration and tokens).
	Dir string
	// PINFile holds PIN followed by a newline.
	PINFile string
}

// New writes a SoftHSM2 configuration with a token directory in a new
// temporary directory, points SOFTHSM2_CONF at it for the rest of the test,
// and initialises a token labelled label.
func New(t testing.TB, label string) *Token {
	t.Helper()
	testutil.UsesComponent(t, "SoftHSM2")
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		missing(t, "softhsm2-util not found")
	}
	if _, err := os.Stat(ModulePath); err != nil {
		missing(t, ModulePath+" not found")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	write(t, conf, fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	tok := &Token{Label: label, Dir: dir, PINFile: filepath.Join(dir, "pin")}
	write(t, tok.PINFile, PIN+"\n", 0o600)
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SOPIN)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hsmtest: softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}

func missing(t testing.TB, why string) {
	t.Helper()
	msg := "hsmtest: " + why + " (apt-get install softhsm2, or run scripts/test.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func write(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// Ref is the key reference of the key pair labelled object on the token,
// with the module and the PIN file.
func (tok *Token) Ref(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=file:%s",
		url.PathEscape(tok.Label), url.PathEscape(object), ModulePath, tok.PINFile)
}

// open logs in to the token; the context must be closed before the test
// ends, so that the next test's SoftHSM2 configuration is read.
func (tok *Token) open(t testing.TB) *crypto11.Context {
	t.Helper()
	c, err := crypto11.Configure(&crypto11.Config{Path: ModulePath, TokenLabel: tok.Label, Pin: PIN})
	if err != nil {
		t.Fatalf("hsmtest: opening token %s: %v", tok.Label, err)
	}
	return c
}

// GenerateECDSA generates an ECDSA key pair on curve with CKA_LABEL label
// and CKA_ID id in the token and returns its public key.
func (tok *Token) GenerateECDSA(t testing.TB, label string, id []byte, curve elliptic.Curve) crypto.PublicKey {
	t.Helper()
	c := tok.open(t)
	defer c.Close()
	k, err := c.GenerateECDSAKeyPairWithLabel(id, []byte(label), curve)
	if err != nil {
		t.Fatalf("hsmtest: generating an ECDSA %s key pair: %v", curve.Params().Name, err)
	}
	return k.Public()
}

// GenerateRSA generates an RSA key pair of bits with CKA_LABEL label and
// CKA_ID id in the token and returns its public key.
func (tok *Token) GenerateRSA(t testing.TB, label string, id []byte, bits int) crypto.PublicKey {
	t.Helper()
	c := tok.open(t)
	defer c.Close()
	k, err := c.GenerateRSAKeyPairWithLabel(id, []byte(label), bits)
	if err != nil {
		t.Fatalf("hsmtest: generating an RSA-%d key pair: %v", bits, err)
	}
	return k.Public()
}

// WriteCertificate writes to path a self-signed certificate (PEM) for the
// key pair labelled label, signed in the token, valid from an hour ago for
// a year, and returns it in DER.
func (tok *Token) WriteCertificate(t testing.TB, label, path string) []byte {
	t.Helper()
	c := tok.open(t)
	defer c.Close()
	k, err := c.FindKeyPair(nil, []byte(label))
	if err != nil || k == nil {
		t.Fatalf("hsmtest: no key pair %s: %v", label, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "hsmtest " + label},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatalf("hsmtest: certificate for %s: %v", label, err)
	}
	write(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	return der
}

// ImportKey imports the private key in the PKCS #8 PEM file keyFile into
// the token with CKA_LABEL label and CKA_ID id (softhsm2-util --import),
// with its public key: a key pair whose private half a test also has.
func (tok *Token) ImportKey(t testing.TB, label string, id []byte, keyFile string) {
	t.Helper()
	cmd := exec.Command("softhsm2-util", "--import", keyFile, "--token", tok.Label,
		"--label", label, "--id", fmt.Sprintf("%x", id), "--pin", PIN)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hsmtest: softhsm2-util --import: %v\n%s", err, out)
	}
}
