package auth

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// metric returns the value of the series line that starts with series
// (name and labels), or "" when there is none.
func metric(t *testing.T, s *Server, series string) string {
	t.Helper()
	m := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw
	sc := bufio.NewScanner(strings.NewReader(m))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v
		}
	}
	return ""
}

func TestGrantCache(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var logs testutil.SyncBuffer
	env := newOAuthEnv(t)
	env.top = "cache: {ttl: 1m}\n"
	s := env.server("", "", WithClock(clock), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	const (
		ip1, ip2   = "198.51.100.1", "198.51.100.2"
		pull, push = "service=registry&scope=repository:alice/app:pull", "service=registry&scope=repository:alice/app:push"
		other      = "service=registry&scope=repository:alice/other:pull"
	)
	const checks = `gatehouse_stage_duration_seconds_count{backend="static",stage="authn"}`
	steps := []struct {
		name        string
		advance     time.Duration
		ip, query   string
		user, pass  string
		wantStatus  int
		wantHits    string // gatehouse_grant_cache_hits_total after the request
		wantChecks  string // password checks made by the static backend so far
		wantGranted string
	}{
		{"first request: parsed, checked, decided", 0, ip1, pull, "alice", "alicepw", 200, "0", "1", "pull"},
		{"the same request: from the grant cache", 0, ip1, pull, "alice", "alicepw", 200, "1", "1", "pull"},
		{"another client address: not the same request", 0, ip2, pull, "alice", "alicepw", 200, "1", "1", "pull"},
		{"another scope: not the same request", 0, ip1, push, "alice", "alicepw", 200, "1", "1", "push"},
		{"a wrong password is never answered from it", 0, ip1, pull, "alice", "wrong", 401, "1", "2", ""},
		{"the right one still is", 0, ip1, pull, "alice", "alicepw", 200, "2", "2", "pull"},
		{"anonymous: checked once", 0, ip1, "service=registry&scope=repository:public/x:pull", "-", "", 200, "2", "3", "pull"},
		{"anonymous again: cached", 0, ip1, "service=registry&scope=repository:public/x:pull", "-", "", 200, "3", "3", "pull"},
		// A grant remembered 30 s after the password check lasts only as
		// long as the credential cache vouches for that check.
		{"30 s on, a new request: credential cache", 30 * time.Second, ip1, other, "alice", "alicepw", 200, "3", "3", "pull"},
		{"59 s after the check: cached", 29 * time.Second, ip1, other, "alice", "alicepw", 200, "4", "3", "pull"},
		{"61 s after the check: checked again", 2 * time.Second, ip1, other, "alice", "alicepw", 200, "4", "4", "pull"},
		{"the first request's grant has expired too", 0, ip1, pull, "alice", "alicepw", 200, "4", "4", "pull"},
	}
	var lastToken string
	for _, st := range steps {
		now = now.Add(st.advance)
		r := getAt(s, st.ip, st.query, st.user, st.pass)
		if r.status != st.wantStatus {
			t.Fatalf("%s: status %d, want %d: %s", st.name, r.status, st.wantStatus, r.raw)
		}
		if got := metric(t, s, "gatehouse_grant_cache_hits_total"); got != st.wantHits {
			t.Fatalf("%s: %s grant cache hits, want %s", st.name, got, st.wantHits)
		}
		if got := metric(t, s, checks); got != st.wantChecks {
			t.Fatalf("%s: %s password checks, want %s", st.name, got, st.wantChecks)
		}
		if r.status != 200 {
			continue
		}
		c := claimsOf(t, r.body.Token)
		var granted []string
		for _, a := range c.Access {
			granted = append(granted, a.Actions...)
		}
		if got := strings.Join(granted, ","); got != st.wantGranted {
			t.Fatalf("%s: granted %q, want %q", st.name, got, st.wantGranted)
		}
		if r.body.Token == lastToken {
			t.Fatalf("%s: the same token twice: a cached grant is signed anew", st.name)
		}
		lastToken = r.body.Token
	}
	// Every issued token has its audit line, cached or not.
	issued := 0
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == auditMessage {
			issued++
			if line["account"] == nil || line["decisions"] == nil {
				t.Errorf("audit line without account or decisions: %s", l)
			}
		}
	}
	if want := len(steps) - 1; issued != want {
		t.Errorf("%d audit lines, want one per issued token (%d)", issued, want)
	}
	// What is kept holds no password.
	g := s.state.Load().grants
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.entries) == 0 {
		t.Fatal("no entries")
	}
	for _, e := range g.entries {
		if e.req.Password != "" {
			t.Fatalf("a grant keeps the password of %q", e.id.Account)
		}
	}
}

func TestGrantCacheHonoursThrottle(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 2, ip_failures: 10, delay: 1m, max_delay: 1m, window: 1m}\n"
	s := env.server("", "")
	const ip, q = "198.51.100.7", "service=registry&scope=repository:alice/app:pull"
	for i, want := range []int{200, 200, 401, 401, 429, 429} {
		pass := "alicepw"
		if i >= 2 && i < 5 {
			pass = "guess"
		}
		if r := getAt(s, ip, q, "alice", pass); r.status != want {
			t.Fatalf("request %d: status %d, want %d", i, r.status, want)
		}
	}
	if got := metric(t, s, "gatehouse_grant_cache_hits_total"); got != "1" {
		t.Fatalf("%s grant cache hits, want 1: a blocked account is not served from the cache", got)
	}
}

func TestGrantCacheConcurrent(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if r := getAt(s, "192.0.2.1", "service=registry&scope=repository:alice/app:pull,push", "alice", "alicepw"); r.status != 200 ||
					len(claimsOf(t, r.body.Token).Access) != 1 {
					t.Errorf("status %d: %s", r.status, r.raw)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := metric(t, s, "gatehouse_grant_cache_hits_total"); got == "" || got == "0" {
		t.Fatalf("%q grant cache hits after 200 identical requests", got)
	}
}

func TestGrantKey(t *testing.T) {
	g, err := newGrantCache(time.Minute, 10, config.DefaultCacheMaxBytes, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	req := func(auth []string, query string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/auth?"+query, nil)
		r.Header["Authorization"] = auth
		return r
	}
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	base, ok := g.key(req([]string{"Basic YTpi"}, "service=r"), v4)
	if !ok {
		t.Fatal("one Authorization header must be cacheable")
	}
	if again, _ := g.key(req([]string{"Basic YTpi"}, "service=r"), v4); again != base {
		t.Fatal("the same request must have the same key")
	}
	different := []struct {
		name  string
		auth  []string
		query string
		ip    netip.Addr
	}{
		{"another header", []string{"Basic YTpj"}, "service=r", v4},
		{"no header", nil, "service=r", v4},
		{"another query", []string{"Basic YTpi"}, "service=s", v4},
		{"bytes moved from header to query", []string{"Basic YTp"}, "iservice=r", v4},
		{"another address", []string{"Basic YTpi"}, "service=r", v6},
		{"no address", []string{"Basic YTpi"}, "service=r", netip.Addr{}},
		{"a zone", []string{"Basic YTpi"}, "service=r", v6.WithZone("eth0")},
	}
	seen := map[grantKey]string{}
	for _, d := range different {
		k, ok := g.key(req(d.auth, d.query), d.ip)
		if !ok {
			t.Fatalf("%s: not cacheable", d.name)
		}
		if k == base {
			t.Errorf("%s: same key as the base request", d.name)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("%s: same key as %s", d.name, prev)
		}
		seen[k] = d.name
	}
	if _, ok := g.key(req([]string{"Basic YTpi", "Basic YTpj"}, "service=r"), v4); ok {
		t.Fatal("two Authorization headers must not be cacheable")
	}
}

func TestGrantCacheBounded(t *testing.T) {
	now := time.Now()
	g, _ := newGrantCache(time.Minute, 16, config.DefaultCacheMaxBytes, func() time.Time { return now })
	for i := range 100 {
		k, _ := g.key(httptest.NewRequest(http.MethodGet, "/auth?n="+strings.Repeat("x", i), nil), netip.Addr{})
		g.put(k, &grant{req: &Request{}}, time.Time{})
		if n := g.len(); n > 16 {
			t.Fatalf("%d entries, bound is 16", n)
		}
	}
	k, _ := g.key(httptest.NewRequest(http.MethodGet, "/auth?x", nil), netip.Addr{})
	g.put(k, &grant{req: &Request{}}, now.Add(time.Second))
	if g.get(k) == nil {
		t.Fatal("a live entry must be found")
	}
	now = now.Add(time.Second)
	if g.get(k) != nil {
		t.Fatal("an entry must not outlive the credential check it came from")
	}
}

func TestCacheable(t *testing.T) {
	until := time.Now().Add(time.Minute)
	static := []Decision{{Scope: "repository:a:pull", Rule: 0}}
	tests := []struct {
		name      string
		req       Request
		until     time.Time
		decisions []Decision
		want      bool
	}{
		{"password through the credential cache", Request{Grant: GrantPassword, HasCredentials: true}, until, static, true},
		{"anonymous", Request{Grant: GrantPassword}, time.Time{}, static, true},
		{"no scope", Request{Grant: GrantPassword, HasCredentials: true}, until, nil, true},
		{"password not through the cache", Request{Grant: GrantPassword, HasCredentials: true}, time.Time{}, static, false},
		{"refresh token", Request{Grant: GrantRefresh, HasCredentials: true}, until, static, false},
		{"OAuth2 POST", Request{Grant: GrantPassword, HasCredentials: true, OAuth2: true}, until, static, false},
		{"decided by acl_mongo", Request{Grant: GrantPassword, HasCredentials: true}, until,
			append(static, Decision{Scope: "repository:b:pull", Rule: 3, ACL: "acl_mongo"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := identity{Account: "a", until: tt.until}
			if got := cacheable(&tt.req, &id, tt.decisions); got != tt.want {
				t.Fatalf("cacheable = %v, want %v", got, tt.want)
			}
		})
	}
}
