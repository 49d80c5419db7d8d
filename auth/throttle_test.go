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

func TestThrottleIsBounded(t *testing.T) {
	th := newThrottle(time.Now)
	th.configure(throttleConfig(100))
	for i := range 1000 {
		th.fail(fmt.Sprintf("u%d", i), ipN(i))
	}
	if n := len(th.pairs) + len(th.ips); n > 100 {
		t.Fatalf("%d records, bound is 100", n)
	}
}

func throttleConfig(tracked int) config.Throttle {
	return config.Throttle{MaxTracked: tracked}
}

func ipN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}
