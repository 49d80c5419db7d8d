package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// opsConfig writes a configuration for a server on port; extra is appended
// to the acl.
func opsConfig(t *testing.T, dir string, port int, extra string) string {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("alicepw"), bcrypt.MinCost)
	return fmt.Sprintf(`server: {addr: "127.0.0.1:%d"}
log: {level: info, format: json}
token:
  issuer: test
  expiration: 900
  certificate: %[2]s/token.pem
  key: %[2]s/token.key
  generate_if_missing: true
users:
  alice: {password: %[3]q}
htpasswd_auth: {path: %[2]s/htpasswd}
acl:
  - match: {account: alice, name: "alice/*"}
    actions: ["*"]
%[4]s`, port, dir, hash, extra)
}

// writeOpsConfig writes cfg (an opsConfig, changed or not) to
// dir/auth_config.yml, next to the empty dir/htpasswd it names, and
// returns the file's path.
func writeOpsConfig(t *testing.T, dir, cfg string) string {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "htpasswd"), nil, 0o600)
	path := filepath.Join(dir, "auth_config.yml")
	os.WriteFile(path, []byte(cfg), 0o600)
	return path
}

// startGatehouse runs bin (gatehouseBinary) with args, its log in the
// returned buffer, and stops it with SIGTERM, waiting for it to exit, when
// the test ends.
func startGatehouse(t *testing.T, bin string, args ...string) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logs := &testutil.SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	return cmd, logs
}

func TestValidateAndCheckCommands(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "htpasswd"), nil, 0o600)
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte(opsConfig(t, dir, 1, "  - match: {name: \"public/*\"}\n    actions: [pull]\n    comment: public\n")), 0o600)
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte(opsConfig(t, dir, 1, "  - match: {acount: x}\n    actions: [pull]\n  - match: {ip: 300.1.1.1}\n    actions: [pull]\n")), 0o600)
	deep := filepath.Join(dir, "deep.yml")
	os.WriteFile(deep, []byte(opsConfig(t, dir, 1, "  - match: {name: \"shared/**\"}\n    actions: [pull]\n")), 0o600)
	broken := filepath.Join(dir, "broken.yml")
	os.WriteFile(broken, []byte(strings.Replace(opsConfig(t, dir, 1, ""), "/htpasswd", "/absent", 1)), 0o600)

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{"validate good", []string{"validate", good}, 0, []string{"good.yml: ok"}, nil},
		{"validate notes a ** segment", []string{"validate", deep}, 0, []string{"deep.yml: ok"},
			[]string{`deep.yml: notice: acl[1].match.name: glob "shared/**" has a "**" path segment`}},
		{"validate reports every problem with its line", []string{"validate", bad}, 1, nil,
			[]string{"bad.yml:15: acl[1].match.acount: unknown key", "bad.yml:17: acl[2].match.ip"}},
		{"validate reads referenced files", []string{"validate", broken}, 1, nil, []string{"broken.yml:11: htpasswd_auth.path", "absent"}},
		{"validate without file", []string{"validate"}, 2, nil, []string{"exactly one"}},
		{"check", []string{"check", good, "--account", "alice", "repository:alice/app:pull,push", "repository:bob/app:pull", "--service", "registry"}, 0,
			[]string{"repository:alice/app:pull,push: pull,push (rule 0)", "repository:bob/app:pull: nothing (no rule matched)"}, nil},
		{"check anonymous with comment", []string{"check", good, "repository:public/x:pull,push"}, 0,
			[]string{`repository:public/x:pull,push: pull (rule 1 "public")`}, nil},
		{"check without scope", []string{"check", good, "--account", "alice"}, 2, nil, []string{"at least one scope"}},
		{"check bad scope", []string{"check", good, "nonsense"}, 2, nil, []string{"invalid scope"}},
		{"check bad label", []string{"check", good, "--label", "novalue", "repository:a:pull"}, 2, nil, []string{"KEY=VALUE"}},
		{"check bad config", []string{"check", bad, "repository:a:pull"}, 1, nil, []string{"unknown key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, nil, &out, &errb); code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out.String(), errb.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			if tc.wantErr == nil && strings.Contains(errb.String(), "notice") {
				t.Errorf("stderr has a notice:\n%s", errb.String())
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// TestReloadUnderLoad runs the real binary under continuous load and
// reloads it 20 times (SIGHUP, file edits, a Kubernetes-style symlink swap,
// and rejected configurations in between): not one request may fail, and
// every reload must take effect.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	bin := gatehouseBinary(t)
	os.WriteFile(filepath.Join(dir, "htpasswd"), nil, 0o600)
	port := freePort(t)
	// The configuration lives behind a symlink, as a ConfigMap mount does.
	cfgLink := filepath.Join(dir, "auth_config.yml")
	writeVersion := func(n int, valid bool) {
		extra := fmt.Sprintf("  - match: {name: \"v%d/*\"}\n    actions: [pull]\n    comment: version %d\n", n, n)
		if !valid {
			extra = "  - match: {name: \"[\"}\n    actions: [pull]\n"
		}
		target := filepath.Join(dir, fmt.Sprintf("config-%d.yml", n))
		os.WriteFile(target, []byte(opsConfig(t, dir, port, extra)), 0o600)
		tmp := cfgLink + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgLink); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion(0, true)
	cmd, logs := startGatehouse(t, bin, cfgLink)

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	tokenFor := func(scope string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/auth?service=registry&scope="+scope, nil)
		req.SetBasicAuth("alice", "alicepw")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := tokenFor("repository:alice/a:pull"); code != 200; code, _ = tokenFor("repository:alice/a:pull") {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, body := tokenFor("repository:alice/a:pull,push"); code == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, body))
				}
			}
		}()
	}

	metric := func(name string) string {
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, name+" ") {
				return strings.TrimPrefix(line, name+" ")
			}
		}
		return ""
	}
	// waitFor polls until version n's rule is in force.
	waitFor := func(n int, how string) {
		t.Helper()
		scope := fmt.Sprintf("repository:v%d/x:pull", n)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			if _, body := tokenFor(scope); strings.Contains(body, `"token"`) && grantedPull(body) {
				return
			}
		}
		t.Fatalf("reload %d (%s) did not take effect:\n%s", n, how, logs.String())
	}
	for n := 1; n <= 20; n++ {
		how := "SIGHUP"
		switch {
		case n%5 == 0:
			how = "file watch"
			writeVersion(n, true)
		default:
			writeVersion(n, true)
			cmd.Process.Signal(syscall.SIGHUP)
		}
		waitFor(n, how)
		if n%7 == 0 {
			// A broken configuration in between is rejected and changes
			// nothing. Wait for the rejection before the good version is
			// written back, however slow the machine (or -race) is.
			failures := func() int {
				got, _ := strconv.Atoi(metric(`gatehouse_config_reloads_total{result="failure"}`))
				return got
			}
			before := failures()
			writeVersion(100+n, false)
			cmd.Process.Signal(syscall.SIGHUP)
			for deadline := time.Now().Add(10 * time.Second); failures() == before; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the broken version %d was not rejected within 10 s:\n%s", 100+n, logs.String())
				}
			}
			if code, _ := tokenFor("repository:alice/a:pull"); code != 200 {
				t.Fatalf("after a rejected reload: %d", code)
			}
			writeVersion(n, true)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstFailure.Load())
	}
	// Each of the 20 versions was applied; re-applying a version after a
	// rejected one reloads again, which the file watch may also notice.
	if got, _ := strconv.Atoi(metric(`gatehouse_config_reloads_total{result="success"}`)); got < 20 {
		t.Errorf("successful reloads = %d, want at least 20", got)
	}
	// Two broken versions; the file watch may notice one before SIGHUP does.
	if got, _ := strconv.Atoi(metric(`gatehouse_config_reloads_total{result="failure"}`)); got < 2 {
		t.Errorf("failed reloads = %d, want at least 2\n%s", got, logs.String())
	}
	// Audit lines, written straight to the log by the JSON encoder while
	// slog wrote the reload lines to the same writer: every line whole and
	// valid JSON, the audit lines with their fields.
	time.Sleep(50 * time.Millisecond) // past the log writer's batch delay
	audits := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON (%v): %q", err, line)
		}
		if rec["msg"] != "token issued" {
			continue
		}
		audits++
		if rec["level"] != "INFO" || rec["account"] != "alice" || rec["authenticator"] != "static" || rec["client_ip"] != "127.0.0.1" {
			t.Fatalf("audit line %q", line)
		}
		if _, ok := rec["decisions"].([]any); !ok {
			t.Fatalf("audit line without decisions: %q", line)
		}
	}
	if audits < int(ok.Load()) {
		t.Errorf("%d audit lines for %d tokens issued under load", audits, ok.Load())
	}
	t.Logf("%d requests, none failed, across 20 reloads", ok.Load())
}

func grantedPull(body string) bool {
	// The token's access claim is in its second segment.
	tok := body[strings.Index(body, `"token":"`)+9:]
	tok = tok[:strings.IndexByte(tok, '"')]
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	claims, err := base64URL(parts[1])
	return err == nil && strings.Contains(claims, `"actions":["pull"]`)
}

func base64URL(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}
