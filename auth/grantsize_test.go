package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/testutil"
	"github.com/gatehouse/gatehouse/token"
)

// heapAlloc is the live heap after a collection.
func heapAlloc() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// largeQuery is a GET query of n scopes on distinct names of about 215
// bytes under public/ (which anonymous requests may pull), distinct for i.
func largeQuery(i, n int) string {
	var b strings.Builder
	b.WriteString("service=registry")
	for j := range n {
		fmt.Fprintf(&b, "&scope=repository:public/%07d-%02d-%s:pull", i, j, strings.Repeat("x", 200))
	}
	return b.String()
}

// TestGrantCacheFloodMemory floods the token endpoint with distinct large
// anonymous requests, each of which the grant cache would remember. The
// live heap must stay under the byte bound plus a constant, requests too
// large for an entry must not be remembered, and the memory must come
// back once the entries have expired.
func TestGrantCacheFloodMemory(t *testing.T) {
	testutil.SkipIfShort(t, "floods the server with 1900 requests")
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	env := newOAuthEnv(t)
	// max_bytes is left at its default; max_entries is raised so that
	// only the byte bound can hold the flood.
	env.top = "cache: {ttl: 1m, max_entries: 5000}\n"
	s := env.server("", "", WithClock(func() time.Time { return now }))
	const (
		bound = config.DefaultCacheMaxBytes
		slack = 8 << 20 // the server's own allocations, pools, GC timing
		ip    = "198.51.100.1"
	)
	if r := getAt(s, ip, largeQuery(0, 1), "-", ""); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	before := heapAlloc()
	// 1500 requests of 32 scopes (about 25 KB an entry: 37 MB together)
	// and 400 of 64 (about 50 KB, more than an entry may hold).
	for i := 1; i <= 1900; i++ {
		n := 32
		if i%5 == 0 {
			n = 64
		}
		if r := getAt(s, ip, largeQuery(i, n), "-", ""); r.status != 200 {
			t.Fatalf("request %d: status %d: %s", i, r.status, r.raw)
		}
	}
	grown := heapAlloc() - before
	entries, bytes := s.state.Load().grants.usage()
	t.Logf("heap grew %d KiB; %d entries, %d KiB estimated", grown>>10, entries, bytes>>10)
	if grown > bound+slack {
		t.Fatalf("the heap grew by %d MiB for %d grant cache entries: more than max_bytes (%d MiB) and %d MiB",
			grown>>20, entries, bound>>20, slack>>20)
	}
	if bytes > bound || bytes < bound/2 {
		t.Fatalf("the grant cache holds %d bytes: want the bound (%d) reached and kept", bytes, bound)
	}
	if got, _ := strconv.ParseFloat(metric(t, s, "gatehouse_grant_cache_bytes"), 64); got != float64(bytes) {
		t.Fatalf("gatehouse_grant_cache_bytes %v, want %d", got, bytes)
	}
	// A request too large for an entry is answered in full every time.
	hits := metric(t, s, "gatehouse_grant_cache_hits_total")
	if r := getAt(s, ip, largeQuery(1900, 64), "-", ""); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if got := metric(t, s, "gatehouse_grant_cache_hits_total"); got != hits {
		t.Fatalf("a request of 64 long scopes was answered from the grant cache (%s hits, had %s)", got, hits)
	}
	// Past the TTL, the next request frees the memory of the expired
	// entries.
	now = now.Add(time.Minute + 15*time.Second)
	if r := getAt(s, ip, largeQuery(0, 1), "-", ""); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if grown := heapAlloc() - before; grown > slack {
		t.Fatalf("the heap is still %d MiB larger after the entries expired", grown>>20)
	}
	if entries, _ := s.state.Load().grants.usage(); entries > 1 {
		t.Fatalf("%d entries left after the TTL", entries)
	}
}

// grantShape is a request, its identity and answer, as serveToken has
// them before remembering.
type grantShape struct {
	req       *Request
	id        identity
	access    []token.Access
	decisions []Decision
}

// shapeOf parses a GET query and decides it as authorize would, with
// every action granted (or, with partial, only pull).
func shapeOf(t *testing.T, query, user, pass string, labels authn.Labels, partial bool) grantShape {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/auth?"+query, nil)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	req, e := parseRequest(r, clientIPConfig{}, false)
	if e != nil {
		t.Fatal(e)
	}
	sh := grantShape{req: req, id: identity{Account: req.Account, Labels: labels, Backend: "static"}}
	for _, sc := range req.Scopes {
		granted := append([]string(nil), sc.Actions...)
		if partial {
			granted = []string{"pull"}
		}
		scope := sc.String()
		sh.access = append(sh.access, token.Access{Type: sc.Type, Name: sc.Name, Actions: granted})
		sh.decisions = append(sh.decisions, Decision{Scope: scope, Granted: grantedList(scope, sc.Actions, granted), Rule: 2, Comment: "rule"})
	}
	return sh
}

// TestGrantSize checks that an entry is a faithful copy that keeps nothing
// else alive (not the query string its strings were cut from), and that
// its size estimate is honest: at least the heap it holds, and not more
// than twice that.
func TestGrantSize(t *testing.T) {
	tests := []struct {
		name    string
		scopes  int
		user    string
		labels  bool
		partial bool
	}{
		{"anonymous, one scope", 1, "", false, false},
		{"anonymous, 8 long scopes", 8, "", false, false},
		{"anonymous, 56 long scopes: near the query limit", 56, "", false, false},
		{"an account with labels", 3, "alice", true, false},
		{"partly granted", 16, "alice", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 4000 / tt.scopes
			kept := make([]*grant, n)
			estimate := 0
			labelsOf := func(i int) authn.Labels {
				if !tt.labels {
					return nil
				}
				return authn.Labels{"team": {fmt.Sprint("blue", i), "green"}, "group": {"dev"}}
			}
			// A parameter nobody reads: the entry must not keep it.
			query := func(i int) string { return largeQuery(i, tt.scopes) + ",push&padding=" + strings.Repeat("p", 2000) }
			// The first shape is checked for faithfulness.
			sh := shapeOf(t, query(0), tt.user, "s3cret", labelsOf(0), tt.partial)
			g := newGrant(sh.req, sh.id, sh.access, sh.decisions, true)
			want := *sh.req
			want.Password = ""
			if !reflect.DeepEqual(*g.req, want) || !reflect.DeepEqual(g.id, sh.id) ||
				!reflect.DeepEqual(g.access, sh.access) || !reflect.DeepEqual(g.decisions, sh.decisions) {
				t.Fatalf("the copy differs:\n%+v\n%+v", g, sh)
			}
			before := heapAlloc()
			for i := range n {
				sh := shapeOf(t, query(i), tt.user, "s3cret", labelsOf(i), tt.partial)
				kept[i] = newGrant(sh.req, sh.id, sh.access, sh.decisions, true)
				estimate += kept[i].size - sizeMapSlot // no map here
			}
			held := heapAlloc() - before
			runtime.KeepAlive(kept)
			t.Logf("%d bytes held, %d estimated per entry", held/int64(n), estimate/n)
			if int64(estimate) < held {
				t.Fatalf("estimate %d bytes per entry, but each holds %d", estimate/n, held/int64(n))
			}
			if int64(estimate) > 2*held {
				t.Fatalf("estimate %d bytes per entry, more than twice the %d each holds", estimate/n, held/int64(n))
			}
		})
	}
}

// keyOf is a distinct key for i.
func keyOf(g *grantCache, i int) grantKey {
	k, _ := g.key(httptest.NewRequest(http.MethodGet, fmt.Sprintf("/auth?n=%d", i), nil), netip.Addr{})
	return k
}

// checkBytes fails unless the cache's byte count is the sum of its
// entries' sizes and within max.
func checkBytes(t *testing.T, g *grantCache, step string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	sum := 0
	for _, e := range g.entries {
		sum += e.size
	}
	if sum != g.bytes {
		t.Fatalf("%s: the cache counts %d bytes, its entries hold %d", step, g.bytes, sum)
	}
	if g.bytes > g.maxBytes {
		t.Fatalf("%s: %d bytes, bound is %d", step, g.bytes, g.maxBytes)
	}
}

func TestGrantCacheBytes(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	const maxBytes = 256 << 10 // entries up to 4 KiB
	g, _ := newGrantCache(time.Minute, 10000, maxBytes, func() time.Time { return now })
	if g.maxEntry != 4<<10 {
		t.Fatalf("largest entry %d, want 4 KiB", g.maxEntry)
	}
	steps := []struct {
		name        string
		n, size     int
		advance     time.Duration
		wantEntries int // after the step; -1: any
		wantKept    bool
	}{
		{"small entries fill the bound", 200, 1000, 0, 200, true},
		{"more: the oldest bytes make room", 200, 1000, 0, -1, true},
		{"one larger than an entry may be: not kept", 1, 4<<10 + 1, 0, -1, false},
		{"the largest allowed", 50, 4 << 10, 0, -1, true},
		{"past the TTL, one put sweeps the rest", 1, 1000, time.Minute, 1, true},
	}
	next := 0
	for _, st := range steps {
		now = now.Add(st.advance)
		for range st.n {
			k := keyOf(g, next)
			next++
			if kept := g.put(k, &grant{req: &Request{}, size: st.size}, time.Time{}); kept != st.wantKept {
				t.Fatalf("%s: put reports kept %v", st.name, kept)
			}
			if found := g.get(k) != nil; found != st.wantKept {
				t.Fatalf("%s: found %v just after the put", st.name, found)
			}
			checkBytes(t, g, st.name)
		}
		if n, _ := g.usage(); st.wantEntries >= 0 && n != st.wantEntries {
			t.Fatalf("%s: %d entries, want %d", st.name, n, st.wantEntries)
		}
	}
	// Replacing an entry counts its bytes once.
	k := keyOf(g, 0)
	g.put(k, &grant{req: &Request{}, size: 3000}, time.Time{})
	g.put(k, &grant{req: &Request{}, size: 2000}, time.Time{})
	checkBytes(t, g, "replaced")
	// An expired entry is dropped by the get that finds it.
	now = now.Add(10 * time.Second)
	k2 := keyOf(g, -1)
	g.put(k2, &grant{req: &Request{}, size: 1000}, now.Add(time.Second))
	now = now.Add(time.Second)
	if g.get(k2) != nil {
		t.Fatal("an expired entry was found")
	}
	checkBytes(t, g, "expired get")
}

// TestGrantCacheSweepShrinks checks that expired entries go without any
// put, on the next get, and that the map is made anew when it has shrunk:
// the heap comes back.
func TestGrantCacheSweepShrinks(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	g, _ := newGrantCache(time.Minute, 1<<20, 1<<30, func() time.Time { return now })
	before := heapAlloc()
	const n = 50000
	e := &grant{req: &Request{}, size: 1} // one for all: what is measured is the map
	for i := range n {
		g.put(keyOf(g, i), e, time.Time{})
	}
	full := heapAlloc() - before
	now = now.Add(time.Minute + 15*time.Second)
	if g.get(keyOf(g, -1)) != nil {
		t.Fatal("found a key never put")
	}
	if entries, bytes := g.usage(); entries != 0 || bytes != 0 {
		t.Fatalf("%d entries, %d bytes after the TTL, with no put", entries, bytes)
	}
	left := heapAlloc() - before
	runtime.KeepAlive(g)
	t.Logf("%d entries held %d KiB; %d KiB after they expired", n, full>>10, left>>10)
	if left > full/4 {
		t.Fatalf("%d KiB of %d still held after every entry expired: the map kept its tables", left>>10, full>>10)
	}
}
