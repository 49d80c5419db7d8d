package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/config"
)

// throttle counts failed logins per (account, client) and per client.
// After a limit of failures, a key is blocked for a delay that doubles with
// every further failure, up to a maximum; attempts from a blocked key are
// refused with 429 before any password is checked. A success clears the
// (account, client) count. Counts are in memory, each replica its own,
// unless throttle.store names a shared store (throttle_store.go): then the
// failures are counted there, for every replica, and the memory holds the
// reservations and what was counted while the store did not answer.
//
// A client is an IPv4 address, or an IPv6 prefix (/64 unless configured:
// one host usually has a whole /64 to pick addresses from); an account is
// its case-folded name, so every spelling of it shares one budget.
//
// Password checks in flight count against the budget: a check takes a
// reservation on both keys before it runs, and the reservation becomes a
// failure when the check fails, is released when it succeeds or could not
// be made. A key whose failures plus reservations reach its limit takes no
// further attempt until they settle, so a burst of concurrent guesses
// reaches the password check at most the limit's number of times.
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
	store    *throttleStore // nil: counts in memory only

	logger       *slog.Logger
	storeMetrics *storeMetrics // set by the Server; nil in tests without a store

	// Read without mu on every request: the latest end of any block
	// (UnixNano), the reservations in flight (with none, a request after
	// blockedUntil cannot be refused) and the number of records (succeed
	// has nothing to clear without one).
	blockedUntil atomic.Int64
	pending      atomic.Int64
	records      atomic.Int64
}

type throttleSettings struct {
	pairLimit, ipLimit int
	window             time.Duration
	delay, maxDelay    time.Duration
	tracked            int
	ipv6Bits           int
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, pairs: map[pairKey]*failures{}, ips: map[netip.Addr]*failures{}, logger: slog.New(slog.DiscardHandler)}
}

// useStore builds or keeps the shared store of c (nil: none), before
// configure applies the rest of the section; the store it replaces is
// closed once the requests using it are done.
func (t *throttle) useStore(c *config.ThrottleStore) error {
	t.mu.Lock()
	prev := t.store
	t.mu.Unlock()
	var next *throttleStore
	if c != nil {
		var err error
		if next, err = newThrottleStore(c, prev, t.logger, t.storeMetrics); err != nil {
			return err
		}
	}
	if next == prev {
		return nil
	}
	t.mu.Lock()
	t.store = next
	t.mu.Unlock()
	if next == nil {
		t.storeMetrics.up.Store(-1)
	}
	if prev != nil {
		time.AfterFunc(RequestTimeout, prev.close)
	}
	return nil
}

// closeStore closes the shared store's client (Server.Close).
func (t *throttle) closeStore() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.store.close()
	t.store = nil
}

// storeStatus is the shared store's readiness detail: "" when there is
// none or it answers.
func (t *throttle) storeStatus(ctx context.Context) string {
	t.mu.Lock()
	st := t.store
	t.mu.Unlock()
	if st == nil {
		return ""
	}
	return st.status(ctx)
}

// view returns, under mu, what a request's way through the shared store
// needs: its keys, the settings and the store (nil when there is none or
// the throttle is off).
func (t *throttle) view(account string, ip netip.Addr) (netip.Addr, pairKey, throttleSettings, *throttleStore) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ipk, pk := t.keys(account, ip)
	if t.disabled {
		return ipk, pk, t.set, nil
	}
	return ipk, pk, t.set, t.store
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
		ipv6Bits: c.IPv6PrefixLength(),
	}
}

// admit returns how long an attempt of account from ip must wait: while
// either key is blocked, or its failures and the checks in flight reach
// its limit. 0 means go ahead. It reserves nothing: a request whose
// password is not checked (a cached success) only asks.
func (t *throttle) admit(account string, ip netip.Addr) time.Duration {
	now := t.now()
	if t.pending.Load() == 0 && now.UnixNano() >= t.blockedUntil.Load() {
		return 0 // nothing in flight, no block reaches this far: no lock, no lookups
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.disabled {
		return 0
	}
	ipk, pk := t.keys(account, ip)
	return t.refusal(now, ipk, pk, account != "", nil)
}

// reserve counts a password check of account from ip as a failure in
// flight, unless the keys refuse another attempt: then wait is how long.
// ok reports whether a reservation was taken, to be ended by settle; it is
// false with wait 0 when the throttle is off.
//
// With a shared store, the store's records of both keys are read first
// (one round trip, bounded by its timeout) and count with this replica's
// reservations and records.
func (t *throttle) reserve(account string, ip netip.Addr) (wait time.Duration, ok bool) {
	now := t.now()
	withAccount := account != ""
	var shared *[2]sharedRecord
	if ipk, pk, _, st := t.view(account, ip); st != nil {
		if recs, ok := st.peek(storeKeys(ipk, pk, withAccount)); ok {
			shared = &recs
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.disabled {
		return 0, false
	}
	ipk, pk := t.keys(account, ip)
	if wait := t.refusal(now, ipk, pk, withAccount, shared); wait > 0 {
		return wait, false
	}
	ipf, pf := t.recordsFor(now, ipk, pk, withAccount)
	if pf != nil && shared != nil && shared[1].current(now, t.set.window) > 0 {
		pf.markShared(now) // a later cached success clears it in the store
	}
	ipf.inflight++
	if pf != nil {
		pf.inflight++
	}
	t.pending.Add(1)
	return 0, true
}

// verdict is how a password check ended, for settle.
type verdict int

const (
	verdictNone    verdict = iota // no answer about the credentials (503): the reservation is released
	verdictSuccess                // the account's record is cleared
	verdictFailure                // the reservation becomes a failure
)

// settle ends a reservation taken by reserve. With a shared store, a
// failure is counted there (before the reservation ends, so no other check
// finds neither) and only in memory when the store does not answer; a
// success clears the pair there too.
func (t *throttle) settle(account string, ip netip.Addr, v verdict) {
	now := t.now()
	inStore := t.share(account, ip, v, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending.Add(-1)
	ipk, pk := t.keys(account, ip)
	ipf, pf := t.ips[ipk], t.pairs[pk]
	for _, f := range []*failures{ipf, pf} {
		if f != nil && f.inflight > 0 {
			f.inflight--
		}
	}
	switch {
	case v == verdictFailure && inStore && pf != nil:
		pf.markShared(now)
	case v == verdictFailure && inStore:
	case v == verdictFailure && !t.disabled:
		if ipf != nil {
			t.record(ipf, t.set.ipLimit, now)
		}
		if pf != nil && account != "" {
			t.record(pf, t.set.pairLimit, now)
		}
	case v == verdictSuccess && pf != nil:
		pf.count, pf.until, pf.shared = 0, time.Time{}, false
	}
	if ipf.empty() {
		delete(t.ips, ipk)
	}
	if pf.empty() {
		delete(t.pairs, pk)
	}
	t.records.Store(int64(len(t.pairs) + len(t.ips)))
}

// fail records a failed login that held no reservation. account may be
// "" (a bad refresh token): then only the client counts.
func (t *throttle) fail(account string, ip netip.Addr) {
	now := t.now()
	inStore := t.share(account, ip, verdictFailure, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.disabled {
		return
	}
	ipk, pk := t.keys(account, ip)
	ipf, pf := t.recordsFor(now, ipk, pk, account != "")
	switch {
	case inStore && pf != nil:
		pf.markShared(now)
	case inStore:
	default:
		t.record(ipf, t.set.ipLimit, now)
		if pf != nil {
			t.record(pf, t.set.pairLimit, now)
		}
	}
	if ipf.empty() {
		delete(t.ips, ipk) // counted in the store only
	}
	t.records.Store(int64(len(t.pairs) + len(t.ips)))
}

// succeed clears the (account, client) record after a successful login
// that held no reservation (a cached success). Like the in-memory record,
// the shared one is cleared only when this replica knows of failures
// there: a cached success costs no round trip to the store otherwise.
func (t *throttle) succeed(account string, ip netip.Addr) {
	if t.records.Load() == 0 {
		return
	}
	t.mu.Lock()
	if len(t.pairs) == 0 {
		t.mu.Unlock()
		return
	}
	_, pk := t.keys(account, ip)
	var st *throttleStore
	if f := t.pairs[pk]; f != nil {
		if f.shared {
			st = t.store
		}
		f.count, f.until, f.shared = 0, time.Time{}, false
		if f.empty() {
			delete(t.pairs, pk)
		}
	}
	t.records.Store(int64(len(t.pairs) + len(t.ips)))
	t.mu.Unlock()
	if st != nil {
		st.clear(pk)
	}
}

// share counts a failure in the shared store, or clears the pair there
// after a success; true when the store took a failure.
func (t *throttle) share(account string, ip netip.Addr, v verdict, now time.Time) bool {
	if v == verdictNone {
		return false
	}
	ipk, pk, set, st := t.view(account, ip)
	switch {
	case st == nil:
		return false
	case v == verdictSuccess:
		if account != "" {
			st.clear(pk)
		}
		return false
	}
	return st.fail(now, set, storeKeys(ipk, pk, account != ""))
}

// attempt is one request's way through the throttle: the keys it counts
// under and its reservation, taken before its first password check.
type attempt struct {
	t        *throttle // nil: not throttled (anonymous, or the chain called directly)
	account  string
	ip       netip.Addr
	reserved bool
	wait     time.Duration // how long the throttle refused the check for
}

// errThrottled is what a password check returns when the throttle refused
// its reservation.
var errThrottled = errors.New("throttled")

// reserve takes the attempt's reservation, once; false when the throttle
// refuses the check.
func (a *attempt) reserve() bool {
	if a.t == nil || a.reserved {
		return true
	}
	wait, ok := a.t.reserve(a.account, a.ip)
	if wait > 0 {
		a.wait = wait
		return false
	}
	a.reserved = ok
	return true
}

// refused is the answer when reserve said no.
func (a *attempt) refused() *Error { return tooMany(a.wait) }

// tooMany is the answer for a blocked key.
func tooMany(wait time.Duration) *Error {
	secs := int((wait + time.Second - 1) / time.Second)
	return &Error{
		Status:     http.StatusTooManyRequests,
		Code:       CodeTooManyRequests,
		Message:    "too many failed logins; retry later",
		RetryAfter: max(secs, 1),
		Err:        fmt.Errorf("throttled for %v after failed logins or during checks in flight", wait.Round(time.Second)),
	}
}

// errMalformedAccount is the reason logged for an account name refused
// before any lookup; the name itself is in the log line's account.
var errMalformedAccount = errors.New("account name with white space at an end or a control character")
