package leakcheck

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeT records what Check reports instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

// parkedForLeakcheck is a named function, so that its frame can be looked
// for in the stacks Check prints.
func parkedForLeakcheck(stop <-chan struct{}) { <-stop }

func TestCheck(t *testing.T) {
	defer func(w time.Duration) { wait = w }(wait)
	wait = time.Second
	snap := Take()
	if snap.Count() < 1 {
		t.Fatalf("snapshot counts %d goroutines", snap.Count())
	}

	// Goroutines that end before the wait is over are no leak.
	for range 5 {
		go time.Sleep(300 * time.Millisecond)
	}
	ft := &fakeT{TB: t}
	snap.Check(ft, 0)
	if ft.failed {
		t.Fatalf("goroutines that ended were reported:\n%s", ft.msg)
	}

	// Goroutines that stay are reported, with their stacks.
	stop := make(chan struct{})
	defer close(stop)
	for range 3 {
		go parkedForLeakcheck(stop)
	}
	ft = &fakeT{TB: t}
	start := time.Now()
	n := snap.Check(ft, 1)
	if !ft.failed {
		t.Fatalf("3 parked goroutines passed with slack 1 (count %d, snapshot %d)", n, snap.Count())
	}
	if d := time.Since(start); d < wait {
		t.Errorf("reported after %s, want a retry for %s first", d, wait)
	}
	if got := strings.Count(ft.msg, "parkedForLeakcheck"); got < 3 {
		t.Errorf("the report names parkedForLeakcheck %d times, want 3:\n%s", got, ft.msg)
	}

	// Within the slack is no leak.
	ft = &fakeT{TB: t}
	snap.Check(ft, 3+2)
	if ft.failed {
		t.Errorf("3 goroutines with slack 5 reported:\n%s", ft.msg)
	}
}
