package daemon

import (
	"io"
	"sync"
	"time"
)

// logFlushDelay is how long a log line may wait to be written while
// serving. Every token request writes an audit line; written one by one,
// each costs a write system call, a few percent of a token's CPU under
// load. Batched, a busy server writes its lines a couple of hundred at a
// time (docs/performance.md), and an idle one still writes each line
// within this delay. On a file, each write also updates the file's times,
// so fewer, larger writes cost less per line: 10 ms rather than 2 ms
// halved the writing's share of a token under load.
const logFlushDelay = 10 * time.Millisecond

// maxLogBuffer bounds the lines waiting: past it, Write writes them out
// itself, so a slow stderr slows logging instead of growing memory.
const maxLogBuffer = 256 << 10

// batchWriter batches log lines. Write copies a line and returns; the
// lines are written to w, in order, by a timer at most delay after the
// first of them arrived, by a Write that finds maxLogBuffer waiting, or by
// Close. No goroutine or timer runs while nothing waits.
//
// What has not been written when the process is killed (at most delay's
// worth) is lost; Close, called when Serve returns, writes everything.
type batchWriter struct {
	w     io.Writer
	delay time.Duration
	timer *time.Timer

	out sync.Mutex // held while writing to w: keeps the batches in order

	mu        sync.Mutex
	buf       []byte
	spare     []byte
	scheduled bool // the timer will flush
	closed    bool // write through
}

func newBatchWriter(w io.Writer, delay time.Duration) *batchWriter {
	b := &batchWriter{w: w, delay: delay}
	b.timer = time.AfterFunc(time.Hour, b.flush)
	b.timer.Stop()
	return b
}

// Write queues p. It never fails: an error writing to w is not reported
// (a logger has nowhere to report it).
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.out.Lock()
		defer b.out.Unlock()
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	full := len(b.buf) >= maxLogBuffer
	if !full && !b.scheduled {
		b.scheduled = true
		b.timer.Reset(b.delay)
	}
	b.mu.Unlock()
	if full {
		b.flush()
	}
	return len(p), nil
}

// flush writes what is waiting.
func (b *batchWriter) flush() {
	b.out.Lock()
	defer b.out.Unlock()
	b.mu.Lock()
	pending := b.buf
	b.buf, b.spare = b.spare[:0], nil
	b.scheduled = false
	b.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	_, _ = b.w.Write(pending)
	if cap(pending) <= maxLogBuffer {
		b.mu.Lock()
		b.spare = pending[:0]
		b.mu.Unlock()
	}
}

// Close writes what is waiting; later Writes go straight to w.
func (b *batchWriter) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.timer.Stop()
	b.flush()
	return nil
}
