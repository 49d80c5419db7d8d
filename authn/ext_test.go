package authn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/extprog"
)

// extScript writes an executable shell script into a temporary directory
// and returns an ext_auth authenticator running it, logging into log.
func extScript(t *testing.T, body string, timeout time.Duration, log *bytes.Buffer) *Ext {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := NewExt(ExtConfig{extprog.Config{Command: p, Args: []string{"--flag"}, Timeout: timeout}},
		WithExtLogger(slog.New(slog.NewTextHandler(log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestExtAuthenticate(t *testing.T) {
	// Every script reads the line first, as docker_auth's programs do.
	tests := []struct {
		name       string
		body       string
		account    string
		password   string
		timeout    time.Duration
		want       error // errors.Is; nil: accepted
		wantLabels Labels
		wantLog    string
		notInLog   string
	}{
		{name: "exit 0 accepts", body: "read u p\n[ \"$u $p\" = 'alice s3cret' ] && exit 0\nexit 1\n", account: "alice", password: "s3cret"},
		{name: "password with spaces reaches the program whole", body: "read u p\n[ \"$p\" = 'a b  c' ] && exit 0\nexit 1\n", account: "alice", password: "a b  c"},
		{name: "exit 1 is a wrong password", body: "read u p\nexit 1\n", account: "alice", password: "pw-q7", want: ErrWrongPassword},
		{name: "exit 2 is no match", body: "read u p\nexit 2\n", account: "alice", password: "pw-q7", want: ErrNoMatch},
		{name: "exit 3 is unavailable", body: "read u p\nexit 3\n", account: "alice", password: "pw-q7", want: ErrUnavailable},
		{name: "timeout is unavailable", body: "read u p\nsleep 30\n", account: "alice", password: "pw-q7", timeout: 300 * time.Millisecond, want: ErrUnavailable},
		{name: "labels", body: "read u p\necho '{\"labels\": {\"team\": [\"blue\", \"green\"]}, \"other\": 1}'\n", account: "alice", password: "pw-q7",
			wantLabels: Labels{"team": {"blue", "green"}}},
		{name: "blank output is no labels", body: "read u p\necho\n", account: "alice", password: "pw-q7"},
		{name: "bad JSON is unavailable", body: "read u p\necho '{\"labels\": {\"team\": \"blue\"}}'\n", account: "alice", password: "pw-q7", want: ErrUnavailable},
		{name: "not JSON is unavailable", body: "read u p\necho yes\n", account: "alice", password: "pw-q7", want: ErrUnavailable},
		{name: "huge output is unavailable", body: "read u p\nhead -c 1000000 /dev/zero\n", account: "alice", password: "pw-q7", want: ErrUnavailable},
		{name: "stderr logged with the password blotted out", body: "read u p\necho \"checking $u with $p\" >&2\nexit 1\n", account: "alice", password: "hunter2",
			want: ErrWrongPassword, wantLog: "checking alice with ***", notInLog: "hunter2"},
		{name: "password not in argv or environment", body: `read u p
for f in /proc/$$/cmdline /proc/$$/environ; do
  if tr '\0' '\n' < $f | grep -qF -- "$p"; then echo "password in $f" >&2; exit 3; fi
done
[ "$*" = "--flag" ] || exit 3
exit 0
`, account: "alice", password: "pw-7f3a91"},
		{name: "anonymous never reaches the program", body: "exit 0\n", account: "", password: "", want: ErrNoMatch},
		{name: "account with a space never reaches the program", body: "exit 0\n", account: "alice pw", password: "", want: ErrNoMatch},
		{name: "password with a newline never reaches the program", body: "exit 0\n", account: "alice", password: "right\nanything", want: ErrNoMatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			e := extScript(t, tc.body, timeout, &log)
			acct, err := e.Authenticate(context.Background(), tc.account, tc.password)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v; log:\n%s", err, tc.want, log.String())
			}
			if err == nil {
				if acct.Name != tc.account || !reflect.DeepEqual(acct.Labels, tc.wantLabels) || !acct.NoRefresh {
					t.Errorf("account %+v, want name %q labels %v and NoRefresh", acct, tc.account, tc.wantLabels)
				}
			}
			if tc.wantLog != "" && !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log %q does not say %q", log.String(), tc.wantLog)
			}
			if tc.notInLog != "" && strings.Contains(log.String(), tc.notInLog) {
				t.Errorf("log %q contains %q", log.String(), tc.notInLog)
			}
			if strings.Contains(err2s(err), tc.password) && tc.password != "" {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestExtDockerAuthExample runs docker_auth's own example program,
// examples/ext_auth.sh copied verbatim into testdata: it works unchanged.
func TestExtDockerAuthExample(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "ext_auth.sh"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ext_auth.sh") // executable whatever the checkout did with modes
	if err := os.WriteFile(p, src, 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := NewExt(ExtConfig{extprog.Config{Command: p}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		account, password string
		want              error
		labels            Labels
	}{
		{"user", "pass", nil, nil},
		{"bofh", "LART", nil, Labels{"level": {"max"}, "groups": {"VIP", "ATeam"}}},
		{"user", "wrong", ErrWrongPassword, nil},
		{"bofh", "pass", ErrWrongPassword, nil},
		{"nobody", "pass", ErrWrongPassword, nil},
	}
	for _, tc := range tests {
		t.Run(tc.account+"/"+tc.password, func(t *testing.T) {
			acct, err := e.Authenticate(context.Background(), tc.account, tc.password)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !reflect.DeepEqual(acct.Labels, tc.labels) {
				t.Errorf("labels %v, want %v", acct.Labels, tc.labels)
			}
		})
	}
	if _, err := e.Lookup(context.Background(), "user"); !errors.Is(err, ErrNoMatch) {
		t.Errorf("Lookup: %v, want ErrNoMatch", err)
	}
}
