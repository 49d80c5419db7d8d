package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/config"
)

// throttle counts failed logins per (account, client IP) and per client
// IP. Past a limit, a key is blocked for a delay that doubles with every
// further failure, up to a maximum; attempts from a blocked key are refused
// with 429 before any password is checked. A success clears the (account,
// IP) count. Counts are in memory: each replica keeps its own.
//
// The throttle belongs to the Server, not to one configuration, so a
// reload does not forgive anybody; its settings follow the configuration.
type throttle struct {
	now func() time.Time

	mu       sync.Mutex
	set      throttleSettings
	pairs    map[pairKey]*failures
	ips      map[netip.Addr]*failures
	disabled bool

	// Read without mu on every request: the latest end of any block
	// (UnixNano; a request after it cannot be blocked) and whether any
	// record exists (succeed has nothing to clear otherwise).
	blockedUntil atomic.Int64
	records      atomic.Int64
}

type throttleSettings struct {
	pairLimit, ipLimit int
	window             time.Duration
	delay, maxDelay    time.Duration
	tracked            int
}

type pairKey struct {
	account string
	ip      netip.Addr
}

// failures is the record of one key.
type failures struct {
	count int
	last  time.Time // the latest failure
	until time.Time // blocked until then
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, pairs: map[pairKey]*failures{}, ips: map[netip.Addr]*failures{}}
}

// configure applies a configuration's throttle section.
func (t *throttle) configure(c config.Throttle) {
	pair, ip := c.Limits()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.disabled = !c.On()
	t.set = throttleSettings{
		pairLimit: pair, ipLimit: ip,
		window:   c.Window.Or(config.DefaultThrottleWindow),
		delay:    c.Delay.Or(config.DefaultThrottleDelay),
		maxDelay: c.MaxDelay.Or(config.DefaultThrottleMaxDelay),
		tracked:  c.Tracked(),
	}
}

// blocked returns how long the (account, ip) pair or the ip is still
// blocked; 0 means go ahead.
func (t *throttle) blocked(account string, ip netip.Addr) time.Duration {
	now := t.now()
	if now.UnixNano() >= t.blockedUntil.Load() {
		return 0 // no block reaches this far: no lock, no lookups
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.disabled {
		return 0
	}
	var wait time.Duration
	if f := t.ips[ip]; f != nil {
		wait = max(wait, f.until.Sub(now))
	}
	if account != "" {
		if f := t.pairs[pairKey{account, ip}]; f != nil {
			wait = max(wait, f.until.Sub(now))
		}
	}
	return max(wait, 0)
}

// fail records a failed login. account may be "" (a bad refresh token):
// then only the IP counts.
func (t *throttle) fail(account string, ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.disabled {
		return
	}
	now := t.now()
	if len(t.ips)+len(t.pairs)+2 > t.set.tracked { // room for an IP and a pair record
		t.evict(now)
	}
	f := t.ips[ip]
	if f == nil {
		f = &failures{}
		t.ips[ip] = f
	}
	t.record(f, t.set.ipLimit, now)
	if account != "" {
		k := pairKey{account, ip}
		f := t.pairs[k]
		if f == nil {
			f = &failures{}
			t.pairs[k] = f
		}
		t.record(f, t.set.pairLimit, now)
	}
	t.records.Store(int64(len(t.pairs) + len(t.ips)))
}

func (t *throttle) record(f *failures, limit int, now time.Time) {
	if now.Sub(f.last) > t.set.window {
		f.count = 0
	}
	f.count++
	f.last = now
	if over := f.count - limit; over > 0 {
		d := t.set.delay
		for i := 1; i < over && d < t.set.maxDelay; i++ {
			d *= 2
		}
		f.until = now.Add(min(d, t.set.maxDelay))
		if u := f.until.UnixNano(); u > t.blockedUntil.Load() {
			t.blockedUntil.Store(u) // under mu: no lost update
		}
	}
}

// succeed clears the (account, IP) record after a successful login.
func (t *throttle) succeed(account string, ip netip.Addr) {
	if t.records.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pairs) > 0 {
		delete(t.pairs, pairKey{account, ip})
		t.records.Store(int64(len(t.pairs) + len(t.ips)))
	}
}

// evict forgets records past their window and block; if that does not
// make room, it forgets arbitrary records (map order is random) down to
// seven eighths of the bound, which only ever shortens someone's block.
// Called with t.mu held.
func (t *throttle) evict(now time.Time) {
	stale := func(f *failures) bool { return now.Sub(f.last) > t.set.window && !now.Before(f.until) }
	for k, f := range t.pairs {
		if stale(f) {
			delete(t.pairs, k)
		}
	}
	for k, f := range t.ips {
		if stale(f) {
			delete(t.ips, k)
		}
	}
	target := t.set.tracked - t.set.tracked/8 - 2
	for k := range t.pairs {
		if len(t.pairs)+len(t.ips) <= target {
			return
		}
		delete(t.pairs, k)
	}
	for k := range t.ips {
		if len(t.pairs)+len(t.ips) <= target {
			return
		}
		delete(t.ips, k)
	}
}

// tooMany is the answer for a blocked key.
func tooMany(wait time.Duration) *Error {
	secs := int((wait + time.Second - 1) / time.Second)
	return &Error{
		Status:     http.StatusTooManyRequests,
		Code:       CodeTooManyRequests,
		Message:    "too many failed logins; retry later",
		RetryAfter: max(secs, 1),
	}
}

// identifyThrottled authenticates req unless its key is blocked, and
// records the outcome: a refused credential counts as a failure, a
// success clears the account's record. Anonymous requests are neither
// blocked nor counted: they try no credential.
func (s *Server) identifyThrottled(ctx context.Context, st *state, req *Request) (identity, *Error) {
	if !req.HasCredentials {
		return st.identify(ctx, req)
	}
	if wait := s.throttle.blocked(req.Account, req.IP); wait > 0 {
		e := tooMany(wait)
		e.Err = fmt.Errorf("throttled for %v after failed logins", wait.Round(time.Second))
		return identity{}, e
	}
	id, e := st.identify(ctx, req)
	switch {
	case e == nil:
		s.throttle.succeed(id.Account, req.IP)
	case e.Status == http.StatusUnauthorized:
		s.throttle.fail(req.Account, req.IP)
	}
	return id, e
}
