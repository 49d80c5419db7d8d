package auth

import (
	"crypto/sha256"
	"encoding/binary"
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
// It holds the parsed request without its password, the identity, the
// access and the decisions, and lasts the cache TTL, and never longer than
// the credential cache entry its password check came from, so a changed
// password or group is seen no later than without it. Only answers that
// were issued are kept, and only those the static acl decided: acl_mongo's
// rules can change without a reload.
type grantCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	macs *macPool

	mu      sync.Mutex
	entries map[grantKey]*grant
}

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
}

// newGrantCache returns nil (no caching) when ttl is 0.
func newGrantCache(ttl time.Duration, max int, now func() time.Time) (*grantCache, error) {
	if ttl <= 0 {
		return nil, nil
	}
	macs, err := newMACPool()
	if err != nil {
		return nil, err
	}
	return &grantCache{ttl: ttl, max: max, now: now, macs: macs, entries: make(map[grantKey]*grant)}, nil
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
	g.mu.Lock()
	e := g.entries[k]
	g.mu.Unlock()
	if e == nil || !g.now().Before(e.expires) {
		return nil
	}
	return e
}

// put remembers e under k: until the TTL, or until, when it is not zero
// and sooner (the credential cache entry the identity came from).
func (g *grantCache) put(k grantKey, e *grant, until time.Time) {
	e.expires = g.now().Add(g.ttl)
	if !until.IsZero() && until.Before(e.expires) {
		e.expires = until
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.entries[k]; !ok && len(g.entries) >= g.max {
		g.evict()
	}
	g.entries[k] = e
}

// evict makes room. Called with g.mu held.
func (g *grantCache) evict() {
	evictFrom(g.entries, g.max, g.now(), func(e *grant) time.Time { return e.expires })
}

// len returns the number of entries (tests).
func (g *grantCache) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
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
