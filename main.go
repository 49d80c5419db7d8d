// Command gatehouse is a token-authentication server for Docker and OCI
// registries, configured with cesanta/docker_auth's auth_config.yml.
//
//	gatehouse CONFIG              run the server (as docker_auth's image does)
//	gatehouse serve CONFIG        the same
//	gatehouse validate CONFIG     check a configuration; every problem with its line
//	gatehouse check CONFIG --account A [--label k=v] [--ip IP] [--service S] SCOPE...
//	                              show what the ACL grants and which rule decides
//	gatehouse hash [-cost N]      read a password on stdin, print its bcrypt hash
//	gatehouse version             print the version
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `usage:
  gatehouse CONFIG               run the server with the configuration file CONFIG
  gatehouse serve CONFIG         the same
  gatehouse validate CONFIG      check CONFIG (writes nothing): exit 0, or print every problem with its line and exit 1
  gatehouse check CONFIG --account A [--label KEY=VALUE ...] [--ip IP] [--service S] SCOPE...
                                 print, for each scope, the granted actions and the ACL rule that decided
  gatehouse hash [-cost N]       read a password on stdin and print a bcrypt hash for users:
  gatehouse version              print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code:
// 0 on success, 1 when the command failed, 2 for a bad command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		if len(args) != 2 {
			fmt.Fprint(stderr, "gatehouse serve: want exactly one argument, the configuration file\n\n"+usage)
			return 2
		}
		return serve(args[1], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "hash":
		return hash(args[1:], stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "gatehouse", buildVersion())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "gatehouse: unknown flag %s\n\n%s", args[0], usage)
		return 2
	}
	if len(args) != 1 {
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return serve(args[0], stderr)
}

func hash(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost (4 to 31)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "gatehouse hash: the password is read from stdin, not from arguments")
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "gatehouse hash: -cost must be between %d and %d\n", bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "gatehouse hash: reading stdin:", err)
		return 1
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		fmt.Fprintln(stderr, "gatehouse hash: empty password on stdin")
		return 1
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse hash:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
