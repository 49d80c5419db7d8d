// Package redistest runs a throwaway redis-server for tests: a free
// loopback port, a directory of its own, no persistence.
//
// It needs the Debian package redis-server (scripts/test.sh installs it;
// Valkey speaks the same protocol and is not packaged for bookworm). When
// it is missing, Start skips the test, or fails it when the environment
// variable CI is "true".
//
//	srv := redistest.Start(t)
//	cfg := config.ThrottleStore{Type: "redis", Addrs: []string{srv.Addr}}
//	srv.Stop()    // the store is down
//	srv.Restart() // same port, empty
//
// Only tests import it.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// Server is a running redis-server.
type Server struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	Dir  string

	t    testing.TB
	bin  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts redis-server on a free loopback port. It stops when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	testutil.UsesComponent(t, "Redis")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr != nil {
			missing(t)
		}
		bin = "/usr/bin/redis-server"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{t: t, bin: bin, Dir: t.TempDir(), Addr: l.Addr().String()}
	l.Close()
	s.start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			t.Logf("--- redis log (%s) ---\n%s", s.Dir, log)
		}
	})
	return s
}

func missing(t testing.TB) {
	t.Helper()
	msg := "redistest: redis-server not found (apt-get install redis-server, or run scripts/test.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Stop stops redis-server (SIGKILL: as a crash would) and waits for it.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Pause stops redis-server with SIGSTOP: connections are accepted by the
// kernel but nothing answers, as with an overloaded store.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused redis-server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("redistest: redis-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Restart starts redis-server again on the same port, with no data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(s.bin, "--bind", "127.0.0.1", "--port", port, "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: starting redis-server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		exited := false
		select {
		case <-s.done:
			exited, err = true, fmt.Errorf("redis-server exited (%v)", cmd.ProcessState)
		default:
		}
		if exited || time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			t.Fatalf("redistest: redis-server does not listen on %s: %v\n%s", s.Addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
