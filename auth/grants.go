package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// grantCache remembers what a GET token request was granted, so that the
// same request again (the same Authorization header, query string and
// client address: what a Docker client sends for every pull of the same
// image) costs one HMAC and one signature: no parsing, no password check,
// no ACL. It lives and dies with the configuration, like the credential
// cache, and is on when that is.
//
// An entry is keyed by the HMAC-SHA256, under a random key made for this
// cache, of the three inputs: the credentials themselves are never kept.
// It holds a compact copy (newGrant) of the parsed request without its
// password, the identity, the access and the decisions, and lasts the
// cache TTL, and never longer than the credential cache entry its password
// check came from, so a changed password or group is seen no later than
// without it. Only answers that were issued are kept, and only those the
// static acl decided: acl_mongo's rules can change without a reload.
//
// It is bounded in entries (max) and in bytes (maxBytes, by each entry's
// estimate, grant.size); an entry over maxEntry (maxBytes/1024, at least
// 4 KiB) is not remembered at all, so a few large requests cannot push out
// thousands of usual ones. Expired entries are dropped by the first get or
// put a quarter TTL or more after the last sweep, and by a get that finds
// one; when the map has shrunk to a quarter of its peak it is made anew,
// since a Go map never gives back its tables.
type grantCache struct {
	ttl      time.Duration
	max      int
	maxBytes int
	maxEntry int
	now      func() time.Time
	macs     *macPool

	mu        sync.Mutex
	entries   map[grantKey]*grant
	bytes     int       // sum of the entries' sizes
	peak      int       // most entries since the map was made
	nextSweep time.Time // when expired entries are next looked for
}

// Limits of the grant cache's byte accounting.
const (
	// grantEntryShare: an entry larger than maxBytes/grantEntryShare, or
	// grantMinEntry if that is more, is not remembered.
	grantEntryShare = 1024
	grantMinEntry   = 4 << 10
	// grantMinRebuild is the peak below which a shrunk map is kept.
	grantMinRebuild = 1024
)

// grantKey is the HMAC of a request's Authorization header, query string
// and client address.
type grantKey [sha256.Size]byte

// grant is what one request was given: everything the token endpoint needs
// after parsing, authentication and authorization.
type grant struct {
	req       *Request // Password cleared; shared, read-only
	id        identity
	access    []token.Access
	decisions []Decision
	complete  bool
	expires   time.Time
	size      int // estimated bytes held, map slot included (newGrant)
}

// newGrantCache returns nil (no caching) when ttl is 0. It holds at most
// maxEntries entries and maxBytes bytes.
func newGrantCache(ttl time.Duration, maxEntries int, maxBytes int64, now func() time.Time) (*grantCache, error) {
	if ttl <= 0 {
		return nil, nil
	}
	macs, err := newMACPool()
	if err != nil {
		return nil, err
	}
	mb := int(min(maxBytes, math.MaxInt))
	return &grantCache{ttl: ttl, max: max(maxEntries, 1), maxBytes: mb, now: now, macs: macs,
		maxEntry: max(mb/grantEntryShare, min(grantMinEntry, mb/16)), // mb/16: room for 16 even when tiny
		entries:  make(map[grantKey]*grant)}, nil
}

// key computes the key of a GET request from client address ip. ok is false
// when the request cannot be cached: more than one Authorization header.
// Each input is length-prefixed, so no two different triples collide by
// concatenation.
func (g *grantCache) key(r *http.Request, ip netip.Addr) (k grantKey, ok bool) {
	var auth string
	switch v := r.Header["Authorization"]; len(v) {
	case 0:
	case 1:
		auth = v[0]
	default:
		return k, false
	}
	m := g.macs.get()
	b := binary.BigEndian.AppendUint64(m.buf, uint64(len(auth)))
	b = binary.BigEndian.AppendUint64(b, uint64(len(r.URL.RawQuery)))
	b = append(b, auth...)
	b = append(b, r.URL.RawQuery...)
	m.buf, _ = ip.AppendBinary(b) // 0, 4 or 16 bytes, then the zone: the last input needs no length
	m.sum((*[sha256.Size]byte)(&k))
	g.macs.put(m)
	return k, true
}

// get returns the live entry for k, or nil.
func (g *grantCache) get(k grantKey) *grant {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepIfDue(now)
	e := g.entries[k]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		g.remove(k, e)
		return nil
	}
	return e
}

// put remembers e under k: until the TTL, or until, when it is not zero
// and sooner (the credential cache entry the identity came from). An
// entry over maxEntry bytes is not remembered; it reports whether e was.
func (g *grantCache) put(k grantKey, e *grant, until time.Time) bool {
	if e.size > g.maxEntry {
		return false
	}
	now := g.now()
	e.expires = now.Add(g.ttl)
	if !until.IsZero() && until.Before(e.expires) {
		e.expires = until
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepIfDue(now)
	if old := g.entries[k]; old != nil {
		g.remove(k, old)
	}
	if len(g.entries) >= g.max || g.bytes+e.size > g.maxBytes {
		g.evict(now, e.size)
	}
	g.entries[k] = e
	g.bytes += e.size
	g.peak = max(g.peak, len(g.entries))
	return true
}

// remove deletes k, whose entry is e. Called with g.mu held.
func (g *grantCache) remove(k grantKey, e *grant) {
	delete(g.entries, k)
	g.bytes -= e.size
}

// sweepIfDue drops the expired entries when the last sweep is a quarter
// TTL old. Called with g.mu held.
func (g *grantCache) sweepIfDue(now time.Time) {
	if now.Before(g.nextSweep) {
		return
	}
	g.sweep(now)
}

// sweep drops the expired entries, and rebuilds the map when it has
// shrunk to a quarter of its peak. Called with g.mu held.
func (g *grantCache) sweep(now time.Time) {
	g.nextSweep = now.Add(max(g.ttl/4, time.Millisecond))
	for k, e := range g.entries {
		if !now.Before(e.expires) {
			g.remove(k, e)
		}
	}
	g.shrink()
}

// evict makes room for an entry of size bytes: expired entries go first;
// then arbitrary ones (map order is random) until an eighth of each bound
// is free. Called with g.mu held.
func (g *grantCache) evict(now time.Time, size int) {
	g.sweep(now)
	for k, e := range g.entries {
		if len(g.entries) < g.max-g.max/8 && g.bytes+size <= g.maxBytes-g.maxBytes/8 {
			break
		}
		g.remove(k, e)
	}
	g.shrink()
}

// shrink rebuilds the map when it holds a quarter of its peak or less: a
// Go map keeps the tables of its largest size. Called with g.mu held.
func (g *grantCache) shrink() {
	if g.peak < grantMinRebuild || len(g.entries) > g.peak/4 {
		return
	}
	m := make(map[grantKey]*grant, len(g.entries)) // not maps.Clone: it keeps the tables' size
	for k, e := range g.entries {
		m[k] = e
	}
	g.entries = m
	g.peak = len(g.entries)
}

// len returns the number of entries (tests).
func (g *grantCache) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}

// usage returns the number of entries and the bytes they hold.
func (g *grantCache) usage() (entries, bytes int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries), g.bytes
}

// cacheable reports whether an answer may be remembered: a GET with the
// password grant (or anonymous) that was issued, every scope decided by
// the static acl, and, for an account with a password, an identity that
// came through the credential cache.
func cacheable(req *Request, id *identity, decisions []Decision) bool {
	if req.OAuth2 || req.Grant != GrantPassword || (req.HasCredentials && id.until.IsZero()) {
		return false
	}
	for i := range decisions {
		if decisions[i].ACL != "" {
			return false
		}
	}
	return true
}

// cachedGrant looks r up in the grant cache: it returns the grant that
// answers r, or nil and the key to remember r's answer under, with
// remember false when r is not to be remembered (malformed: the full path
// answers it) or is throttled (the full path answers 429).
func (s *Server) cachedGrant(r *http.Request, st *state) (g *grant, key grantKey, remember bool) {
	if headerLength(r) > MaxHeaderLength || len(r.URL.RawQuery) > MaxQueryLength {
		return nil, key, false
	}
	ip, e := clientIP(r, st.ipc)
	if e != nil {
		return nil, key, false
	}
	if key, remember = st.grants.key(r, ip); !remember {
		return nil, key, false
	}
	if g = st.grants.get(key); g != nil && g.req.HasCredentials && s.throttle.admit(g.id.Account, ip) > 0 {
		return nil, key, false
	}
	return g, key, true
}

// serveGrant answers a request the grant cache knows: a new token for
// what the same request was granted before.
func (s *Server) serveGrant(w http.ResponseWriter, r *http.Request, st *state, g *grant, start time.Time) {
	if g.req.HasCredentials {
		s.throttle.succeed(g.id.Account, g.req.IP)
	}
	s.metrics.grantHit.Inc()
	s.issue(r.Context(), w, r, st, g, start)
}
