package extprog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Script writes an executable shell script with body into dir and returns
// its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		body       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantErr    error // errors.Is; nil: no error
		errText    string
		check      func(t *testing.T, r Result)
	}{
		{name: "exit 0 echoes stdin", body: "cat\n", stdin: "alice s3cret", wantStdout: "alice s3cret"},
		{name: "exit status kept", body: "exit 7\n", wantCode: 7},
		{name: "args passed without a shell", body: `printf '%s|' "$@"` + "\n", args: []string{"a b", "$HOME", ";rm -rf /"}, wantStdout: "a b|$HOME|;rm -rf /|"},
		{name: "stdout over the cap fails", body: "head -c 200000 /dev/zero\n", errText: "more than 65536 bytes to stdout"},
		{name: "stderr capped and kept", body: "head -c 200000 /dev/zero >&2\necho ok\n", wantStdout: "ok\n", check: func(t *testing.T, r Result) {
			if len(r.Stderr) != OutputLimit || !r.StderrTruncated {
				t.Errorf("stderr: %d bytes, truncated %v; want %d, true", len(r.Stderr), r.StderrTruncated, OutputLimit)
			}
		}},
		{name: "killed by a signal is an error", body: "kill -9 $$\n", errText: "signal: killed"},
		{name: "timeout", body: "sleep 30\n", wantErr: ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := script(t, dir, strings.ReplaceAll(tc.name, " ", "_"), tc.body)
			timeout := 5 * time.Second
			if tc.wantErr == ErrTimeout {
				timeout = 300 * time.Millisecond
			}
			r, err := New(Config{Command: p, Args: tc.args, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Run(context.Background(), []byte(tc.stdin))
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			case tc.errText != "":
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want it to say %q", err, tc.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if res.Code != tc.wantCode || string(res.Stdout) != tc.wantStdout {
				t.Errorf("got code %d stdout %q, want %d %q", res.Code, res.Stdout, tc.wantCode, tc.wantStdout)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

// gone reports whether pid no longer runs (a zombie left for a reaper that
// never comes counts as gone: it runs nothing).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

// TestTimeoutKillsProcessGroup: a program that started children and hangs
// is killed with its children when the timeout passes, including children
// that closed their output (so nothing else would notice them).
func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	p := script(t, dir, "hang", `sleep 60 >/dev/null 2>&1 &
echo $! > `+pids+`.tmp
sleep 60 &
echo $! >> `+pids+`.tmp
mv `+pids+`.tmp `+pids+`
wait
`)
	r, err := New(Config{Command: p, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	data, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		deadline := time.Now().Add(5 * time.Second)
		for !gone(pid) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("child %d of the timed-out program still runs", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestConcurrencyBound: with max_concurrent 2, never more than two programs
// run at once, and a run that finds no slot within the queue wait fails
// with ErrBusy instead of starting a third.
func TestConcurrencyBound(t *testing.T) {
	dir := t.TempDir()
	running := filepath.Join(dir, "running")
	if err := os.Mkdir(running, 0o755); err != nil {
		t.Fatal(err)
	}
	// Each run registers itself, records how many are registered, then
	// waits for the file "go" before it leaves.
	p := script(t, dir, "slot", `touch `+running+`/$$
ls `+running+` | wc -l >> `+dir+`/counts
while [ ! -e `+dir+`/go ]; do sleep 0.02; done
rm `+running+`/$$
`)
	r, err := New(Config{Command: p, Timeout: 10 * time.Second, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.SetQueueWait(200 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() {
			_, err := r.Run(context.Background(), nil)
			errs <- err
		})
	}
	// The three that find no slot give up after the queue wait.
	busy := 0
	for range 3 {
		if err := <-errs; errors.Is(err, ErrBusy) {
			busy++
		} else {
			t.Errorf("err = %v, want ErrBusy", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a run holding a slot failed: %v", err)
		}
	}
	counts, _ := os.ReadFile(filepath.Join(dir, "counts"))
	for _, c := range strings.Fields(string(counts)) {
		if n, _ := strconv.Atoi(c); n > 2 {
			t.Errorf("%d programs ran at once, max_concurrent is 2", n)
		}
	}
	if len(strings.Fields(string(counts))) != 2 || busy != 3 {
		t.Errorf("%d programs ran and %d were refused, want 2 and 3", len(strings.Fields(string(counts))), busy)
	}
}

func TestNewChecksCommand(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		key  string
		want string
	}{
		{name: "missing", cfg: Config{Command: filepath.Join(dir, "nope")}, key: "command", want: "not found"},
		{name: "not in PATH", cfg: Config{Command: "gatehouse-no-such-program"}, key: "command", want: "not found"},
		{name: "not executable", cfg: Config{Command: notExec}, key: "command", want: "not executable"},
		{name: "a directory", cfg: Config{Command: dir}, key: "command", want: "is a directory"},
		{name: "empty", cfg: Config{}, key: "command", want: "is required"},
		{name: "timeout without unit", cfg: Config{Command: "sh", Timeout: 5}, key: "timeout", want: "at least"},
		{name: "negative max_concurrent", cfg: Config{Command: "sh", MaxConcurrent: -1}, key: "max_concurrent", want: "positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			var ce *cfgerr.Error
			if !errors.As(err, &ce) || cfgerr.Key(ce.Path) != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one at %s saying %q", err, tc.key, tc.want)
			}
		})
	}
	r, err := New(Config{Command: "sh"})
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(r.Path()) || r.Timeout() != DefaultTimeout || cap(r.slots) != DefaultMaxConcurrent() {
		t.Errorf("defaults: path %q timeout %s slots %d", r.Path(), r.Timeout(), cap(r.slots))
	}
}
