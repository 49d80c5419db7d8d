package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/kmstest"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// kmsServer builds a Server whose token key is held by local-kms: the
// certificate is generated for the KMS key on first use.
func kmsServer(t *testing.T, ref string, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "refresh.secret"), []byte(strings.Repeat("k", 48)), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: test-issuer
  expiration: 600
  certificate: %[1]s/token.pem
  key: %[2]q
  generate_if_missing: true
  refresh_secret_file: %[1]s/refresh.secret
  key_timeout: 300ms
  key_retries: 1
users:
  alice: {password: %[3]q}
acl:
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
`, dir, ref, alicePW)
	path := filepath.Join(dir, "auth_config.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestAWSKMSTokens: with the token key in KMS, tokens verify against the
// certificate; with KMS down token requests get 503 UNAVAILABLE without
// detail, the signer error is counted and /readyz names the signer; once KMS
// is back /readyz recovers (by its probe) and tokens are issued again.
func TestAWSKMSTokens(t *testing.T) {
	kms := kmstest.Start(t)
	tests := []struct {
		name     string
		down, up func()
	}{
		{name: "KMS stopped", down: kms.Stop, up: kms.Restart},
		{name: "KMS not answering", down: func() { kms.Hang(true) }, up: func() { kms.Hang(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testutil.NewClock(time.Now())
			s := kmsServer(t, kms.Ref(kms.CreateKey(t, "ECC_NIST_P256")), WithClock(clock.Now))
			cert := s.state.Load().signer.Certificates()[0]
			const query = "service=registry&scope=repository:alice/app:pull,push"

			r := get(s, query, "alice", "alicepw")
			if r.status != 200 {
				t.Fatalf("token request: %d %s", r.status, r.raw)
			}
			if _, err := jwt.Parse(r.body.Token, func(*jwt.Token) (any, error) { return cert.PublicKey, nil },
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(clock.Now)); err != nil {
				t.Fatalf("token does not verify against the certificate: %v", err)
			}

			tt.down()
			done := make(chan result, 1)
			go func() { done <- get(s, query, "alice", "alicepw") }()
			select {
			case r = <-done:
			case <-time.After(10 * (2*300*time.Millisecond + 50*time.Millisecond)):
				t.Fatal("token request hangs with KMS down")
			}
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
				t.Fatalf("token request with KMS down: %d %v %s", r.status, r.header, r.raw)
			}
			checkErrorBody(t, &http.Response{Header: r.header}, []byte(r.raw), CodeUnavailable)
			for _, secret := range []string{"awskms", "arn:", "127.0.0.1", "refused", "deadline", "KMS"} {
				if strings.Contains(r.raw, secret) {
					t.Errorf("503 body %s reveals %q", r.raw, secret)
				}
			}
			m := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if !strings.Contains(m.raw, `gatehouse_signer_errors_total{key="awskms"} 1`) {
				t.Errorf("metrics lack the signer error:\n%s", grepLines(m.raw, "signer"))
			}
			ready := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if ready.status != http.StatusServiceUnavailable || !strings.Contains(ready.raw, `"signer"`) {
				t.Fatalf("readyz with KMS down: %d %s", ready.status, ready.raw)
			}

			tt.up()
			clock.Add(5 * time.Second) // the probe interval
			if ready := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil)); ready.status != 200 {
				t.Fatalf("readyz after KMS is back: %d %s", ready.status, ready.raw)
			}
			if r := get(s, query, "alice", "alicepw"); r.status != 200 {
				t.Fatalf("token request after KMS is back: %d %s", r.status, r.raw)
			}
		})
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestAWSKMSCachesKeepWorking: with the key in KMS, a repeated request is
// still answered from the grant cache and a new scope from the credential
// cache, and every answer is a new token that KMS signed.
func TestAWSKMSCachesKeepWorking(t *testing.T) {
	kms := kmstest.Start(t)
	s := kmsServer(t, kms.Ref(kms.CreateKey(t, "ECC_NIST_P256")))
	signsBefore := kms.Calls("Sign")
	tokens := map[string]bool{}
	for _, query := range []string{
		"service=registry&scope=repository:alice/app:pull", // both caches miss
		"service=registry&scope=repository:alice/app:pull", // the grant cache
		"service=registry&scope=repository:alice/web:pull", // the credential cache
	} {
		r := get(s, query, "alice", "alicepw")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", query, r.status, r.raw)
		}
		tokens[r.body.Token] = true
	}
	if len(tokens) != 3 {
		t.Errorf("%d distinct tokens for 3 requests, want 3 (a cached grant is signed anew)", len(tokens))
	}
	if got := kms.Calls("Sign") - signsBefore; got != 3 {
		t.Errorf("KMS signed %d times, want 3: one per token", got)
	}
	for series, want := range map[string]string{
		"gatehouse_grant_cache_hits_total":                         "1",
		`gatehouse_credential_cache_requests_total{result="hit"}`:  "1",
		`gatehouse_credential_cache_requests_total{result="miss"}`: "1",
	} {
		if got := metric(t, s, series); got != want {
			t.Errorf("%s = %q, want %q", series, got, want)
		}
	}
}

// TestAWSKMSReloadKeepsServingWhenTheNewKeyIsDown: a reload whose key
// service does not answer fails, naming the key's line, and the
// configuration in force keeps signing.
func TestAWSKMSReloadKeepsServingWhenTheNewKeyIsDown(t *testing.T) {
	a, b := kmstest.Start(t), kmstest.Start(t)
	refA, refB := a.Ref(a.CreateKey(t, "ECC_NIST_P256")), b.Ref(b.CreateKey(t, "ECC_NIST_P256"))
	s := kmsServer(t, refA)
	const query = "service=registry&scope=repository:alice/app:pull"
	b.Stop()

	old := s.Config()
	yml, err := os.ReadFile(old.File())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(old.File(), []byte(strings.Replace(string(yml), strconv.Quote(refA), strconv.Quote(refB), 1)))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Reload(cfg)
	if err == nil || !strings.Contains(err.Error(), "token.key") || !strings.Contains(err.Error(), "getting the public key") {
		t.Fatalf("reload to a key whose service is down: %v; want an error at token.key naming the key", err)
	}
	if got := metric(t, s, `gatehouse_config_reloads_total{result="failure"}`); got != "1" {
		t.Errorf("failed reloads = %q, want 1", got)
	}
	if r := get(s, query, "alice", "alicepw"); r.status != 200 {
		t.Fatalf("after the failed reload: %d %s", r.status, r.raw)
	}
	if s.state.Load().signer.KeyKind() != "awskms" || s.Config() != old {
		t.Error("the configuration in force was replaced")
	}
}

// TestAWSKMSRefreshTokens: with the key in KMS, refresh tokens (keyed by
// refresh_secret_file, not by the key) are issued and redeemed, and the
// access token a refresh token brings is signed by KMS; a refresh token
// survives a reload that swaps the signing key for another KMS key.
func TestAWSKMSRefreshTokens(t *testing.T) {
	kms := kmstest.Start(t)
	refA, refB := kms.Ref(kms.CreateKey(t, "ECC_NIST_P256")), kms.Ref(kms.CreateKey(t, "ECC_NIST_P384"))
	s := kmsServer(t, refA)
	r := post(s, form("grant_type", "password", "service", "registry", "client_id", "docker", "username", "alice", "password", "alicepw",
		"access_type", "offline", "scope", "repository:alice/app:pull"))
	if r.status != 200 || r.body.RefreshToken == "" {
		t.Fatalf("password grant: %d %s", r.status, r.raw)
	}

	// Swap the key: a new certificate for key B, and a reload.
	old := s.Config()
	yml, err := os.ReadFile(old.File())
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(yml), strconv.Quote(refA), strconv.Quote(refB), 1)
	text = strings.Replace(text, "/token.pem", "/token-b.pem", 1)
	cfg, err := config.Parse(old.File(), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	signsBefore := kms.Calls("Sign")
	r2 := post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "docker", "refresh_token", r.body.RefreshToken,
		"scope", "repository:alice/app:pull"))
	if r2.status != 200 {
		t.Fatalf("refresh grant after the key swap: %d %s", r2.status, r2.raw)
	}
	if kms.Calls("Sign") != signsBefore+1 {
		t.Errorf("KMS signed %d times for the refresh grant, want 1", kms.Calls("Sign")-signsBefore)
	}
	cert := s.state.Load().signer.Certificates()[0]
	if _, err := jwt.Parse(r2.body.AccessToken, func(*jwt.Token) (any, error) { return cert.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES384"})); err != nil {
		t.Fatalf("the refreshed access token does not verify with key B's certificate: %v", err)
	}
}
