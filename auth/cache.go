package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// credCache remembers successful password checks, so a repeat login costs
// an HMAC instead of a bcrypt comparison or a directory bind. An entry is
// keyed by (authenticator, account, HMAC-SHA256 of the password under a
// random key made for this cache): the password itself is never kept, and
// the key dies with the configuration (a reload starts a new cache).
// Failed checks are never cached. Concurrent identical checks run once.
type credCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	hkey []byte
	macs sync.Pool // of hmac.New(sha256.New, hkey)

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	flight  map[cacheKey]*flightCall
}

type cacheKey struct {
	backend, account string
	mac              [sha256.Size]byte
}

type cacheEntry struct {
	labels  authn.Labels
	expires time.Time
}

// flightCall is a check in progress that identical requests wait for.
type flightCall struct {
	done   chan struct{}
	labels authn.Labels
	err    error
}

// newCredCache returns nil (no caching) when ttl is 0.
func newCredCache(ttl time.Duration, max int, now func() time.Time) (*credCache, error) {
	if ttl <= 0 {
		return nil, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return &credCache{ttl: ttl, max: max, now: now, hkey: k,
		entries: make(map[cacheKey]cacheEntry), flight: make(map[cacheKey]*flightCall)}, nil
}

// mac is the HMAC of a password under the cache's key. The keyed HMAC
// states are pooled: hmac.New costs more than hashing a password.
func (c *credCache) mac(password string) (sum [sha256.Size]byte) {
	m, ok := c.macs.Get().(hash.Hash)
	if ok {
		m.Reset()
	} else {
		m = hmac.New(sha256.New, c.hkey)
	}
	_, _ = io.WriteString(m, password)
	m.Sum(sum[:0])
	c.macs.Put(m)
	return sum
}

// do runs check once for concurrent callers with the same key and
// remembers a success. shared reports whether the answer came from the
// cache or from another caller's check rather than from running check.
// The labels are shared by every caller and the cache: nobody may modify
// them (the ACL only reads them).
func (c *credCache) do(k cacheKey, check func() (authn.Labels, error)) (labels authn.Labels, shared bool, err error) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		return e.labels, true, nil
	}
	if f, ok := c.flight[k]; ok {
		c.mu.Unlock()
		<-f.done
		return f.labels, true, f.err
	}
	f := &flightCall{done: make(chan struct{})}
	c.flight[k] = f
	c.mu.Unlock()

	f.labels, f.err = check()

	c.mu.Lock()
	delete(c.flight, k)
	if f.err == nil {
		if len(c.entries) >= c.max {
			c.evict()
		}
		c.entries[k] = cacheEntry{labels: f.labels, expires: c.now().Add(c.ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return f.labels, false, f.err
}

// evict makes room: expired entries go first; if none, an arbitrary eighth
// of the entries (map order is random). Called with c.mu held.
func (c *credCache) evict() {
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max-c.max/8 {
			break
		}
		delete(c.entries, k)
	}
}

// len returns the number of entries (tests).
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
