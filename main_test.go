package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

func TestRunCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string // fragment of stdout
		wantErr  string // fragment of stderr
	}{
		{"no arguments", nil, "", 2, "", "usage"},
		{"unknown flag", []string{"-x"}, "", 2, "", "unknown flag"},
		{"too many arguments", []string{"a", "b"}, "", 2, "", "unknown command"},
		{"serve without config", []string{"serve"}, "", 2, "", "exactly one"},
		{"serve with two configs", []string{"serve", "a", "b"}, "", 2, "", "exactly one"},
		{"version", []string{"version"}, "", 0, "gatehouse ", ""},
		{"help", []string{"help"}, "", 0, "usage", ""},
		{"hash", []string{"hash", "-cost", "4"}, "s3cret\n", 0, "$2a$04$", ""},
		{"hash bad cost", []string{"hash", "-cost", "99"}, "x\n", 2, "", "-cost"},
		{"hash unknown flag", []string{"hash", "-z"}, "x\n", 2, "", "flag provided but not defined"},
		{"hash argument", []string{"hash", "pw"}, "", 2, "", "stdin"},
		{"hash empty", []string{"hash"}, "\n", 1, "", "empty password"},
		{"missing config file", []string{filepath.Join(t.TempDir(), "nope.yml")}, "", 1, "", "nope.yml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, strings.NewReader(tc.stdin), &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) || !strings.Contains(errb.String(), tc.wantErr) {
				t.Fatalf("stdout %q (want %q), stderr %q (want %q)", out.String(), tc.wantOut, errb.String(), tc.wantErr)
			}
		})
	}
	t.Run("hash output verifies", func(t *testing.T) {
		var out bytes.Buffer
		if code := run([]string{"hash", "-cost", "4"}, strings.NewReader("pa ss\r\n"), &out, &bytes.Buffer{}); code != 0 {
			t.Fatal(code)
		}
		if bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out.String())), []byte("pa ss")) != nil {
			t.Fatalf("hash %q does not verify", out.String())
		}
	})
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "auth_config.yml")
	os.WriteFile(p, []byte("server:\n  adr: x\ntoken:\n  issuer: i\n  expiration: 5\nacl: []\n"), 0o600)
	var errb bytes.Buffer
	if code := run([]string{p}, nil, &bytes.Buffer{}, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{p + ":2: server.adr: unknown key", p + ":5: token.expiration"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

// TestServeAndSIGTERM runs the real binary: it serves tokens, and on SIGTERM
// it finishes a request that was in flight, then exits 0 with its listener
// closed.
func TestServeAndSIGTERM(t *testing.T) {
	testutil.SkipIfShort(t, "builds the binary")
	dir := t.TempDir()
	bin := gatehouseBinary(t)
	port := freePort(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("alicepw"), bcrypt.MinCost)
	// About a second a check; the race detector slows bcrypt several times.
	slowCost := 14
	if raceEnabled {
		slowCost = 11
	}
	slowHash, _ := bcrypt.GenerateFromPassword([]byte("slowpw"), slowCost)
	cfg := fmt.Sprintf(`server: {addr: "127.0.0.1:%d"}
token:
  issuer: test
  expiration: 900
  certificate: %s/token.pem
  key: %s/token.key
  generate_if_missing: true
users:
  alice: {password: %q}
  slow: {password: %q}
acl:
  - match: {name: "alice/*"}
    actions: ["*"]
`, port, dir, dir, hash, slowHash)
	cfgPath := filepath.Join(dir, "auth_config.yml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)

	cmd := exec.Command(bin, "serve", cfgPath)
	var logs testutil.SyncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	url := fmt.Sprintf("http://127.0.0.1:%d/auth?service=registry&scope=repository:alice/app:pull", port)
	testutil.WaitForToken(t, url, "alice", "alicepw", &logs)

	// A request in flight when SIGTERM arrives: checking slow's password
	// (bcrypt cost 14, or 11 under the race detector) takes about a second.
	inflight := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth("slow", "slowpw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("in-flight request: %v", err)
		}
		inflight <- resp
	}()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if resp := <-inflight; resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("in-flight request not served: %v\n%s", resp, logs.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "generated") && !strings.Contains(logs.String(), "creat") {
		t.Errorf("the generated development key was not logged:\n%s", logs.String())
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("listener still open after exit")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// gatehouseBinary builds the command once per test run and returns its path.
func gatehouseBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gatehouse")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
