package acl

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse/internal/extprog"
)

// ExtConfig is the `ext_authz:` section: an external program decides the
// scopes no earlier ACL matched, with docker_auth's protocol. docker_auth's
// keys (command, args) plus timeout and max_concurrent:
//
//	ext_authz:
//	  command: /usr/local/bin/registry-authz  # absolute, or found in PATH at load
//	  args: ["--team-file", "/etc/teams"]     # passed as they are, no shell
//	  timeout: 5s                             # default 5s; then the process group is killed → 503
//	  max_concurrent: 8                       # default GOMAXPROCS (at least 4)
//
// The program reads one scope's request as JSON on stdin (ExtRequest) and
// exits 0 to grant every requested action, 1 to grant none; anything else
// is a failure (503). See docs/ext.md.
type ExtConfig struct {
	extprog.Config `yaml:",inline"`
}

// Validate checks the section without I/O; problems are placed at their
// keys relative to the section. NewExt resolves the command.
func (c *ExtConfig) Validate() error { return c.Config.Validate() }

// ExtRequest is what an ext_authz program reads: docker_auth's
// AuthRequestInfo as encoding/json writes it, so its programs read it
// unchanged. IP is "" when unknown; Labels is null without labels.
type ExtRequest struct {
	Account string
	Type    string
	Name    string
	Service string
	IP      string
	Actions []string
	Labels  map[string][]string
}

// Exit statuses of an ext_authz program (docker_auth's).
const (
	ExtAllowed = 0 // every requested action is granted
	ExtDenied  = 1 // none is
)

// Ext decides scopes with an external program, run once per scope asked.
type Ext struct {
	run    *extprog.Runner
	logger *slog.Logger
}

// NewExt validates cfg and resolves its command: a missing or
// non-executable program is an error placed at "command". logger (nil:
// discard) gets the program's stderr.
func NewExt(cfg ExtConfig, logger *slog.Logger) (*Ext, error) {
	r, err := extprog.New(cfg.Config)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Ext{run: r, logger: logger.With("authorizer", "ext_authz", "command", r.Path())}, nil
}

// Runner is the program runner (tests adjust its queue wait).
func (e *Ext) Runner() *extprog.Runner { return e.run }

// Decide runs the program for r. Exit 0 grants the requested actions, exit
// 1 none; both are a match, so no later authorizer is asked (docker_auth's
// ext_authz never says "no match"). Rule is the exit status. Any other
// outcome is an error.
func (e *Ext) Decide(ctx context.Context, r *Request) (Decision, error) {
	in := ExtRequest{Account: r.Account, Type: r.Type, Name: r.Name, Service: r.Service, Actions: r.Actions, Labels: r.Labels}
	if r.IP.IsValid() {
		in.IP = r.IP.Unmap().String()
	}
	body, err := json.Marshal(in)
	if err != nil {
		return Decision{Rule: -1}, fmt.Errorf("ext_authz: %w", err)
	}
	res, err := e.run.Run(ctx, body)
	if len(res.Stderr) > 0 {
		e.logger.Warn("ext_authz program wrote to stderr", "account", r.Account, "scope", r.Type+":"+r.Name,
			"exit", res.Code, "stderr", strings.TrimSpace(string(res.Stderr)), "truncated", res.StderrTruncated)
	}
	if err != nil {
		return Decision{Rule: -1}, fmt.Errorf("ext_authz: %w", err)
	}
	switch res.Code {
	case ExtAllowed:
		granted := slices.Compact(slices.Sorted(slices.Values(r.Actions)))
		if granted == nil {
			granted = []string{}
		}
		return Decision{Matched: true, Rule: ExtAllowed, Comment: "ext_authz: exit 0", Actions: granted}, nil
	case ExtDenied:
		return Decision{Matched: true, Rule: ExtDenied, Comment: "ext_authz: exit 1", Actions: []string{}}, nil
	}
	return Decision{Rule: -1}, fmt.Errorf("ext_authz: %s exited with status %d", e.run.Path(), res.Code)
}
