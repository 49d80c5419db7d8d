//go:build pkcs11

package registryv3

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/hsmtest"
)

// TestPKCS11PushPull runs the gatehouse binary built with -tags pkcs11,
// whose token key is in a SoftHSM2 token (no key file exists), in front of
// registry v3: alice pushes an image and pulls it back, and a token taken
// from the realm verifies against the key in the token.
func TestPKCS11PushPull(t *testing.T) {
	bin := harness.BuildGatehouseTags(t, "pkcs11")
	for _, tc := range []struct {
		name string
		kt   harness.KeyType
		gen  func(tok *hsmtest.Token)
	}{
		{"ES256", harness.ECP256, func(tok *hsmtest.Token) {
			tok.GenerateECDSA(t, "token-key", []byte{1}, elliptic.P256())
		}},
		{"RS256", harness.RSA2048, func(tok *hsmtest.Token) {
			tok.GenerateRSA(t, "token-key", []byte{1}, 2048)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := hsmtest.New(t, "gatehouse")
			tc.gen(tok)
			dir := t.TempDir()
			certPath := filepath.Join(dir, "token.pem")
			der := tok.WriteCertificate(t, "token-key", certPath)
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			key := harness.SigningKey{Type: tc.kt, CertPath: certPath, KeyPath: tok.Ref("token-key"), CertDER: der, Public: cert.PublicKey}
			cfg := harness.WriteBinaryConfig(t, dir, harness.GatehouseOptions{Key: key}, "")
			addRefreshSecret(t, cfg, key.KeyPath, filepath.Join(dir, "refresh"))

			p := harness.StartProcess(t, bin, cfg, "gatehouse-pkcs11", harness.FreePort(t))
			p.WaitReady(t, 15*time.Second)
			realm := "http://" + strings.Replace(p.Addr, "127.0.0.1", "localhost", 1) + "/auth" // clients refuse a realm on an IP literal
			env := harness.NewExternalEnv(t, newRegistry, key, realm)

			const repo = "alice/hsm-signed"
			digest := env.MustPush(t, harness.Alice, repo)
			env.MustPullDigest(t, harness.Alice, repo, digest)

			// A token from the realm carries the algorithm of the key in
			// the token and verifies against the certificate's key.
			raw := fetchToken(t, realm, repo)
			parsed, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return env.Key.Public, nil },
				jwt.WithValidMethods([]string{tc.kt.Alg()}))
			if err != nil {
				t.Fatalf("the token does not verify against the key in SoftHSM2: %v", err)
			}
			if parsed.Method.Alg() != tc.kt.Alg() {
				t.Errorf("alg %s, want %s", parsed.Method.Alg(), tc.kt.Alg())
			}
		})
	}
}

// addRefreshSecret adds refresh_secret_file (required with a key service)
// after the key line of the configuration cfg.
func addRefreshSecret(t *testing.T, cfg, ref, secretPath string) {
	t.Helper()
	if err := os.WriteFile(secretPath, []byte(strings.Repeat("r", 48)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keyLine := fmt.Sprintf("  key: %q\n", ref)
	if !strings.Contains(string(b), keyLine) {
		t.Fatalf("%s has no line %q", cfg, keyLine)
	}
	out := strings.Replace(string(b), keyLine, keyLine+fmt.Sprintf("  refresh_secret_file: %q\n", secretPath), 1)
	if err := os.WriteFile(cfg, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fetchToken asks the realm for a pull token for repo as alice.
func fetchToken(t *testing.T, realm, repo string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, realm+"?service="+harness.Service+"&scope=repository:"+repo+":pull", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(harness.Alice.User, harness.Alice.Password)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Token == "" {
		t.Fatalf("token request: status %d, decode error %v", resp.StatusCode, err)
	}
	return body.Token
}
