package main

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/internal/ldaptest"
)

// tb lets internal/ldaptest and internal/kmstest, written for tests,
// start a slapd or a KMS server in this program. It implements the
// testing.TB methods the two call; the embedded interface is nil and only
// supplies the unexported method, so any other method would panic (none
// is called).
type tb struct {
	testing.TB
	dir      string
	cleanups []func()
	failed   bool
}

// errSkip and errFatal carry t.Skip and t.Fatal out of ldaptest.Start
// and kmstest.Start.
type (
	errSkip  struct{ msg string }
	errFatal struct{ msg string }
)

func (t *tb) Helper() {}

func (t *tb) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "slapd-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (t *tb) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *tb) Failed() bool                    { return t.failed }
func (t *tb) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *tb) Fatal(args ...any)               { t.failed = true; panic(errFatal{fmt.Sprint(args...)}) }
func (t *tb) Fatalf(format string, args ...any) {
	t.failed = true
	panic(errFatal{fmt.Sprintf(format, args...)})
}
func (t *tb) Skip(args ...any) { panic(errSkip{fmt.Sprint(args...)}) }
func (t *tb) Log(args ...any)  { fmt.Fprintln(os.Stderr, args...) }
func (t *tb) Errorf(format string, args ...any) {
	t.failed = true
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// Setenv sets the variable for the rest of this process (internal/kmstest
// sets dummy AWS credentials with it).
func (t *tb) Setenv(key, value string) { _ = os.Setenv(key, value) }

// close runs the cleanups, last first: it stops slapd.
func (t *tb) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// errNoSlapd says slapd or ldapadd is not installed.
var errNoSlapd = errors.New("slapd not installed")

// startSlapd starts the ldaptest directory under dir. It returns
// errNoSlapd (wrapped, with ldaptest's message) when slapd or ldap-utils
// are missing.
func startSlapd(dir string) (srv *ldaptest.Server, stop func(), err error) {
	t := &tb{dir: dir}
	defer func() {
		switch v := recover().(type) {
		case nil:
		case errSkip:
			t.close()
			err = fmt.Errorf("%w: %s", errNoSlapd, v.msg)
		case errFatal:
			t.close()
			err = errors.New(v.msg)
		default:
			panic(v)
		}
	}()
	srv = ldaptest.Start(t)
	return srv, t.close, nil
}
