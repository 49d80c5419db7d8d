package commands

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Hash reads a password (one line) from stdin and prints its bcrypt hash,
// for the users: section. args may set -cost N.
func Hash(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
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

// Version returns the version to report: stamped (set at build time with
// -ldflags "-X main.version=…") when it is not empty, else the module
// version the Go toolchain recorded, else "(devel)".
func Version(stamped string) string {
	if stamped != "" {
		return stamped
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
