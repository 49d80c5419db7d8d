package daemon

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records what reaches it and in how many writes.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func TestBatchWriterWritesWithinTheDelay(t *testing.T) {
	var w countingWriter
	b := newBatchWriter(&w, 5*time.Millisecond)
	defer b.Close()
	fmt.Fprintln(b, "one")
	if w.String() != "" {
		t.Fatal("written before the delay")
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not written: %q", w.String())
		}
		time.Sleep(time.Millisecond)
	}
	// Idle again: the next line is written too.
	fmt.Fprintln(b, "two")
	for w.String() != "one\ntwo\n" {
		if time.Now().After(deadline) {
			t.Fatalf("second line not written: %q", w.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatchWriterKeepsOrderAndBatches(t *testing.T) {
	var w countingWriter
	b := newBatchWriter(&w, time.Hour) // only Close and a full buffer write
	var wg sync.WaitGroup
	const writers, lines = 8, 500
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(b, "g%d line %04d %s\n", g, i, strings.Repeat("x", 100))
			}
		})
	}
	wg.Wait()
	b.Close()
	got := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	next := map[string]int{}
	for _, l := range got {
		var g string
		var i int
		if _, err := fmt.Sscanf(l, "%s line %d", &g, &i); err != nil || i != next[g] {
			t.Fatalf("line %q out of order (want %s line %d)", l, g, next[g])
		}
		next[g]++
	}
	// 4,000 lines of ~120 bytes: a few writes of maxLogBuffer, not 4,000.
	if w.writes > 4 {
		t.Errorf("%d writes for %d lines", w.writes, len(got))
	}
	// After Close, lines go straight through.
	before := w.writes
	fmt.Fprintln(b, "after close")
	if w.writes != before+1 || !strings.HasSuffix(w.String(), "after close\n") {
		t.Errorf("write after Close not passed through")
	}
}
