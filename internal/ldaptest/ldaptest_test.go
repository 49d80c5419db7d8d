package ldaptest

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// recordTB records whether a helper skipped or failed the test, and stops
// the helper's goroutine as the real methods would.
type recordTB struct {
	testing.TB
	outcome, msg string
}

func (r *recordTB) Skip(args ...any) {
	r.outcome, r.msg = "skip", fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Fatal(args ...any) {
	r.outcome, r.msg = "fatal", fmt.Sprint(args...)
	runtime.Goexit()
}

// TestMissingComponent: without slapd a test is skipped, unless CI=true,
// where it fails.
func TestMissingComponent(t *testing.T) {
	for _, c := range []struct{ name, ci, want string }{
		{"skipped by default", "", "skip"},
		{"fails with CI=true", "true", "fatal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			r := &recordTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				lookPath(r, "gatehouse-no-such-slapd", "/nonexistent/slapd")
			}()
			<-done
			if r.outcome != c.want {
				t.Fatalf("outcome %q (%s), want %q", r.outcome, r.msg, c.want)
			}
		})
	}
}

// TestStartRestart checks the harness itself: the directory answers, keeps
// its data across a restart on the same ports, and Stop is idempotent.
func TestStartRestart(t *testing.T) {
	s := Start(t)
	bind := func() error {
		l, err := ldap.DialURL("ldap://" + s.Addr)
		if err != nil {
			return err
		}
		defer l.Close()
		return l.Bind(Alice.DN(), Alice.Password)
	}
	for i := range 3 {
		if err := bind(); err != nil {
			t.Fatalf("after %d restarts: alice's bind: %v", i, err)
		}
		s.Restart()
	}
	s.Stop()
	s.Stop()
	if err := bind(); err == nil {
		t.Fatal("alice's bind succeeded with slapd stopped")
	}
}
