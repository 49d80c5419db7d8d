package authn_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/faultproxy"
	"github.com/gatehouse/gatehouse/internal/ldaptest"
	"github.com/gatehouse/gatehouse/internal/leakcheck"
)

// LDAP timeouts of the fault test: a 503 may take connect_timeout (dial,
// StartTLS and service bind) plus request_timeout (one operation).
const (
	ldapFaultConnect = 500 * time.Millisecond
	ldapFaultRequest = 500 * time.Millisecond
)

// ldapFaultConfig is ldapServerConfig with the directory at addr (the fault
// proxy), 500ms timeouts and the throttle off. The credential cache is
// already off.
func ldapFaultConfig(t *testing.T, srv *ldaptest.Server, addr, dir string) string {
	yml := ldapServerConfig(srv, dir)
	yml = replaceOnce(t, yml, "addr: "+srv.Addr, "addr: "+addr)
	yml = replaceOnce(t, yml, "connect_timeout: 300ms", "connect_timeout: 500ms")
	yml = replaceOnce(t, yml, "request_timeout: 300ms", "request_timeout: 500ms")
	yml = replaceOnce(t, yml, "cache: {ttl: 0}", "cache: {ttl: 0}\n"+faultKnobs)
	return yml
}

// TestLDAPBackendFaults puts ldap_auth, through the HTTP handler, in front
// of a directory that is stopped, slowed past its timeout, stalled,
// answering garbage and dropping connections, reloads the configuration
// during outages, and checks after each that the same server recovers.
// Every failure must be a 503 errcode answered within the timeouts (plus
// slack), never a 401 and never a token; when the server is closed no
// connection or goroutine is left.
func TestLDAPBackendFaults(t *testing.T) {
	srv := ldaptest.Start(t)
	proxy := faultproxy.Start(t, srv.Addr)
	snap := leakcheck.Take()
	dir := t.TempDir()
	yml := ldapFaultConfig(t, srv, proxy.Addr(), dir)
	cfg1 := parseIn(t, dir, yml)
	// cfg2 differs in what posixGroup members get, so the answers tell
	// which configuration is in force.
	cfg2 := parseIn(t, dir, replaceOnce(t, yml, "actions: [pull]", "actions: [pull, push]"))
	e := newFaultEnv(t, cfg1, ldapFaultConnect+ldapFaultRequest)
	scopes := []string{"repository:pushers/app:push,pull", "repository:developers/app:push,pull"}
	grants1 := map[string][]string{"pushers/app": {"pull", "push"}, "developers/app": {"pull"}}
	grants2 := map[string][]string{"pushers/app": {"pull", "push"}, "developers/app": {"pull", "push"}}
	alice, pw := "alice", ldaptest.Alice.Password
	// A burst may wait check_wait for a password-check slot first.
	burstBound := faultCheckWait + e.bound
	ok := true // the steps build on each other: stop at the first failure

	ok = ok && t.Run("stopped", func(t *testing.T) {
		e.grants(t, "healthy", alice, pw, grants1, scopes...)
		srv.Stop()
		e.failClosed(t, "slapd stopped, pooled connection dead", alice, pw, scopes...)
		e.failClosed(t, "slapd stopped, new connection reset", alice, pw, scopes...)
		if d := e.reload(t, "reload while slapd is stopped", cfg2); d > 500*time.Millisecond {
			t.Errorf("Reload took %s while the directory is down: building must not wait for it", d)
		}
		e.failClosed(t, "after the reload, still stopped", alice, pw, scopes...)
		srv.Restart()
		e.recovers(t, "slapd restarted", 5*time.Second, alice, pw, grants2, scopes...)
	})

	ok = ok && t.Run("slowed past the timeout", func(t *testing.T) {
		proxy.Delay(2 * time.Second)
		e.failClosed(t, "every byte delayed 2s", alice, pw, scopes...)
		e.burst(t, "every byte delayed 2s, logins", 12, burstBound, e.login(alice, pw, scopes...))
		proxy.Pass()
		e.recovers(t, "delay lifted", 5*time.Second, alice, pw, grants2, scopes...)
	})

	ok = ok && t.Run("stalled", func(t *testing.T) {
		rt := e.refreshToken(t, alice, pw)
		proxy.Stall()
		e.failClosed(t, "stalled", alice, pw, scopes...)
		// Redemptions take no password-check slot: they queue for the
		// pool_size (4) connections, each wave failing after
		// connect_timeout, so 16 take 4 waves. Only auth.RequestTimeout
		// bounds a longer queue.
		e.burst(t, "stalled, refresh-token redemptions", 16, 4*ldapFaultConnect+faultSlack, e.redeem(rt, scopes[0]))
		start := time.Now()
		if code, body := ready(t, e.s); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz while stalled: %d %s, want 503", code, body)
		}
		e.record("stalled: /readyz 503", time.Since(start))
		// A reload while a request is waiting on the stalled directory: the
		// request fails closed with the old configuration, the reload does
		// not wait for it.
		var reloadErr error
		var reloadTook time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(100 * time.Millisecond) // the request is waiting by now
			start := time.Now()
			reloadErr = e.s.Reload(cfg1)
			reloadTook = time.Since(start)
		}()
		e.burst(t, "stalled, in flight during a reload", 1, e.bound, e.login(alice, pw, scopes...))
		<-done
		e.record("reload while stalled, a request in flight: Reload", reloadTook)
		if reloadErr != nil || reloadTook > 500*time.Millisecond {
			t.Errorf("Reload while the directory is stalled: %v after %s", reloadErr, reloadTook)
		}
		e.failClosed(t, "stalled, after the reload", alice, pw, scopes...)
		proxy.Pass()
		e.recovers(t, "stall lifted", 5*time.Second, alice, pw, grants1, scopes...)
	})

	ok = ok && t.Run("garbage", func(t *testing.T) {
		for _, g := range []struct {
			name   string
			answer func([]byte) []byte
		}{
			{"random bytes", faultproxy.Random(8)},
			{"an HTTP answer", faultproxy.Fixed([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))},
			{"a MongoDB reply header", faultproxy.Fixed([]byte{0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0})},
			// An LDAP message claiming a 2 GiB length: the client must not
			// wait for it, nor allocate it.
			{"a huge BER length", faultproxy.Fixed([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01})},
		} {
			e.grants(t, "before "+g.name, alice, pw, grants1, scopes...) // a pooled connection exists
			proxy.Garbage(g.answer)
			e.failClosed(t, "garbage: "+g.name, alice, pw, scopes...)
			e.failClosed(t, "garbage: "+g.name+", again", alice, pw, scopes...)
			proxy.Pass()
			e.recovers(t, "garbage: "+g.name+" ended", 5*time.Second, alice, pw, grants1, scopes...)
		}
	})

	ok = ok && t.Run("connections dropped", func(t *testing.T) {
		proxy.Drop()
		e.failClosed(t, "connections dropped", alice, pw, scopes...)
		proxy.Pass()
		e.recovers(t, "drops ended", 5*time.Second, alice, pw, grants1, scopes...)
	})

	if ok {
		e.closeClean(t, proxy, snap)
	}
}
