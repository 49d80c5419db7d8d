package acl

import (
	"regexp"
	"sync"
)

// regexCache keeps the regexes built by substituting placeholders, so that
// a returning account does not recompile its rule's regex. It holds two
// generations of at most size/2 entries each: lookups hit either, an entry
// found in the old generation is moved to the current one, and when the
// current one is full it becomes the old one (dropping the previous old
// one). That bounds the cache to size entries, approximates LRU, and lets
// hits in the current generation take only a read lock.
//
// A substituted regex that does not compile (a value made a repeat count
// too large, or invalid UTF-8) is cached as nil, which matches nothing.
type regexCache struct {
	mu       sync.RWMutex
	cur, old map[string]*regexp.Regexp
	gen      int // entries per generation
}

func newRegexCache(size int) *regexCache {
	gen := max(size/2, 1)
	return &regexCache{cur: make(map[string]*regexp.Regexp, gen), gen: gen}
}

// get returns the compiled src, or nil when it does not compile.
func (c *regexCache) get(src []byte) *regexp.Regexp {
	c.mu.RLock()
	re, ok := c.cur[string(src)]
	if ok {
		c.mu.RUnlock()
		return re
	}
	re, ok = c.old[string(src)]
	c.mu.RUnlock()
	if !ok {
		re, _ = regexp.Compile(string(src))
	}
	key := string(src)
	c.mu.Lock()
	if len(c.cur) >= c.gen {
		c.old, c.cur = c.cur, make(map[string]*regexp.Regexp, c.gen)
	}
	c.cur[key] = re
	c.mu.Unlock()
	return re
}

// len returns the number of cached entries.
func (c *regexCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cur) + len(c.old)
}
