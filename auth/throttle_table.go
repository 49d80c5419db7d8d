package auth

import (
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The throttle's records and their keys. Every function here is called
// with the throttle's mu held.

type pairKey struct {
	account string // folded: foldAccount
	ip      netip.Addr
}

// failures is the record of one key.
type failures struct {
	count    int
	last     time.Time // the latest failure
	until    time.Time // blocked until then
	inflight int       // reservations: password checks under way
	shared   bool      // the shared store holds failures of this key (pairs only)
}

// markShared notes that the store holds failures of f, seen at now.
func (f *failures) markShared(now time.Time) {
	f.shared = true
	if f.count == 0 {
		f.last = now // kept until the window has passed (evict)
	}
}

// current returns the failures that still count at now: none once window
// has passed since the latest.
func (f *failures) current(now time.Time, window time.Duration) int {
	if now.Sub(f.last) > window {
		return 0
	}
	return f.count
}

// empty reports whether f holds nothing worth keeping (or is nil).
func (f *failures) empty() bool {
	return f == nil || (f.count == 0 && f.inflight == 0 && f.until.IsZero() && !f.shared)
}

// keys returns the client key and the (account, client) key of a request.
func (t *throttle) keys(account string, ip netip.Addr) (netip.Addr, pairKey) {
	c := clientKey(ip, t.set.ipv6Bits)
	return c, pairKey{foldAccount(account), c}
}

// clientKey is the address failures are counted under: an IPv4 address
// (IPv4-mapped IPv6 ones included) as it is, an IPv6 address cut to its
// first bits, zone dropped.
func clientKey(ip netip.Addr, ipv6Bits int) netip.Addr {
	ip = ip.Unmap()
	if !ip.Is6() {
		return ip // IPv4, or no address at all
	}
	p, err := ip.WithZone("").Prefix(ipv6Bits)
	if err != nil {
		return ip.WithZone("")
	}
	return p.Addr()
}

// foldAccount returns the throttle's key for an account name: the same for
// every spelling strings.EqualFold holds equal ("BOB", "Bob", "bob"), each
// letter replaced by the least rune of its case-folding orbit.
func foldAccount(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			return strings.Map(leastFold, name)
		}
	}
	return strings.ToUpper(name) // the least of an ASCII letter's orbit is its capital
}

func leastFold(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// refusal returns how long the keys refuse another attempt: the longer of
// their waits (the pair's only when there is an account). shared, when
// not nil, are the store's records of the client and the pair.
func (t *throttle) refusal(now time.Time, ipk netip.Addr, pk pairKey, withAccount bool, shared *[2]sharedRecord) time.Duration {
	var sh [2]sharedRecord
	if shared != nil {
		sh = *shared
	}
	wait := t.wait(t.ips[ipk], sh[0], t.set.ipLimit, now)
	if withAccount {
		wait = max(wait, t.wait(t.pairs[pk], sh[1], t.set.pairLimit, now))
	}
	return wait
}

// wait returns how long a key refuses another attempt: until its block
// (f's or the store's s) ends, or, while its failures (both counts) and
// this replica's checks in flight reach limit, the first delay. Past the
// limit and after the block, one check at a time may go.
func (t *throttle) wait(f *failures, s sharedRecord, limit int, now time.Time) time.Duration {
	until, count, inflight := s.until, s.current(now, t.set.window), 0
	if f != nil {
		if f.until.After(until) {
			until = f.until
		}
		count += f.current(now, t.set.window)
		inflight = f.inflight
	}
	switch {
	case now.Before(until):
		return until.Sub(now)
	case inflight > 0 && count+inflight >= limit:
		return t.set.delay
	}
	return 0
}

// recordsFor returns the records of the keys, made if missing, after
// making room for them; pf is nil without an account.
func (t *throttle) recordsFor(now time.Time, ipk netip.Addr, pk pairKey, withAccount bool) (ipf, pf *failures) {
	if len(t.ips)+len(t.pairs)+2 > t.set.tracked { // room for an IP and a pair record
		t.evict(now)
	}
	if ipf = t.ips[ipk]; ipf == nil {
		ipf = &failures{}
		t.ips[ipk] = ipf
	}
	if withAccount {
		if pf = t.pairs[pk]; pf == nil {
			pf = &failures{}
			t.pairs[pk] = pf
		}
	}
	t.records.Store(int64(len(t.pairs) + len(t.ips)))
	return ipf, pf
}

// record counts a failure in f. The limit-th failure within the window
// blocks the key for the first delay, each further one for twice the
// previous delay, up to the maximum.
func (t *throttle) record(f *failures, limit int, now time.Time) {
	f.count = f.current(now, t.set.window) + 1
	f.last = now
	if over := f.count - limit; over >= 0 {
		d := t.set.delay
		for i := 0; i < over && d < t.set.maxDelay; i++ {
			d *= 2
		}
		f.until = now.Add(min(d, t.set.maxDelay))
		if u := f.until.UnixNano(); u > t.blockedUntil.Load() {
			t.blockedUntil.Store(u) // under mu: no lost update
		}
	}
}

// evict makes room, never dropping a record with a check in flight:
// first every stale record (past its window and its block), then, while
// the table is above seven eighths of its bound, records that block
// nothing, and only then blocks. Pairs go before clients in each pass;
// within a pass the order is arbitrary (map order).
func (t *throttle) evict(now time.Time) {
	target := t.set.tracked - t.set.tracked/8 - 2
	over := func() bool { return len(t.pairs)+len(t.ips) > target }
	always := func() bool { return true }
	stale := func(f *failures) bool {
		return f.inflight == 0 && now.Sub(f.last) > t.set.window && !now.Before(f.until)
	}
	unblocked := func(f *failures) bool { return f.inflight == 0 && !now.Before(f.until) }
	idle := func(f *failures) bool { return f.inflight == 0 }
	dropFrom(t.pairs, stale, always)
	dropFrom(t.ips, stale, always)
	for _, drop := range []func(*failures) bool{unblocked, idle} {
		dropFrom(t.pairs, drop, over)
		dropFrom(t.ips, drop, over)
	}
}

// dropFrom deletes the records of m that drop selects, while more is true.
func dropFrom[K comparable](m map[K]*failures, drop func(*failures) bool, more func() bool) {
	for k, f := range m {
		if !more() {
			return
		}
		if drop(f) {
			delete(m, k)
		}
	}
}
