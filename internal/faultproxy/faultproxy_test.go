package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/leakcheck"
)

// echo is a backend that echoes what it reads and counts the bytes.
type echo struct {
	ln   net.Listener
	got  atomic.Int64
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn []net.Conn
}

func startEcho(t *testing.T) *echo {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conn = append(e.conn, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					e.got.Add(int64(n))
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echo) close() {
	_ = e.ln.Close()
	e.mu.Lock()
	for _, c := range e.conn {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back within limit.
func roundTrip(c net.Conn, msg string, limit time.Duration) (string, time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(start.Add(limit))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", 0, err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), time.Since(start), err
}

func TestModes(t *testing.T) {
	snap := leakcheck.Take()
	e := startEcho(t)
	p := Start(t, e.ln.Addr().String())
	c := dial(t, p)

	if got, _, err := roundTrip(c, "hello", time.Second); err != nil || got != "hello" {
		t.Fatalf("pass: %q %v", got, err)
	}

	p.Delay(150 * time.Millisecond)
	got, d, err := roundTrip(c, "slow", 2*time.Second)
	if err != nil || got != "slow" || d < 300*time.Millisecond {
		t.Fatalf("delay: %q in %s (%v), want the echo after 2 x 150ms", got, d, err)
	}

	p.Stall()
	if _, _, err := roundTrip(c, "stuck", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stall: %v, want a read timeout", err)
	}
	p.Pass() // the held chunk goes on
	_ = c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "stuck" {
		t.Fatalf("after stall: %q %v, want the held echo", buf, err)
	}

	p.Delay(time.Hour) // a switch releases held data at once
	go func() { time.Sleep(100 * time.Millisecond); p.Pass() }()
	if got, _, err := roundTrip(c, "held", 2*time.Second); err != nil || got != "held" {
		t.Fatalf("delay then pass: %q %v", got, err)
	}

	before := e.got.Load()
	p.Garbage(Fixed([]byte("SSH-2.0-OpenSSH_9.2\r\n")))
	if got, _, err := roundTrip(c, "ldap?", time.Second); err != nil || got != "SSH-2" {
		t.Fatalf("garbage on an open connection: %q %v", got, err)
	}
	g := dial(t, p) // a new connection in garbage mode
	if got, _, err := roundTrip(g, "mongo?", time.Second); err != nil || got != "SSH-2." {
		t.Fatalf("garbage on a new connection: %q %v", got, err)
	}
	if n := e.got.Load(); n != before {
		t.Errorf("garbage mode forwarded %d bytes to the backend", n-before)
	}

	p.Drop()
	conns := map[string]net.Conn{"open": c, "garbage-born": g}
	// A new connection is accepted and reset at once: the reset can reach
	// the client before net.Dial has read the connect's outcome, and then
	// Dial itself reports it. Either way the connection is refused.
	if n, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Cleanup(func() { _ = n.Close() })
		conns["new"] = n
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("drop, new connection: dial: %v, want success or a reset", err)
	}
	for name, conn := range conns {
		if _, _, err := roundTrip(conn, "x", time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("drop, %s connection: %v, want it closed", name, err)
		}
	}

	p.Pass()
	if got, _, err := roundTrip(dial(t, p), "again", time.Second); err != nil || got != "again" {
		t.Fatalf("pass after drop: %q %v", got, err)
	}
	if n := p.Accepted(); n != 4 {
		t.Errorf("Accepted() = %d, want 4", n)
	}
	p.Close()
	if n := p.Open(); n != 0 {
		t.Errorf("Open() = %d after Close", n)
	}
	e.close()
	snap.Check(t, 0)
}

func TestRandomGarbage(t *testing.T) {
	p := Start(t, "127.0.0.1:1") // never dialled in garbage mode
	p.Garbage(Random(1))
	c := dial(t, p)
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil || n == 0 {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if want := Random(1)(nil); !bytes.HasPrefix(want, buf[:n]) {
		t.Errorf("answer is not the seeded generator's first output")
	}
}

// TestBackendDown: a connection whose backend refuses is reset at once.
func TestBackendDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := Start(t, addr)
	// The reset can come before connect returns.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		if _, _, err := roundTrip(c, "x", time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("backend down: %v, want the connection closed", err)
		}
	}
	if p.Open() != 0 {
		t.Errorf("Open() = %d, want 0", p.Open())
	}
}
