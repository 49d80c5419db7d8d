// Package extprog runs the external programs of ext_auth and ext_authz
// without docker_auth's defects: the command is executed directly (no
// shell) with its configured arguments, the input goes only to its stdin,
// a timeout kills its whole process group, its output is capped, and the
// number of programs running at once is bounded.
package extprog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Defaults of the keys Config shares between ext_auth and ext_authz.
const (
	// DefaultTimeout bounds one run when timeout is unset.
	DefaultTimeout = 5 * time.Second
	// MinTimeout is the least timeout accepted: a bare number in YAML
	// decodes as nanoseconds, which is never what was meant.
	MinTimeout = 10 * time.Millisecond
	// DefaultQueueWait is how long a run waits for one of the
	// max_concurrent slots before it fails.
	DefaultQueueWait = time.Second
	// OutputLimit caps what is kept of stdout and of stderr.
	OutputLimit = 64 << 10
	// waitDelay is how long Wait waits for the pipes to close once the
	// program exited or was killed (children may still hold them).
	waitDelay = 250 * time.Millisecond
)

// DefaultMaxConcurrent is max_concurrent when unset: GOMAXPROCS, at least 4.
func DefaultMaxConcurrent() int { return max(runtime.GOMAXPROCS(0), 4) }

// Config is the part of the ext_auth and ext_authz sections that says
// which program runs and how:
//
//	command: /usr/local/bin/registry-auth   # absolute, or found in PATH at load
//	args: ["--flag", "value"]                # passed as they are, no shell
//	timeout: 5s                              # past it the process group is killed → 503
//	max_concurrent: 8                        # programs at once; more wait 1s, then 503
type Config struct {
	Command       string        `yaml:"command"`
	Args          []string      `yaml:"args"`
	Timeout       time.Duration `yaml:"timeout"`
	MaxConcurrent int           `yaml:"max_concurrent"`
}

// Validate checks the keys without looking at the file system; problems are
// placed at their keys relative to the section. New resolves the command.
func (c *Config) Validate() error {
	var errs []error
	if c.Command == "" {
		errs = append(errs, cfgerr.At(errors.New("is required: the program to run"), "command"))
	}
	if c.Timeout != 0 && c.Timeout < MinTimeout {
		errs = append(errs, cfgerr.At(fmt.Errorf("must be at least %s, got %s (write a unit, e.g. 5s)", MinTimeout, c.Timeout), "timeout"))
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, cfgerr.At(fmt.Errorf("must be positive (unset means %d)", DefaultMaxConcurrent()), "max_concurrent"))
	}
	return errors.Join(errs...)
}

// Files returns the command when it is a path (not a name looked up in
// PATH), so that replacing the program triggers a reload that checks it
// again.
func (c *Config) Files() []string {
	if !strings.Contains(c.Command, "/") {
		return nil
	}
	return []string{c.Command}
}

// Errors of Run that are not about the program's answer.
var (
	// ErrBusy means every max_concurrent slot stayed taken for the queue
	// wait.
	ErrBusy = errors.New("extprog: too many programs running")
	// ErrTimeout means the program did not finish within the timeout; its
	// process group was killed.
	ErrTimeout = errors.New("extprog: timed out")
)

// Runner runs one configured program. It is safe for concurrent use.
type Runner struct {
	path      string
	args      []string
	timeout   time.Duration
	queueWait time.Duration
	slots     chan struct{}
}

// New resolves cfg's command (in PATH when it has no slash) and checks that
// it is an executable regular file; the error is placed at "command".
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path, err := exec.LookPath(cfg.Command)
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("extprog: %w", unwrapExec(err)), "command")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("extprog: %w", err), "command")
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, cfgerr.At(fmt.Errorf("extprog: %s is not an executable file", path), "command")
	}
	n := cfg.MaxConcurrent
	if n == 0 {
		n = DefaultMaxConcurrent()
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Runner{path: path, args: cfg.Args, timeout: timeout, queueWait: DefaultQueueWait, slots: make(chan struct{}, n)}, nil
}

// unwrapExec turns LookPath's error into a plain sentence.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		if errors.Is(ee.Err, fs.ErrNotExist) || errors.Is(ee.Err, exec.ErrNotFound) {
			return fmt.Errorf("command %q not found", ee.Name)
		}
		if errors.Is(ee.Err, fs.ErrPermission) {
			return fmt.Errorf("command %q is not executable", ee.Name)
		}
		return fmt.Errorf("command %q: %w", ee.Name, ee.Err)
	}
	return err
}

// Path is the resolved command.
func (r *Runner) Path() string { return r.path }

// Timeout is how long one run may take.
func (r *Runner) Timeout() time.Duration { return r.timeout }

// SetQueueWait changes how long Run waits for a free slot (tests).
func (r *Runner) SetQueueWait(d time.Duration) { r.queueWait = d }

// Result is what a finished program said.
type Result struct {
	// Code is the exit status.
	Code int
	// Stdout is the standard output; Run fails rather than return a
	// truncated one.
	Stdout []byte
	// Stderr is the standard error, at most OutputLimit bytes.
	Stderr []byte
	// StderrTruncated tells that the program wrote more than OutputLimit
	// bytes to stderr.
	StderrTruncated bool
}

// Run starts the program with stdin as its standard input and returns how
// it exited. err is set when there is no exit status to give: no slot free
// within the queue wait (ErrBusy), the timeout or ctx over (ErrTimeout; the
// whole process group is killed), the program killed by a signal, more than
// OutputLimit bytes on stdout, or a failure to start. stdin is never put on
// the command line or in the environment.
func (r *Runner) Run(ctx context.Context, stdin []byte) (Result, error) {
	release, err := r.acquire(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.path, r.args...)
	cmd.Stdin = bytes.NewReader(stdin)
	stdout, stderr := &capped{limit: OutputLimit}, &capped{limit: OutputLimit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so that the children it started die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("extprog: starting %s: %w", r.path, err)
	}
	pgid := cmd.Process.Pid
	err = cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The program exited but something it started still holds its
		// output open: the group still exists (its pgid is not reused while
		// a member lives), so killing it kills only what it started.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	res := Result{Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), StderrTruncated: stderr.over}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%w after %s (process group killed)", ErrTimeout, r.timeout)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	case errors.As(err, &ee):
		return res, fmt.Errorf("extprog: %s: %s", r.path, ee.ProcessState)
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		return res, fmt.Errorf("extprog: %s: %w", r.path, err)
	}
	if stdout.over {
		return res, fmt.Errorf("extprog: %s wrote more than %d bytes to stdout", r.path, OutputLimit)
	}
	return res, nil
}

// acquire takes a slot, waiting at most the queue wait.
func (r *Runner) acquire(ctx context.Context) (func(), error) {
	select {
	case r.slots <- struct{}{}:
		return func() { <-r.slots }, nil
	default:
	}
	t := time.NewTimer(r.queueWait)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return func() { <-r.slots }, nil
	case <-t.C:
		return nil, fmt.Errorf("%w (max_concurrent %d, waited %s)", ErrBusy, cap(r.slots), r.queueWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}

// capped keeps the first limit bytes written to it and discards the rest,
// so that a program writing without end neither grows memory nor blocks on
// a full pipe.
type capped struct {
	buf   bytes.Buffer
	limit int
	over  bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room < len(p) {
		c.over = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}
