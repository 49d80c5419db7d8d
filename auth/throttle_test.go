package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
)

// getFrom is get from a client address.
func getFrom(s *Server, ip, user, pass string) result {
	return getAt(s, ip, "service=registry&scope=repository:alice/app:pull", user, pass)
}

// getAt is a GET token request with query from client address ip.
func getAt(s *Server, ip, query, user, pass string) result {
	req := httptest.NewRequest(http.MethodGet, "/auth?"+query, nil)
	req.RemoteAddr = ip + ":40000"
	if user != "-" {
		req.SetBasicAuth(user, pass)
	}
	return do(s, req)
}

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 3, ip_failures: 10, delay: 1s, max_delay: 8s, window: 1m}\n"
	s := env.server("", "", WithClock(clock))
	const ip1, ip2, ip3 = "198.51.100.1", "198.51.100.2", "203.0.113.9"

	steps := []struct {
		name     string
		advance  time.Duration
		ip, user string
		pass     string
		want     int
		retry    string // Retry-After on 429
	}{
		{"1st failure", 0, ip1, "alice", "x", 401, ""},
		{"2nd failure", 0, ip1, "alice", "x", 401, ""},
		{"3rd failure, reaching the limit", 0, ip1, "alice", "x", 401, ""},
		{"blocked, even with the right password", 0, ip1, "alice", "alicepw", 429, "1"},
		{"the same account from another IP is not locked out", 0, ip2, "alice", "alicepw", 200, ""},
		{"anonymous from the blocked IP", 0, ip1, "-", "", 200, ""},
		{"after the delay, another failure", time.Second, ip1, "alice", "x", 401, ""},
		{"the delay doubled", 0, ip1, "alice", "alicepw", 429, "2"},
		{"and doubles again", 2 * time.Second, ip1, "alice", "x", 401, ""},
		{"4 seconds", 0, ip1, "alice", "x", 429, "4"},
		{"8 seconds", 4 * time.Second, ip1, "alice", "x", 401, ""},
		{"capped", 8 * time.Second, ip1, "alice", "x", 401, ""},
		{"at max_delay", 0, ip1, "alice", "x", 429, "8"},
		{"a success after the block clears the account's count", 8 * time.Second, ip1, "alice", "alicepw", 200, ""},
		{"so the next failure is the first again", 0, ip1, "alice", "x", 401, ""},
		{"and does not block", 0, ip1, "alice", "alicepw", 200, ""},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		r := getFrom(s, st.ip, st.user, st.pass)
		if r.status != st.want {
			t.Fatalf("%s: status %d, want %d: %s", st.name, r.status, st.want, r.raw)
		}
		if st.want == 429 {
			if got := r.header.Get("Retry-After"); got != st.retry {
				t.Fatalf("%s: Retry-After %q, want %q", st.name, got, st.retry)
			}
			if !strings.Contains(r.raw, `"code":"TOOMANYREQUESTS"`) {
				t.Fatalf("%s: body %s", st.name, r.raw)
			}
		}
	}

	t.Run("per IP, across accounts", func(t *testing.T) {
		for i := range 10 {
			if r := getFrom(s, ip3, fmt.Sprintf("user%d", i), "x"); r.status != 401 {
				t.Fatalf("failure %d: %d", i, r.status)
			}
		}
		if r := getFrom(s, ip3, "alice", "alicepw"); r.status != 429 {
			t.Fatalf("an IP over its limit must be blocked for every account: %d", r.status)
		}
	})
	t.Run("refused before any password is checked", func(t *testing.T) {
		metric := func() string {
			m := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw
			i := strings.Index(m, `gatehouse_stage_duration_seconds_count{backend="static",stage="authn"}`)
			return strings.Fields(m[i:])[1]
		}
		before := metric()
		for range 5 {
			getFrom(s, ip3, "alice", "nope")
		}
		if after := metric(); after != before {
			t.Fatalf("throttled requests reached the authenticator: %s -> %s", before, after)
		}
	})
	t.Run("failures older than the window are forgotten", func(t *testing.T) {
		// Twice the limit, each a window after the one before: counted
		// together they would block the last for 8s.
		now = now.Add(time.Hour)
		for i := range 6 {
			now = now.Add(61 * time.Second)
			if r := getFrom(s, ip2, "alice", "x"); r.status != 401 {
				t.Fatalf("failure %d, a window after the one before: %d", i, r.status)
			}
		}
		if r := getFrom(s, ip2, "alice", "alicepw"); r.status != 200 {
			t.Fatalf("spread-out failures blocked: %d", r.status)
		}
	})
}

func TestThrottleOff(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {enabled: false}\n"
	s := env.server("", "")
	for i := range 20 {
		if r := getFrom(s, "198.51.100.1", "alice", "x"); r.status != 401 {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
}

// A reload that turns the throttle off lifts the blocks it made, and
// counts nothing while it is off.
func TestThrottleOffByReload(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 2, ip_failures: 1000}\n"
	s := env.server("", "")
	env.top = "throttle: {enabled: false}\n"
	off := env.server("", "").Config()
	const ip = "198.51.100.50"
	throttleSteps(t, s, []throttleStep{
		{"1st failure", ip, "alice", "x", 401},
		{"2nd failure", ip, "alice", "x", 401},
		{"blocked", ip, "alice", "alicepw", 429},
	})
	if err := s.Reload(off); err != nil {
		t.Fatal(err)
	}
	steps := []throttleStep{{"after the reload, the right password", ip, "alice", "alicepw", 200}}
	for range 5 {
		steps = append(steps, throttleStep{"a failure while off", ip, "alice", "x", 401})
	}
	throttleSteps(t, s, append(steps, throttleStep{"still not blocked", ip, "alice", "alicepw", 200}))
}

func TestThrottleEviction(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	newTable := func(limit, ipLimit int) *throttle {
		th := newThrottle(clock)
		th.configure(config.Throttle{MaxTracked: 100, AccountIPFailures: limit, IPFailures: ipLimit})
		return th
	}
	pair := func(th *throttle, i int) *failures {
		_, pk := th.keys(fmt.Sprintf("u%d", i), ipN(i))
		return th.pairs[pk]
	}
	size := func(th *throttle) int { return len(th.pairs) + len(th.ips) }

	t.Run("stale records go first", func(t *testing.T) {
		th := newTable(5, 1000)
		for i := range 40 { // 80 records, stale once the window has passed
			th.fail(fmt.Sprintf("u%d", i), ipN(i))
		}
		now = now.Add(config.DefaultThrottleWindow + time.Minute)
		for i := 100; i < 111; i++ { // the 11th needs room: only the stale go
			th.fail(fmt.Sprintf("u%d", i), ipN(i))
		}
		for i := range 40 {
			if pair(th, i) != nil {
				t.Fatalf("stale record u%d kept (%d records)", i, size(th))
			}
		}
		for i := 100; i < 111; i++ {
			if pair(th, i) == nil {
				t.Fatalf("recent record u%d dropped while stale ones could go", i)
			}
		}
	})
	t.Run("live blocks are kept while others can go", func(t *testing.T) {
		th := newTable(1, 1000)
		for i := range 20 { // 20 blocked pairs and their 20 clients
			th.fail(fmt.Sprintf("u%d", i), ipN(i))
		}
		for i := range 70 { // clients that block nothing
			th.fail("", ipN(1000+i))
		}
		if n := size(th); n > 100 {
			t.Fatalf("%d records, bound is 100", n)
		}
		for i := range 20 {
			if f := pair(th, i); f == nil || !now.Before(f.until) {
				t.Fatalf("live block u%d dropped while unblocked records could go", i)
			}
		}
	})
	t.Run("a record with a check in flight is never dropped", func(t *testing.T) {
		th := newTable(1, 1) // every other record a live block: all may go but this one
		if _, ok := th.reserve("u7", ipN(7)); !ok {
			t.Fatal("no reservation")
		}
		for i := range 1000 {
			th.fail(fmt.Sprintf("v%d", i), ipN(2000+i))
		}
		if f := pair(th, 7); f == nil || f.inflight != 1 {
			t.Fatalf("the reserved record was dropped: %+v", f)
		}
		th.settle("u7", ipN(7), verdictFailure)
		if f := pair(th, 7); f == nil || f.count != 1 || f.inflight != 0 {
			t.Fatalf("the reservation did not become a failure: %+v", f)
		}
	})
	t.Run("bounded, keeping the latest", func(t *testing.T) {
		th := newTable(5, 1000)
		for i := range 1000 {
			th.fail(fmt.Sprintf("u%d", i), ipN(i))
			if pair(th, i) == nil {
				t.Fatalf("the failure just recorded, u%d, is gone", i)
			}
		}
		if n := size(th); n > 100 {
			t.Fatalf("%d records, bound is 100", n)
		}
	})
}

func throttleConfig(tracked int) config.Throttle {
	return config.Throttle{MaxTracked: tracked}
}

func ipN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// A success clears the account's failures, whether its password was
// checked (under a reservation) or answered by the credential cache.
func TestThrottleSuccessClears(t *testing.T) {
	for _, cache := range []string{"ttl: 0", "ttl: 1m"} {
		t.Run("cache "+cache, func(t *testing.T) {
			env := newOAuthEnv(t)
			env.top = "throttle: {account_ip_failures: 3, ip_failures: 1000}\ncache: {" + cache + "}\n"
			const ip = "198.51.100.60"
			throttleSteps(t, env.server("", ""), []throttleStep{
				{"a success from elsewhere (cached, when the cache is on)", "198.51.100.61", "alice", "alicepw", 200},
				{"1st failure", ip, "alice", "x", 401},
				{"2nd failure", ip, "alice", "x", 401},
				{"the success clears them", ip, "alice", "alicepw", 200},
				{"so this is the 1st again", ip, "alice", "x", 401},
				{"and this the 2nd", ip, "alice", "x", 401},
				{"not blocked", ip, "alice", "alicepw", 200},
			})
		})
	}
}
