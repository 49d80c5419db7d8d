package commands

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/daemon"
	"github.com/gatehouse/gatehouse/token"
)

// tokenUsage is the usage of gatehouse token.
const tokenUsage = `usage:
  gatehouse token create CONFIG --owner ACCOUNT --name NAME --scope PATTERN [--scope ...] [--ttl 30d | --no-expiry]
  gatehouse token revoke TOKEN|ID
  gatehouse token inspect CONFIG TOKEN [--service S]
`

// Token runs gatehouse token create, revoke or inspect (args after
// "token").
func Token(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	switch args[0] {
	case "create":
		return tokenCreate(args[1:], stdout, stderr)
	case "revoke":
		return tokenRevoke(args[1:], stdout, stderr)
	case "inspect":
		return tokenInspect(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "gatehouse token: unknown subcommand %q\n\n%s", args[0], tokenUsage)
	return 2
}

// scopeFlags collects repeated --scope flags.
type scopeFlags []string

func (s *scopeFlags) String() string { return strings.Join(*s, " ") }

// Set adds one pattern, or several separated by spaces.
func (s *scopeFlags) Set(v string) error {
	*s = append(*s, strings.Fields(v)...)
	return nil
}

// buildServer loads path and builds its server read-only, as validate
// does.
func buildServer(path string, stderr io.Writer) (*auth.Server, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.Token.RefreshSecretFile == "" {
		if _, err := os.Stat(cfg.Token.Key); err != nil {
			return nil, fmt.Errorf("the signing key %s is not readable here (%w): tokens are keyed by it (or by token.refresh_secret_file)", cfg.Token.Key, err)
		}
	}
	srv, _, err := daemon.Build(cfg, auth.WithLogger(logger), auth.WithReadOnly())
	return srv, err
}

func tokenCreate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	owner := fs.String("owner", "", "the account the token acts for")
	name := fs.String("name", "", "a name for the token (shown in audit lines)")
	ttl := fs.String("ttl", "", "lifetime, e.g. 30d or 12h (default: access_tokens.default_ttl)")
	noExpiry := fs.Bool("no-expiry", false, "no expiry (needs access_tokens.allow_no_expiry)")
	var scopes scopeFlags
	fs.Var(&scopes, "scope", "a scope pattern TYPE:NAME:ACTIONS, e.g. repository:web/*:pull,push (repeatable)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *owner == "" || *name == "" || len(scopes) == 0 || fs.NArg() != 0 || (*ttl != "" && *noExpiry) {
		fmt.Fprint(stderr, "gatehouse token create: --owner, --name and at least one --scope are required; --ttl and --no-expiry exclude each other\n\n"+tokenUsage)
		return 2
	}
	var d time.Duration
	if *ttl != "" {
		var err error
		if d, err = token.ParseTTL(*ttl); err != nil || d <= 0 {
			fmt.Fprintf(stderr, "gatehouse token create: --ttl: want a positive lifetime such as 30d, got %q\n", *ttl)
			return 2
		}
	}
	srv, err := buildServer(args[0], stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), auth.RequestTimeout)
	defer cancel()
	raw, c, err := srv.MintAccessToken(ctx, auth.MintRequest{Owner: *owner, Name: *name, Scopes: scopes, TTL: d, NoExpiry: *noExpiry})
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse token create:", err)
		return 1
	}
	fmt.Fprintf(stderr, "access token %s (%s) for %s in %s, %s; it is shown once:\n", c.ID, c.Name, c.Owner, c.Authenticator, expiry(c))
	fmt.Fprintln(stdout, raw)
	return 0
}

func expiry(c *token.AccessTokenClaims) string {
	if c.ExpiresAt.IsZero() {
		return "no expiry"
	}
	return "expires " + c.ExpiresAt.UTC().Format(time.RFC3339)
}

// tokenRevoke prints the revoked_file line (and the YAML list entry) for
// a token or an id. It needs no configuration: the id is read, not
// verified, from the token.
func tokenRevoke(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" {
		fmt.Fprint(stderr, "gatehouse token revoke: want exactly one argument, the token or its id\n\n"+tokenUsage)
		return 2
	}
	id, comment := args[0], ""
	if _, _, ok := token.PeekJWT(args[0]); ok {
		var c struct {
			ID    string `json:"jti"`
			Name  string `json:"gh_name"`
			Owner string `json:"sub"`
			Exp   int64  `json:"exp"`
		}
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(args[0], ".")[1])
		if json.Unmarshal(payload, &c) != nil || c.ID == "" {
			fmt.Fprintln(stderr, "gatehouse token revoke: the token has no id")
			return 1
		}
		id, comment = c.ID, fmt.Sprintf("  # %s of %s", c.Name, c.Owner)
		if c.Exp != 0 {
			comment += ", expires " + time.Unix(c.Exp, 0).UTC().Format(time.RFC3339)
		}
	} else if strings.ContainsAny(id, " \t#.") {
		fmt.Fprintf(stderr, "gatehouse token revoke: %q is neither a token nor a token id\n", id)
		return 2
	}
	fmt.Fprintln(stderr, "add this line to access_tokens.revoked_file (or the id to access_tokens.revoked); a reload applies it:")
	fmt.Fprintf(stdout, "%s%s\n", id, comment)
	return 0
}

func tokenInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "registry", "the service to decide for")
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	if err := fs.Parse(args[2:]); err != nil || fs.NArg() != 0 {
		return 2
	}
	srv, err := buildServer(args[0], stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), auth.RequestTimeout)
	defer cancel()
	rep, err := srv.InspectAccessToken(ctx, args[1], *service)
	if err != nil {
		fmt.Fprintln(stdout, "not a valid access token:", err)
		return 1
	}
	c := rep.Claims
	fmt.Fprintf(stdout, "access token %s\n  name: %s\n  owner: %s (%s)\n  issued: %s\n  %s\n  scopes: %s\n",
		c.ID, c.Name, c.Owner, c.Authenticator, c.IssuedAt.UTC().Format(time.RFC3339), expiry(c), strings.Join(c.Scopes, " "))
	if rep.Problem != "" {
		fmt.Fprintln(stdout, "  refused now:", rep.Problem)
		return 1
	}
	fmt.Fprintln(stdout, "  accepted now; grants, per pattern:")
	for _, d := range rep.Decisions {
		fmt.Fprintf(stdout, "    %s -> [%s]%s\n", d.Scope, d.Granted, ruleNote(d))
	}
	return 0
}

func ruleNote(d auth.Decision) string {
	if d.Comment == "" {
		return ""
	}
	return "  (" + d.Comment + ")"
}
