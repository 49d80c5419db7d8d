// Command gatehouse is a token-authentication server for Docker and OCI
// registries, configured with cesanta/docker_auth's auth_config.yml. It
// parses the command line and calls internal/daemon (serve) or
// internal/commands (validate, check, token, certificate, hash, version); commands.Usage lists
// the command lines.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gatehouse/gatehouse/internal/commands"
	"github.com/gatehouse/gatehouse/internal/daemon"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code:
// 0 on success, 1 when the command failed, 2 for a bad command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, commands.Usage)
		return 2
	case args[0] == "serve" && len(args) != 2:
		fmt.Fprint(stderr, "gatehouse serve: want exactly one argument, the configuration file\n\n"+commands.Usage)
		return 2
	case args[0] == "serve":
		return daemon.Serve(context.Background(), args[1], commands.Version(version), stderr)
	case args[0] == "validate":
		return commands.Validate(args[1:], stdout, stderr)
	case args[0] == "check":
		return commands.Check(args[1:], stdout, stderr)
	case args[0] == "token":
		return commands.Token(args[1:], stdout, stderr)
	case args[0] == "certificate":
		return commands.Certificate(args[1:], stdout, stderr)
	case args[0] == "hash":
		return commands.Hash(args[1:], stdin, stdout, stderr)
	case args[0] == "version" || args[0] == "-version" || args[0] == "--version":
		fmt.Fprintln(stdout, "gatehouse", commands.Version(version))
		return 0
	case args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		fmt.Fprint(stdout, commands.Usage)
		return 0
	case strings.HasPrefix(args[0], "-"):
		fmt.Fprintf(stderr, "gatehouse: unknown flag %s\n\n%s", args[0], commands.Usage)
		return 2
	case len(args) != 1:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], commands.Usage)
		return 2
	}
	return daemon.Serve(context.Background(), args[0], commands.Version(version), stderr)
}
