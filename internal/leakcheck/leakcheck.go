// Package leakcheck fails a test that leaves goroutines behind: take a
// snapshot before the code under test starts anything, stop everything it
// started, then check.
//
//	snap := leakcheck.Take()
//	s, _ := auth.New(cfg)
//	… // requests, faults, reloads
//	s.Close()
//	snap.Check(t, 2)
//
// The check compares runtime.NumGoroutine with the snapshot's count,
// allowing slack, and retries for a while, since goroutines that were told
// to stop take a moment to return. On failure it prints the stacks of the
// goroutines that were not there at the snapshot.
//
// Only tests import it.
package leakcheck

import (
	"bytes"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// wait is how long Check waits for the count to come down.
var wait = 3 * time.Second

// Snapshot is the goroutines alive at one moment.
type Snapshot struct {
	n   int
	ids map[string]bool
}

// Take records the goroutines alive now.
func Take() Snapshot {
	ids := map[string]bool{}
	for _, g := range goroutines() {
		ids[g.id] = true
	}
	return Snapshot{n: runtime.NumGoroutine(), ids: ids}
}

// Count returns the number of goroutines at the snapshot.
func (s Snapshot) Count() int { return s.n }

// Check fails t unless, within 3 s, at most slack goroutines more than at
// the snapshot are alive. It returns the last count.
func (s Snapshot) Check(t testing.TB, slack int) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= s.n+slack {
			return n
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutine leak: %d goroutines, %d at the snapshot (slack %d); the new ones:\n%s",
				n, s.n, slack, s.NewStacks())
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewStacks returns the stacks of the goroutines alive now that were not
// alive at the snapshot, from the goroutine profile.
func (s Snapshot) NewStacks() string {
	var b strings.Builder
	for _, g := range goroutines() {
		if !s.ids[g.id] {
			b.WriteString(g.stack)
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

type goroutine struct{ id, stack string }

var header = regexp.MustCompile(`^goroutine (\d+) `)

// goroutines reads the goroutine profile with one full stack per goroutine
// (debug=2, the format of a crash), split at the blank lines.
func goroutines() []goroutine {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var out []goroutine
	for _, block := range strings.Split(buf.String(), "\n\n") {
		block = strings.TrimSpace(block)
		if m := header.FindStringSubmatch(block); m != nil {
			out = append(out, goroutine{id: m[1], stack: block})
		}
	}
	return out
}
