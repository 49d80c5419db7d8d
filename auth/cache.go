package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// credCache remembers successful password checks, so a repeat login costs
// an HMAC instead of a bcrypt comparison or a directory bind. An entry is
// keyed by (authenticator, account, HMAC-SHA256 of the password under a
// random key made for this cache): the password itself is never kept, and
// the key dies with the configuration (a reload starts a new cache).
// An entry lives for ttl, or, when the account carries its own expiry
// (authn.Account.Expires, a workload identity token's exp), until then.
// Failed checks are never cached. Concurrent identical checks run once.
type credCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	macs *macPool

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	flight  map[cacheKey]*flightCall
}

type cacheKey struct {
	backend, account string
	mac              [sha256.Size]byte
}

type cacheEntry struct {
	account authn.Account
	expires time.Time
}

// flightCall is a check in progress that identical requests wait for.
type flightCall struct {
	done    chan struct{}
	account authn.Account
	expires time.Time
	err     error
}

// newCredCache returns nil (no caching) when ttl is 0.
func newCredCache(ttl time.Duration, max int, now func() time.Time) (*credCache, error) {
	if ttl <= 0 {
		return nil, nil
	}
	macs, err := newMACPool()
	if err != nil {
		return nil, err
	}
	return &credCache{ttl: ttl, max: max, now: now, macs: macs,
		entries: make(map[cacheKey]cacheEntry), flight: make(map[cacheKey]*flightCall)}, nil
}

// mac is the HMAC of a password under the cache's key.
func (c *credCache) mac(password string) (sum [sha256.Size]byte) {
	m := c.macs.get()
	m.buf = append(m.buf, password...)
	m.sum(&sum)
	c.macs.put(m)
	return sum
}

// macPool hands out HMAC-SHA256 states keyed with one random key, each with
// a buffer to assemble its input in: hmac.New costs more than hashing a
// password, and writing a string to a hash.Hash copies it to the heap.
type macPool struct {
	key  []byte
	pool sync.Pool // of *macState
}

// macState is a keyed HMAC-SHA256 and its input buffer.
type macState struct {
	h   hash.Hash
	buf []byte
}

// newMACPool makes a pool with a new random key.
func newMACPool() (*macPool, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return &macPool{key: k}, nil
}

// get returns a state with an empty buffer.
func (p *macPool) get() *macState {
	if m, ok := p.pool.Get().(*macState); ok {
		return m
	}
	return &macState{h: hmac.New(sha256.New, p.key), buf: make([]byte, 0, 512)}
}

// sum writes the HMAC of the buffer to out.
func (m *macState) sum(out *[sha256.Size]byte) {
	m.h.Reset()
	_, _ = m.h.Write(m.buf)
	m.h.Sum(out[:0])
}

// put clears the buffer (it held a password or an Authorization header)
// and returns m to the pool; an outsized buffer is dropped.
func (p *macPool) put(m *macState) {
	clear(m.buf)
	if cap(m.buf) > 4<<10 {
		m.buf = make([]byte, 0, 512)
	}
	m.buf = m.buf[:0]
	p.pool.Put(m)
}

// answerSource says where credCache.do's answer came from.
type answerSource int

const (
	answerChecked answerSource = iota // this caller ran the check
	answerJoined                      // another caller's check in flight answered
	answerStored                      // a remembered success answered
)

// do runs check once for concurrent callers with the same key and
// remembers a success. src tells whether this caller ran check, waited
// for an identical one, or was answered from a remembered success;
// expires is when the cached success stops being used. The account's
// labels are shared by every caller and the cache: nobody may modify them
// (the ACL only reads them).
func (c *credCache) do(k cacheKey, check func() (authn.Account, error)) (account authn.Account, expires time.Time, src answerSource, err error) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		return e.account, e.expires, answerStored, nil
	}
	if f, ok := c.flight[k]; ok {
		c.mu.Unlock()
		<-f.done
		return f.account, f.expires, answerJoined, f.err
	}
	f := &flightCall{done: make(chan struct{})}
	c.flight[k] = f
	c.mu.Unlock()

	f.account, f.err = check()

	c.mu.Lock()
	delete(c.flight, k)
	if f.err == nil && k.backend != unknownBackend {
		if len(c.entries) >= c.max {
			c.evict()
		}
		f.expires = c.now().Add(c.ttl)
		if e := f.account.Expires; !e.IsZero() {
			// A credential with its own expiry (a workload identity
			// token) is vouched for until then, not past it, whatever
			// the ttl: a job pulling many layers verifies it once.
			f.expires = e
		}
		c.entries[k] = cacheEntry{account: f.account, expires: f.expires}
	}
	c.mu.Unlock()
	close(f.done)
	return f.account, f.expires, answerChecked, f.err
}

// evict makes room. Called with c.mu held.
func (c *credCache) evict() {
	evictFrom(c.entries, c.max, c.now(), func(e cacheEntry) time.Time { return e.expires })
}

// evictFrom makes room in m, a cache bounded to max entries: expired
// entries go first; if none, an arbitrary eighth of the entries (map order
// is random).
func evictFrom[K comparable, V any](m map[K]V, max int, now time.Time, expires func(V) time.Time) {
	for k, e := range m {
		if !now.Before(expires(e)) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < max-max/8 {
			break
		}
		delete(m, k)
	}
}

// len returns the number of entries (tests).
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
