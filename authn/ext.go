package authn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"unicode"

	"github.com/gatehouse/gatehouse/internal/extprog"
)

// ExtConfig is the `ext_auth:` section: an external program decides, with
// docker_auth's protocol. docker_auth's keys (command, args) plus timeout
// and max_concurrent:
//
//	ext_auth:
//	  command: /usr/local/bin/registry-auth   # absolute, or found in PATH at load
//	  args: ["--realm", "registry"]            # passed as they are, no shell
//	  timeout: 5s                              # default 5s; then the process group is killed → 503
//	  max_concurrent: 8                        # default GOMAXPROCS (at least 4)
//
// The program reads "account password" on stdin (no newline) and exits 0
// to accept, optionally printing {"labels": {"key": ["value", ...]}}; 1
// for a wrong password; 2 when it does not know the account (the next
// authenticator is asked); anything else is a failure (503). See
// docs/ext.md.
type ExtConfig struct {
	extprog.Config `yaml:",inline"`
}

// Validate checks the section without I/O; problems are placed at their
// keys relative to the section. NewExt resolves the command.
func (c *ExtConfig) Validate() error { return c.Config.Validate() }

// Exit statuses of an ext_auth program (docker_auth's).
const (
	ExtAllowed = 0 // the password is right
	ExtDenied  = 1 // the password is wrong
	ExtNoMatch = 2 // the program does not know the account
)

// Ext authenticates with an external program, run once per password check
// that the credential cache does not answer.
type Ext struct {
	run    *extprog.Runner
	logger *slog.Logger
}

var _ Authenticator = (*Ext)(nil)

// ExtOption configures NewExt.
type ExtOption func(*Ext)

// WithExtLogger sets where the program's stderr and failures are logged;
// the default discards.
func WithExtLogger(l *slog.Logger) ExtOption {
	return func(e *Ext) {
		if l != nil {
			e.logger = l
		}
	}
}

// NewExt validates cfg and resolves its command: a missing or
// non-executable program is an error placed at "command".
func NewExt(cfg ExtConfig, opts ...ExtOption) (*Ext, error) {
	r, err := extprog.New(cfg.Config)
	if err != nil {
		return nil, err
	}
	e := &Ext{run: r, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	e.logger = e.logger.With("authenticator", "ext_auth", "command", r.Path())
	return e, nil
}

// Runner is the program runner (tests adjust its queue wait).
func (e *Ext) Runner() *extprog.Runner { return e.run }

// Name returns "ext_auth".
func (e *Ext) Name() string { return "ext_auth" }

// Authenticate runs the program with "account password" on its stdin. An
// account the line protocol cannot carry (empty, or with white space or a
// control character) or a password with a line break or NUL, which a
// line-reading program would cut short, is not given to the program:
// ErrNoMatch, so only another authenticator can accept it.
func (e *Ext) Authenticate(ctx context.Context, account, password string) (Account, error) {
	if !extRepresentable(account, password) {
		return Account{}, ErrNoMatch
	}
	res, err := e.run.Run(ctx, []byte(account+" "+password))
	e.logStderr(res, account, password)
	if err != nil {
		return Account{}, fmt.Errorf("%w: ext_auth: account %q: %w", ErrUnavailable, account, err)
	}
	switch res.Code {
	case ExtAllowed:
		labels, err := extLabels(res.Stdout)
		if err != nil {
			return Account{}, fmt.Errorf("%w: ext_auth: account %q: %w", ErrUnavailable, account, err)
		}
		return Account{Name: account, Labels: labels, NoRefresh: true}, nil
	case ExtDenied:
		return Account{}, ErrWrongPassword
	case ExtNoMatch:
		return Account{}, ErrNoMatch
	}
	return Account{}, fmt.Errorf("%w: ext_auth: account %q: %s exited with status %d", ErrUnavailable, account, e.run.Path(), res.Code)
}

// Lookup returns ErrNoMatch: the program can only check a password, so an
// ext_auth account cannot be found again without one. Authenticate marks
// its accounts NoRefresh, so no refresh token is issued for them and Lookup
// is reached only by a token from elsewhere, which is refused.
func (e *Ext) Lookup(context.Context, string) (Account, error) { return Account{}, ErrNoMatch }

// extRepresentable reports whether "account password" reaches the program
// as one line whose first word is account.
func extRepresentable(account, password string) bool {
	if account == "" {
		return false
	}
	for _, r := range account {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return !strings.ContainsAny(password, "\n\r\x00")
}

// extLabels decodes the program's stdout: nothing (or white space) for no
// labels, else docker_auth's {"labels": {"key": ["value", ...]}}; other
// keys are ignored, as docker_auth does.
func extLabels(stdout []byte) (Labels, error) {
	if len(bytes.TrimSpace(stdout)) == 0 {
		return nil, nil
	}
	var resp struct {
		Labels Labels `json:"labels"`
	}
	if err := json.Unmarshal(stdout, &resp); err != nil {
		return nil, fmt.Errorf(`stdout is not {"labels": {"key": ["value"]}}: %w`, err)
	}
	return resp.Labels, nil
}

// logStderr logs what the program wrote to stderr, with the password
// blotted out should the program have echoed it.
func (e *Ext) logStderr(res extprog.Result, account, password string) {
	if len(res.Stderr) == 0 {
		return
	}
	msg := string(res.Stderr)
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "***")
	}
	e.logger.Warn("ext_auth program wrote to stderr", "account", account, "exit", res.Code,
		"stderr", strings.TrimSpace(msg), "truncated", res.StderrTruncated)
}
