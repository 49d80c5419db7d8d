package commands

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/daemon"
)

// Validate loads and builds the configuration file named by args (exactly
// one) as the server would, without listening and without writing any
// file: every problem is printed with its line and the exit code is 1.
// Configuration and ACL warnings, and ACL notices, are printed too but do
// not fail.
func Validate(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, "gatehouse validate: want exactly one argument, the configuration file\n\n"+Usage)
		return 2
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, p := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning:", p)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, _, err := daemon.Build(cfg, auth.WithLogger(logger), auth.WithReadOnly())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv.Close()
	// Notices are about intended differences from docker_auth ("**"): the
	// server logs them at info level, which the logger above leaves out.
	if a, err := acl.Compile(cfg.ACL); err == nil {
		for _, n := range a.Notices() {
			fmt.Fprintf(stderr, "%s: notice: %s\n", args[0], n)
		}
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}

// parseInterleaved parses args with fs where flags and positional
// arguments come in any order, and returns the positional ones in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// labelFlags collects repeated --label KEY=VALUE flags.
type labelFlags authn.Labels

// String implements flag.Value; the flag has no default to show.
func (l labelFlags) String() string { return "" }

// Set adds one KEY=VALUE label.
func (l labelFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	l[k] = append(l[k], val)
	return nil
}

// Check decides scopes for an account with the server's own ACL code, and
// prints for each scope the granted actions and the rule that decided.
// args are CONFIG followed, in any order, by SCOPE... and the flags
// --account, --label KEY=VALUE (repeatable), --ip and --service. Like
// Validate it writes no file.
func Check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	account := fs.String("account", "", "the account to decide for (\"\" is anonymous)")
	ip := fs.String("ip", "", "the client IP address")
	service := fs.String("service", "registry", "the requested service (the registry's auth.token.service)")
	labels := labelFlags{}
	fs.Var(labels, "label", "a label of the account, KEY=VALUE (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse check CONFIG --account A [--label k=v ...] [--ip IP] [--service S] SCOPE...")
		fs.PrintDefaults()
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		return 2
	}
	path := args[0]
	scopeArgs, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return 2
	}
	if len(scopeArgs) == 0 {
		fmt.Fprintln(stderr, "gatehouse check: name at least one scope, e.g. repository:alice/app:pull,push")
		return 2
	}
	scopes, err := auth.ParseScopes(scopeArgs)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse check:", err)
		return 2
	}
	var addr netip.Addr
	if *ip != "" {
		if addr, err = netip.ParseAddr(*ip); err != nil {
			fmt.Fprintln(stderr, "gatehouse check: --ip:", err)
			return 2
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv, err := auth.New(cfg, auth.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))), auth.WithReadOnly())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()
	for _, d := range srv.Explain(*account, authn.Labels(labels), addr, *service, scopes) {
		granted := d.Granted
		if granted == "" {
			granted = "nothing"
		}
		if d.Rule < 0 {
			why := "no rule matched"
			if d.Comment != "" { // acl_mongo could not be consulted
				why = d.Comment
			}
			fmt.Fprintf(stdout, "%s: %s (%s)\n", d.Scope, granted, why)
			continue
		}
		switch d.ACL {
		case "":
			fmt.Fprintf(stdout, "%s: %s (rule %d", d.Scope, granted, d.Rule)
		case "casbin_authz": // casbin has no rule numbers
			fmt.Fprintf(stdout, "%s: %s (casbin_authz", d.Scope, granted)
		default:
			fmt.Fprintf(stdout, "%s: %s (%s seq %d", d.Scope, granted, d.ACL, d.Rule)
		}
		if d.Comment != "" {
			fmt.Fprintf(stdout, " %q", d.Comment)
		}
		fmt.Fprintln(stdout, ")")
	}
	return 0
}
