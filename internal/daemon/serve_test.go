package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/leakcheck"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// writeConfig writes a configuration whose server: section is server (a
// YAML flow mapping) and returns its path; the token key pair is generated
// in dir when serving.
func writeConfig(t *testing.T, dir, server string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alicepw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`server: %s
token:
  issuer: test
  expiration: 900
  certificate: %[2]s/token.pem
  key: %[2]s/token.key
  generate_if_missing: true
users:
  alice: {password: %[3]q}
acl:
  - match: {name: "alice/*"}
    actions: ["*"]
`, server, dir, hash)
	path := filepath.Join(dir, "auth_config.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// listenLocal holds a local TCP port open until the test ends.
func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// freeAddr returns a local address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l := listenLocal(t)
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestServeStopsWhenContextDone serves in this process: a token is
// issued, and when the context is done Serve drains, closes its listeners
// and returns 0.
func TestServeStopsWhenContextDone(t *testing.T) {
	dir := t.TempDir()
	addr, metrics := freeAddr(t), freeAddr(t)
	path := writeConfig(t, dir, fmt.Sprintf("{addr: %q, metrics_addr: %q}", addr, metrics))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- Serve(ctx, path, "v1.2.3-test", &logs) }()

	url := "http://" + addr + "/auth?service=registry&scope=repository:alice/app:pull"
	testutil.WaitForToken(t, url, "alice", "alicepw", &logs)
	mresp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil || mresp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %v %v", mresp, err)
	}
	mresp.Body.Close()

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Serve did not return after the context was done\n%s", logs.String())
	}
	for _, a := range []string{addr, metrics} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still open after Serve returned", a)
		}
	}
	for _, want := range []string{`version=v1.2.3-test`, "stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestServeFailures: what keeps Serve from serving makes it return 1 with
// the reason on stderr, without waiting for a signal, and with nothing left
// listening or running.
func TestServeFailures(t *testing.T) {
	busy := listenLocal(t).Addr().String()
	started := freeAddr(t) // listened on before the metrics listener fails
	tests := []struct {
		name    string
		server  string // the server: section; "" writes no file
		wantErr string
	}{
		{"missing file", "", "auth_config.yml"},
		{"address in use", fmt.Sprintf("{addr: %q}", busy), "cannot listen"},
		{"metrics address in use", fmt.Sprintf("{addr: %q, metrics_addr: %q}", started, busy), "cannot listen for metrics"},
		{"missing TLS key pair", fmt.Sprintf("{addr: %q, certificate: /nonexistent/c.pem, key: /nonexistent/c.key}", freeAddr(t)),
			"server.certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "auth_config.yml")
			if tc.server != "" {
				path = writeConfig(t, dir, tc.server)
			}
			snap := leakcheck.Take()
			var logs testutil.SyncBuffer
			done := make(chan int, 1)
			go func() { done <- Serve(context.Background(), path, "test", &logs) }()
			select {
			case code := <-done:
				if code != 1 {
					t.Fatalf("exit %d, want 1\n%s", code, logs.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("Serve did not return\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, logs.String())
			}
			if c, err := net.DialTimeout("tcp", started, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still open after Serve returned", started)
			}
			snap.Check(t, 0)
		})
	}
}
