package commands

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/gatehouse/gatehouse/internal/kmstest"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

func TestCertificate(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(dir, "token.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	kms := kmstest.Start(t)
	kmsID := kms.CreateKey(t, "ECC_NIST_P384")
	out, err := kms.Client().GetPublicKey(t.Context(), &awskms.GetPublicKeyInput{KeyId: &kmsID})
	if err != nil {
		t.Fatal(err)
	}
	kmsPub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		wantPub crypto.PublicKey
		wantCN  string
		days    int
	}{
		{name: "key file", args: []string{keyFile, "file.pem"}, wantPub: key.Public(), wantCN: "gatehouse token signer", days: 365},
		{name: "KMS key, flags after", args: []string{kms.Ref(kmsID), "kms.pem", "--cn", "registry token signer", "--days", "30"},
			wantPub: kmsPub, wantCN: "registry token signer", days: 30},
		{name: "flags first", args: []string{"--days=2", keyFile, "short.pem"}, wantPub: key.Public(), wantCN: "gatehouse token signer", days: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.args[len(tt.args)-1])
			for i, a := range tt.args {
				if strings.HasSuffix(a, ".pem") {
					tt.args[i] = filepath.Join(dir, a)
					out = tt.args[i]
				}
			}
			var stdout, stderr bytes.Buffer
			if code := Certificate(tt.args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			c := testutil.ReadCertificate(t, out)
			if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
				t.Errorf("not self-signed by its key: %v", err)
			}
			if !tt.wantPub.(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
				t.Error("the certificate is not for the key")
			}
			if c.Subject.CommonName != tt.wantCN {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, tt.wantCN)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != time.Duration(tt.days)*24*time.Hour+time.Hour {
				t.Errorf("validity %v, want %d days and the hour of back-dating", got, tt.days)
			}
		})
	}
}

func TestCertificateRefuses(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.pem")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	notAKey := filepath.Join(dir, "not-a-key")
	if err := os.WriteFile(notAKey, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	newOut := filepath.Join(dir, "new.pem")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no arguments", nil, 2, "want KEY and OUT"},
		{"one argument", []string{notAKey}, 2, "want KEY and OUT"},
		{"three arguments", []string{notAKey, newOut, "x"}, 2, "want KEY and OUT"},
		{"days out of range", []string{notAKey, newOut, "--days", "0"}, 2, "between 1 and 3650"},
		{"unknown flag", []string{notAKey, newOut, "--years", "1"}, 2, "flag provided but not defined"},
		{"output exists", []string{notAKey, existing}, 1, "exists"},
		{"not a key", []string{notAKey, newOut}, 1, "no PEM data"},
		{"unknown key service", []string{"pkcs11:object=x", newOut}, 1, "pkcs11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Certificate(tt.args, &stdout, &stderr); code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
			if data, _ := os.ReadFile(existing); string(data) != "keep me" {
				t.Error("the existing file was changed")
			}
			if _, err := os.Stat(newOut); err == nil {
				t.Error("a refused command wrote its output")
			}
		})
	}
}
