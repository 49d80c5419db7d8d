package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireTool returns the path of the program name. When it is not
// installed the test is skipped, or fails when CI=true (scripts/test.sh
// installs it).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true; scripts/test.sh installs it): %v", name, err)
	}
	t.Skipf("%s is not installed (scripts/test.sh installs it)", name)
	return ""
}

// RunTool runs bin with args, the environment plus env, and stdin, and
// fails the test, showing its output, unless it succeeds within a minute.
func RunTool(t testing.TB, bin string, env []string, stdin string, args ...string) string {
	t.Helper()
	return RunToolIn(t, "", bin, env, stdin, args...)
}

// RunToolIn is RunTool in the working directory dir ("" for the test's).
func RunToolIn(t testing.TB, dir, bin string, env []string, stdin string, args ...string) string {
	t.Helper()
	out, err := runTool(dir, bin, env, stdin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// RunToolFails is RunToolIn for a command that must fail: it fails the
// test, showing the output, if the command succeeds, and returns the output.
func RunToolFails(t testing.TB, dir, bin string, env []string, stdin string, args ...string) string {
	t.Helper()
	out, err := runTool(dir, bin, env, stdin, args...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Fatalf("%s %s succeeded, want it refused:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	case !errors.As(err, &exit):
		t.Fatalf("%s %s: %v (want an exit status saying it was refused)\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// runTool runs bin as RunTool describes, in dir, and returns its combined
// output and error.
func runTool(dir, bin string, env []string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within a minute (%v)", err) // not an exit status: no refusal
	}
	return out.String(), err
}
