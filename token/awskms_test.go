package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/kmstest"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// kmsConfig is a Config signing with ref: the certificate is generated
// in dir on first use, refresh tokens have a secret file.
func kmsConfig(t testing.TB, dir, ref string) *Config {
	t.Helper()
	return &Config{
		Issuer:            "test issuer",
		Expiration:        900,
		Certificate:       filepath.Join(dir, "token.pem"),
		Key:               ref,
		GenerateIfMissing: true,
		RefreshSecretFile: writeFile(t, t.TempDir(), "refresh.secret", bytes.Repeat([]byte("s"), 48)),
	}
}

// kmsSigner builds a Signer for ref with the fixed clock.
func kmsSigner(t testing.TB, c *Config, opts ...Option) *Signer {
	t.Helper()
	s, err := c.NewSigner(append([]Option{WithClock(fixedClock), WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// jwksHas reports whether the JWKS document lists pub under kid.
func jwksHas(t *testing.T, doc []byte, kid string, pub crypto.PublicKey) bool {
	t.Helper()
	alg, err := algorithmOf(pub)
	if err != nil {
		t.Fatal(err)
	}
	want, err := jwksEntries(pub, alg)
	if err != nil {
		t.Fatal(err)
	}
	var set JWKS
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if w.Kid != kid {
			continue
		}
		for _, k := range set.Keys {
			if k == w {
				return true
			}
		}
	}
	return false
}

func TestAWSKMSSignAndVerify(t *testing.T) {
	srv := kmstest.Start(t)
	tests := []struct {
		name    string
		spec    string
		kid     string
		wantAlg string
	}{
		{name: "P-256", spec: "ECC_NIST_P256", wantAlg: "ES256"},
		{name: "P-384 thumbprint", spec: "ECC_NIST_P384", kid: KIDThumbprint, wantAlg: "ES384"},
		{name: "P-521", spec: "ECC_NIST_P521", wantAlg: "ES512"},
		{name: "RSA-2048", spec: "RSA_2048", wantAlg: "RS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := srv.CreateKey(t, tt.spec)
			c := kmsConfig(t, t.TempDir(), srv.Ref(id))
			c.KID = tt.kid
			s := kmsSigner(t, c)
			if s.KeyKind() != "awskms" || s.Algorithm() != tt.wantAlg {
				t.Fatalf("KeyKind, Algorithm = %q, %q; want awskms, %s", s.KeyKind(), s.Algorithm(), tt.wantAlg)
			}
			if want := "awskms:" + kmstest.ARN(id); s.ext.name != want {
				t.Errorf("key name %q, want %q", s.ext.name, want)
			}
			tok, err := s.IssueContext(context.Background(), "alice", "registry.example.com", []Access{{Type: "repository", Name: "a/b", Actions: []string{"pull"}}})
			if err != nil {
				t.Fatal(err)
			}
			h := parse(t, s, tok.Raw).header // verified against s.PublicKey()
			cert := testutil.ReadCertificate(t, c.Certificate)
			if _, err := jwt.Parse(tok.Raw, func(*jwt.Token) (any, error) { return cert.PublicKey, nil },
				jwt.WithValidMethods([]string{tt.wantAlg}), jwt.WithTimeFunc(fixedClock)); err != nil {
				t.Errorf("the token does not verify against the certificate's key: %v", err)
			}
			wantKID, err := LibtrustKeyID(cert.PublicKey)
			if tt.kid == KIDThumbprint {
				wantKID, err = ThumbprintKeyID(cert.PublicKey)
			}
			if err != nil {
				t.Fatal(err)
			}
			if h["alg"] != tt.wantAlg || h["kid"] != wantKID || s.KeyID() != wantKID {
				t.Errorf("alg, kid = %v, %v; KeyID() = %q; want %s, %s", h["alg"], h["kid"], s.KeyID(), tt.wantAlg, wantKID)
			}
			if x5c, _ := h["x5c"].([]any); len(x5c) != 1 || x5c[0] != base64.StdEncoding.EncodeToString(cert.Raw) {
				t.Errorf("x5c = %v, want the certificate", h["x5c"])
			}
			if !jwksHas(t, s.JWKSJSON(), wantKID, cert.PublicKey) {
				t.Errorf("JWKS %s does not list the key under %s", s.JWKSJSON(), wantKID)
			}
			if !bytes.Equal(s.CertificateBundle(), certsPEM(cert)) {
				t.Error("certificate bundle is not the certificate")
			}
		})
	}
}

func TestAWSKMSAlias(t *testing.T) {
	srv := kmstest.Start(t)
	id := srv.CreateKey(t, "ECC_NIST_P256")
	srv.CreateAlias(t, "alias/gatehouse/token", id)
	tests := []struct{ name, key, wantName string }{
		{"alias", "alias/gatehouse/token", "awskms:" + kmstest.ARN(id) + " (alias/gatehouse/token)"},
		{"alias ARN", "arn:aws:kms:eu-west-2:111122223333:alias/gatehouse/token",
			"awskms:" + kmstest.ARN(id) + " (arn:aws:kms:eu-west-2:111122223333:alias/gatehouse/token)"},
		{"key ARN", kmstest.ARN(id), "awskms:" + kmstest.ARN(id)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := kmsSigner(t, kmsConfig(t, t.TempDir(), srv.Ref(tt.key)))
			if s.ext.name != tt.wantName {
				t.Errorf("key name %q, want %q", s.ext.name, tt.wantName)
			}
			if _, err := verify(s, mustIssue(t, s)); err != nil {
				t.Errorf("token does not verify: %v", err)
			}
		})
	}
}

// TestAWSKMSGenerateIfMissing: with generate_if_missing and no certificate,
// a self-signed certificate for the KMS key is written and nothing else;
// a read-only signer writes nothing; without generate_if_missing the
// missing certificate is an error.
func TestAWSKMSGenerateIfMissing(t *testing.T) {
	srv := kmstest.Start(t)
	ref := srv.Ref(srv.CreateKey(t, "ECC_NIST_P256"))

	root := t.TempDir()
	dir := filepath.Join(root, "ssl")
	c := kmsConfig(t, dir, ref)
	var logs bytes.Buffer
	logTo := WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := c.NewSigner(WithClock(fixedClock), WithReadOnly(), logTo); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a read-only signer wrote %v", entries)
	}
	if !strings.Contains(logs.String(), "nothing was written") {
		t.Errorf("read-only log %q", logs.String())
	}

	s := kmsSigner(t, c)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "token.pem" {
		t.Fatalf("wrote %v (%v), want token.pem only", entries, err)
	}
	cert := testutil.ReadCertificate(t, c.Certificate)
	switch {
	case !s.PublicKey().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey):
		t.Error("certificate is not for the KMS key")
	case cert.CheckSignatureFrom(cert) != nil && cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil:
		t.Error("certificate is not self-signed by the KMS key")
	case cert.Subject.CommonName != externalCommonName:
		t.Errorf("subject %q", cert.Subject)
	}

	c.GenerateIfMissing = false
	c.Certificate = filepath.Join(root, "absent.pem")
	_, err = c.NewSigner(WithClock(fixedClock))
	checkConfigError(t, err, []string{"certificate"}, "absent.pem")
}

func TestAWSKMSRefused(t *testing.T) {
	srv := kmstest.Start(t)
	tests := []struct {
		name    string
		key     func() string
		wantMsg string
	}{
		{"secp256k1", func() string { return srv.CreateKey(t, "ECC_SECG_P256K1") }, "key spec ECC_SECG_P256K1 cannot sign tokens"},
		{"RSA for encryption", func() string { return srv.CreateKeyUsage(t, "RSA_2048", types.KeyUsageTypeEncryptDecrypt) },
			"key usage is ENCRYPT_DECRYPT"},
		{"symmetric", func() string { return srv.CreateKeyUsage(t, "SYMMETRIC_DEFAULT", types.KeyUsageTypeEncryptDecrypt) },
			"getting the public key"},
		{"no such key", func() string { return "0d9a3ee1-6b3c-4d2f-9c1e-2f7f4b8a5c10" }, "NotFoundException"},
		{"no such alias", func() string { return "alias/none" }, "NotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key()
			c := kmsConfig(t, t.TempDir(), srv.Ref(key))
			_, err := c.NewSigner(WithClock(fixedClock))
			if checkConfigError(t, err, []string{"key"}, tt.wantMsg) {
				t.Fatal("NewSigner accepted the key")
			}
			if !strings.Contains(err.Error(), "awskms:///"+key) {
				t.Errorf("error %q does not name the key", err)
			}
			if _, statErr := os.Stat(c.Certificate); statErr == nil {
				t.Error("a certificate was written for a refused key")
			}
		})
	}
}

func TestAWSKMSNeedsRefreshSecretFile(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		secret bool
		want   []string
	}{
		{name: "awskms without secret", key: "awskms:///alias/token", want: []string{"refresh_secret_file"}},
		{name: "awskms with secret", key: "awskms:///alias/token", secret: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Issuer: "i", Expiration: 900, Certificate: "c.pem", Key: tt.key}
			if tt.secret {
				c.RefreshSecretFile = "refresh.secret"
			}
			checkConfigError(t, c.Validate(), tt.want, "(awskms)")
		})
	}
}

// TestAWSKMSRotation: key A signs while next_key B, another KMS key, is
// published; after the swap B signs and A stays published.
func TestAWSKMSRotation(t *testing.T) {
	srv := kmstest.Start(t)
	refA, refB := srv.Ref(srv.CreateKey(t, "ECC_NIST_P256")), srv.Ref(srv.CreateKey(t, "ECC_NIST_P384"))
	dirA, dirB := t.TempDir(), t.TempDir()
	certA := kmsSigner(t, kmsConfig(t, dirA, refA)).Certificates()[0]
	certB := kmsSigner(t, kmsConfig(t, dirB, refB)).Certificates()[0]

	steps := []struct {
		name           string
		key, cert      string
		next, nextCert string
		signer, other  *x509.Certificate
		wantAlg        string
	}{
		{name: "A signs, B next", key: refA, cert: filepath.Join(dirA, "token.pem"), next: refB, nextCert: filepath.Join(dirB, "token.pem"),
			signer: certA, other: certB, wantAlg: "ES256"},
		{name: "B signs, A still published", key: refB, cert: filepath.Join(dirB, "token.pem"), next: refA, nextCert: filepath.Join(dirA, "token.pem"),
			signer: certB, other: certA, wantAlg: "ES384"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c := kmsConfig(t, t.TempDir(), st.key)
			c.Certificate, c.GenerateIfMissing = st.cert, false
			c.NextKey, c.NextCertificate = st.next, st.nextCert
			s := kmsSigner(t, c)
			raw := mustIssue(t, s)
			if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return st.signer.PublicKey, nil },
				jwt.WithValidMethods([]string{st.wantAlg}), jwt.WithTimeFunc(fixedClock)); err != nil {
				t.Errorf("token not signed by the current key: %v", err)
			}
			for _, cert := range []*x509.Certificate{st.signer, st.other} {
				kid, _ := LibtrustKeyID(cert.PublicKey)
				if !jwksHas(t, s.JWKSJSON(), kid, cert.PublicKey) {
					t.Errorf("JWKS lacks %s", kid)
				}
			}
			if !bytes.Equal(s.CertificateBundle(), certsPEM(st.signer, st.other)) {
				t.Error("bundle is not current then next certificate")
			}
			if s.nextExt == nil || s.nextExt.name != "awskms:"+kmstest.ARN(strings.TrimPrefix(strings.SplitN(st.next, "?", 2)[0], "awskms:///")) {
				t.Errorf("next key not held as a KMS key: %+v", s.nextExt)
			}
		})
	}
}

// TestAWSKMSOutage: with KMS refusing connections or not answering, Issue
// fails with ErrSignerUnavailable after key_timeout and key_retries (it does
// not hang) and NotReady says so; once KMS is back, a probe by NotReady
// clears it and tokens are issued again.
func TestAWSKMSOutage(t *testing.T) {
	srv := kmstest.Start(t)
	ref := srv.Ref(srv.CreateKey(t, "ECC_NIST_P256"))
	tests := []struct {
		name     string
		down, up func()
	}{
		{name: "connection refused", down: srv.Stop, up: srv.Restart},
		{name: "not answering", down: func() { srv.Hang(true) }, up: func() { srv.Hang(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testutil.NewClock(testNow)
			c := kmsConfig(t, t.TempDir(), ref)
			retries := 2
			c.KeyTimeout, c.KeyRetries = 300*time.Millisecond, &retries
			s := kmsSigner(t, c, WithClock(clock.Now))
			mustIssue(t, s)

			tt.down()
			bound := 10 * (3*c.KeyTimeout + 150*time.Millisecond) // 3 calls, pauses of 50 and 100 ms
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			_, err := s.IssueContext(ctx, "alice", "registry", nil)
			if !errors.Is(err, ErrSignerUnavailable) || ctx.Err() != nil {
				t.Fatalf("IssueContext with KMS down = %v (context: %v), want ErrSignerUnavailable before %v", err, ctx.Err(), bound)
			}
			reason, cause := s.NotReady(context.Background())
			if !strings.Contains(reason, "awskms:"+kmstest.ARN("")) || !strings.Contains(reason, "not answering since") || cause == nil {
				t.Errorf("NotReady = %q, %v; want the key named", reason, cause)
			}

			tt.up()
			clock.Add(probeInterval)
			if reason, cause := s.NotReady(context.Background()); reason != "" {
				t.Fatalf("NotReady after recovery = %q, %v; want the probe to clear it", reason, cause)
			}
			if _, err := jwt.Parse(mustIssue(t, s), func(*jwt.Token) (any, error) { return s.PublicKey(), nil },
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(clock.Now)); err != nil {
				t.Errorf("token after recovery: %v", err)
			}
		})
	}
}

// TestAWSKMSSignerChecksHash: the KMS key refuses digests of another hash
// than its algorithm's, and PSS.
func TestAWSKMSSignerChecksHash(t *testing.T) {
	srv := kmstest.Start(t)
	s := kmsSigner(t, kmsConfig(t, t.TempDir(), srv.Ref(srv.CreateKey(t, "ECC_NIST_P256"))))
	k := s.ext.signer.(*kmsKey)
	tests := []struct {
		name    string
		digest  []byte
		opts    crypto.SignerOpts
		wantErr bool
	}{
		{"SHA-256", make([]byte, 32), crypto.SHA256, false},
		{"SHA-384 digest", make([]byte, 48), crypto.SHA384, true},
		{"short digest", make([]byte, 31), crypto.SHA256, true},
		{"PSS", make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Calls("Sign")
			_, err := k.Sign(nil, tt.digest, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("Sign = %v, want error %v", err, tt.wantErr)
			}
			if calls := srv.Calls("Sign") - before; tt.wantErr && calls != 0 {
				t.Errorf("a refused digest reached KMS (%d calls)", calls)
			}
		})
	}
}

// TestAWSKMSRetries: key_retries is the only retry policy: the SDK's own
// retryer, which would retry a KMSInternalException, is off.
func TestAWSKMSRetries(t *testing.T) {
	srv := kmstest.Start(t)
	ref := srv.Ref(srv.CreateKey(t, "ECC_NIST_P256"))
	for _, retries := range []int{0, 2} {
		t.Run(fmt.Sprintf("key_retries %d", retries), func(t *testing.T) {
			c := kmsConfig(t, t.TempDir(), ref)
			c.KeyRetries = &retries
			s := kmsSigner(t, c)
			srv.Fail(true)
			defer srv.Fail(false)
			before := srv.Calls("Sign")
			_, err := s.Issue("alice", "registry", nil)
			if !errors.Is(err, ErrSignerUnavailable) || !strings.Contains(err.Error(), "KMSInternalException") {
				t.Fatalf("Issue = %v, want ErrSignerUnavailable with KMS's error", err)
			}
			if calls := srv.Calls("Sign") - before; calls != int64(retries+1) {
				t.Errorf("KMS got %d Sign calls, want %d", calls, retries+1)
			}
		})
	}
}

// TestAWSKMSCloseDropsConnections: closing the Signer (as a reload does
// with the one it replaces) closes its connections to KMS.
func TestAWSKMSCloseDropsConnections(t *testing.T) {
	srv := kmstest.Start(t)
	c := kmsConfig(t, t.TempDir(), srv.Ref(srv.CreateKey(t, "ECC_NIST_P256")))
	s, err := c.NewSigner(WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	mustIssue(t, s)
	if srv.OpenConns() == 0 {
		t.Fatal("no connection to KMS is open after signing")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); srv.OpenConns() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to KMS still open after Close", srv.OpenConns())
		}
	}
}

// TestAWSKMSRefusalIsNotRetried: a key KMS refuses to use (disabled,
// scheduled for deletion) fails at once, one Sign call, without the retries
// that a failure of KMS itself gets; enabling the key again recovers.
func TestAWSKMSRefusalIsNotRetried(t *testing.T) {
	srv := kmstest.Start(t)
	id := srv.CreateKey(t, "ECC_NIST_P256")
	c := kmsConfig(t, t.TempDir(), srv.Ref(id))
	retries := 2
	c.KeyRetries = &retries
	s := kmsSigner(t, c)
	if _, err := srv.Client().DisableKey(t.Context(), &kms.DisableKeyInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	before := srv.Calls("Sign")
	_, err := s.Issue("alice", "registry", nil)
	if !errors.Is(err, ErrSignerUnavailable) || !errors.Is(err, errKeyRefused) {
		t.Fatalf("Issue with the key disabled = %v, want ErrSignerUnavailable and errKeyRefused", err)
	}
	if calls := srv.Calls("Sign") - before; calls != 1 {
		t.Errorf("KMS got %d Sign calls for a disabled key, want 1 (no retry)", calls)
	}
	if _, err := srv.Client().EnableKey(t.Context(), &kms.EnableKeyInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	mustIssue(t, s)
}
