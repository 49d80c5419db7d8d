package authn

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/ldaptest"
)

func TestLDAPTLS(t *testing.T) {
	srv := ldaptest.Start(t)
	_, tlsPort, _ := net.SplitHostPort(srv.TLSAddr)
	for _, c := range []struct {
		name       string
		addr, mode string
		ca         string
		skip       bool
		want       string
		encrypted  bool
	}{
		{"plain", srv.Addr, LDAPTLSNone, "", false, "ok", false},
		{"starttls with the test CA", srv.Addr, LDAPTLSStartTLS, srv.CAFile, false, "ok", true},
		{"ldaps with the test CA", srv.TLSAddr, LDAPTLSAlways, srv.CAFile, false, "ok", true},
		{"ldaps by host name", "localhost:" + tlsPort, LDAPTLSAlways, srv.CAFile, false, "ok", true},
		{"ldaps, verification off", srv.TLSAddr, LDAPTLSAlways, "", true, "ok", true},
		{"ldaps with a wrong CA", srv.TLSAddr, LDAPTLSAlways, srv.OtherCAFile, false, "unavailable", false},
		{"starttls with a wrong CA", srv.Addr, LDAPTLSStartTLS, srv.OtherCAFile, false, "unavailable", false},
		{"ldaps with the system roots", srv.TLSAddr, LDAPTLSAlways, "", false, "unavailable", false},
		{"plain LDAP to the LDAPS port", srv.TLSAddr, LDAPTLSNone, "", false, "unavailable", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testLDAPConfig(srv)
			cfg.Addr, cfg.TLS, cfg.CACertificate, cfg.InsecureTLSSkipVerify = c.addr, c.mode, c.ca, c.skip
			a := newTestLDAP(t, cfg)
			_, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password)
			if got := outcome(err); got != c.want {
				t.Fatalf("Authenticate = %s (%v), want %s", got, err, c.want)
			}
			if err != nil {
				t.Logf("reason: %v", err)
				return
			}
			a.pool.mu.Lock()
			defer a.pool.mu.Unlock()
			if len(a.pool.idle) != 1 {
				t.Fatalf("%d idle connections, want 1", len(a.pool.idle))
			}
			if _, ok := a.pool.idle[0].l.TLSConnectionState(); ok != c.encrypted {
				t.Errorf("connection encrypted = %v, want %v", ok, c.encrypted)
			}
		})
	}
}

// flakyProxy forwards to target while up; while down it accepts and at once
// closes connections, like a directory that is not answering.
type flakyProxy struct {
	ln      net.Listener
	target  string
	up      atomic.Bool
	accepts atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setUp(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepts.Add(1)
			if !p.up.Load() {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// setUp switches the proxy; going down cuts the connections it forwards.
func (p *flakyProxy) setUp(up bool) {
	p.up.Store(up)
	if !up {
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
	}
}

func (p *flakyProxy) addr() string { return p.ln.Addr().String() }

// fakeClock is a settable clock for the pool's down marks.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestLDAPFailover(t *testing.T) {
	srv := ldaptest.Start(t)

	t.Run("first address refuses connections", func(t *testing.T) {
		cfg := testLDAPConfig(srv)
		cfg.Addr, cfg.Addrs = "", []string{closedAddr(t), srv.Addr}
		a := newTestLDAP(t, cfg)
		if _, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	})

	t.Run("a failed server is skipped, then preferred again when it answers", func(t *testing.T) {
		proxy := newFlakyProxy(t, srv.Addr)
		cfg := testLDAPConfig(srv)
		cfg.Addr, cfg.Addrs = "", []string{proxy.addr(), srv.Addr}
		a := newTestLDAP(t, cfg)
		clock := &fakeClock{now: time.Now()}
		a.pool.now = clock.Now
		a.pool.reuse = false // every request dials: shows which server is tried
		var servers []int
		a.pool.onDial = func(c *ldapConn) { servers = append(servers, c.server) }
		login := func() {
			t.Helper()
			if _, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
		}
		for range 3 {
			login()
		}
		if n := proxy.accepts.Load(); n != 1 {
			t.Errorf("the failed first server was tried %d times in 3 logins, want once", n)
		}
		proxy.setUp(true)
		login() // still skipped: the down mark has not expired
		clock.Add(ldapRetryDown + time.Second)
		login()
		login()
		want := []int{1, 1, 1, 1, 0, 0}
		if !slices.Equal(servers, want) {
			t.Errorf("servers dialled = %v, want %v", servers, want)
		}
	})

	t.Run("all servers down, then one back", func(t *testing.T) {
		proxy := newFlakyProxy(t, srv.Addr)
		cfg := testLDAPConfig(srv)
		cfg.Addr, cfg.Addrs = "", []string{closedAddr(t), proxy.addr()}
		a := newTestLDAP(t, cfg)
		_, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("with every server down: %s (%v), want unavailable", outcome(err), err)
		}
		proxy.setUp(true) // marked down, but tried as a last resort
		if _, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password); err != nil {
			t.Fatalf("after the second server came back: %v", err)
		}
	})
}

// TestLDAPOutage stops and pauses slapd under one authenticator: each
// failure is ErrUnavailable, quickly, and it recovers without being rebuilt.
func TestLDAPOutage(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := testLDAPConfig(srv)
	cfg.ConnectTimeout, cfg.RequestTimeout = 300*time.Millisecond, 300*time.Millisecond
	a := newTestLDAP(t, cfg)
	login := func(t *testing.T, want string) {
		t.Helper()
		start := time.Now()
		_, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password)
		if got := outcome(err); got != want {
			t.Fatalf("Authenticate = %s (%v), want %s", got, err, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s, want well under 2s with 300ms timeouts", d)
		}
		if err != nil {
			t.Logf("reason: %v", err)
		}
		if got := outcome(a.Check(testCtx(t))); got != want {
			t.Errorf("Check = %s, want %s like Authenticate", got, want)
		}
	}
	steps := []struct {
		name   string
		action func()
		want   string
	}{
		{"running", func() {}, "ok"},
		{"stopped", srv.Stop, "unavailable"},
		{"restarted", srv.Restart, "ok"},
		{"hung: pooled connection times out", srv.Pause, "unavailable"},
		{"hung: new connection times out", func() {}, "unavailable"},
		{"resumed", srv.Resume, "ok"},
		{"again after recovery", func() {}, "ok"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.action()
			login(t, s.want)
		})
	}
}

// TestLDAPBindPasswordFile shows the service password is read by NewLDAP
// only, and that a refused service bind is a backend failure.
func TestLDAPBindPasswordFile(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := testLDAPConfig(srv)
	cfg.BindPasswordFile = t.TempDir() + "/bind"
	write := func(s string) {
		if err := os.WriteFile(cfg.BindPasswordFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  " + ldaptest.ServicePassword + "\r\n")
	a := newTestLDAP(t, cfg)
	a.pool.reuse = false // every request binds as the service account anew
	for _, step := range []struct {
		name   string
		change func()
	}{
		{"as loaded", func() {}},
		{"file now holds a wrong password", func() { write("wrong") }},
		{"file removed", func() { os.Remove(cfg.BindPasswordFile) }},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			if _, err := a.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
		})
	}
	t.Run("reload reads the wrong password: service bind refused", func(t *testing.T) {
		write("wrong")
		b := newTestLDAP(t, cfg)
		_, err := b.Authenticate(testCtx(t), "alice", ldaptest.Alice.Password)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrWrongPassword) {
			t.Fatalf("Authenticate = %s (%v), want unavailable", outcome(err), err)
		}
		if !strings.Contains(err.Error(), "service bind") {
			t.Errorf("reason %q does not name the service bind", err)
		}
	})
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
