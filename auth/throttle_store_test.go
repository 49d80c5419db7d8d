package auth

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/redistest"
)

// replicas builds n servers from one configuration (one key, one store),
// as n replicas of a deployment, sharing clock.
func replicas(t *testing.T, n int, store string, clock func() time.Time) []*Server {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 3, ip_failures: 20, delay: 1s, max_delay: 8s, window: 1m" + store + "}\n"
	out := make([]*Server, n)
	for i := range out {
		out[i] = env.server("", "", WithClock(clock))
	}
	return out
}

// triesUntilThrottled sends wrong passwords for account from ip to the
// servers in turn and returns how many were answered 401 before the first
// 429 (up to 30). Any other status fails the test.
func triesUntilThrottled(t *testing.T, servers []*Server, ip, account string) int {
	t.Helper()
	for i := range 30 {
		r := getFrom(servers[i%len(servers)], ip, account, "wrong")
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			return i
		default:
			t.Fatalf("guess %d on replica %d: status %d: %s", i+1, i%len(servers), r.status, r.raw)
		}
	}
	return 30
}

func TestSharedThrottle(t *testing.T) {
	redis := redistest.Start(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	store := ", store: {type: redis, addrs: [" + strconv.Quote(redis.Addr) + "]}"

	one := replicas(t, 1, "", clock)
	alone := triesUntilThrottled(t, one, "198.51.100.1", "alice")
	if alone != 3 {
		t.Fatalf("one replica: throttled after %d failures, want 3", alone)
	}
	t.Run("without a store each replica gives its own budget", func(t *testing.T) {
		if got := triesUntilThrottled(t, replicas(t, 3, "", clock), "198.51.100.2", "alice"); got != 3*alone {
			t.Fatalf("throttled after %d failures, want %d (the test would not tell a shared budget from three)", got, 3*alone)
		}
	})

	three := replicas(t, 3, store, clock)
	const ip = "198.51.100.3"
	steps := []struct {
		name          string
		advance       time.Duration
		replica       int
		account, pass string
		want          int
	}{
		{"1st failure", 0, 0, "alice", "x", 401},
		{"2nd failure, another replica", 0, 1, "ALICE", "x", 401},
		{"3rd failure, the third replica, reaching the limit", 0, 2, "Alice", "x", 401},
		{"blocked on the first replica", 0, 0, "alice", "alicepw", 429},
		{"and on the second", 0, 1, "alice", "alicepw", 429},
		{"after the delay, another failure", time.Second, 1, "alice", "x", 401},
		{"the delay doubled on a replica that did not count it", time.Second, 2, "alice", "alicepw", 429},
		{"a success after the block clears the pair", time.Second, 2, "alice", "alicepw", 200},
		{"so a failure elsewhere is the first again", 0, 0, "alice", "x", 401},
		{"and does not block", 0, 1, "alice", "alicepw", 200},
	}
	for _, st := range steps {
		advance(st.advance)
		if r := getFrom(three[st.replica], ip, st.account, st.pass); r.status != st.want {
			t.Fatalf("%s: status %d, want %d: %s", st.name, r.status, st.want, r.raw)
		}
	}
	if got := triesUntilThrottled(t, three, "198.51.100.4", "alice"); got != alone {
		t.Fatalf("three replicas sharing a store: throttled after %d failures spread round-robin, want %d as with one", got, alone)
	}

	t.Run("store killed: answered from each replica's own counts", func(t *testing.T) {
		redis.Stop()
		for i, s := range three {
			if r := getFrom(s, "198.51.100.5", "alice", "alicepw"); r.status != 200 {
				t.Fatalf("replica %d, right password: status %d: %s", i, r.status, r.raw)
			}
			if r := getFrom(s, "198.51.100.5", "alice", "x"); r.status != 401 {
				t.Fatalf("replica %d, wrong password: status %d: %s", i, r.status, r.raw)
			}
		}
		// Fails open to per-replica counts, not to no throttling.
		if got := triesUntilThrottled(t, three[:1], "198.51.100.6", "alice"); got != alone {
			t.Fatalf("one replica without its store: throttled after %d failures, want %d", got, alone)
		}
		for i, s := range three {
			if v := metric(t, s, "gatehouse_throttle_store_fallbacks_total"); v == "" || v == "0" {
				t.Fatalf("replica %d: fallbacks %q, want counted", i, v)
			}
			r := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if r.status != 200 || !strings.Contains(r.raw, `"throttle_store":"not answering`) {
				t.Fatalf("replica %d /readyz: %d %s, want 200 with the store's detail", i, r.status, r.raw)
			}
		}
		if v := metric(t, three[0], "gatehouse_throttle_store_up"); v != "0" {
			t.Fatalf("gatehouse_throttle_store_up %q, want 0", v)
		}
	})

	t.Run("store paused: calls time out, requests are answered", func(t *testing.T) {
		redis.Restart()
		waitStore(t, three)
		redis.Pause()
		defer redis.Resume()
		before := metric(t, three[0], "gatehouse_throttle_store_fallbacks_total")
		if r := getFrom(three[0], "198.51.100.7", "alice", "x"); r.status != 401 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if after := metric(t, three[0], "gatehouse_throttle_store_fallbacks_total"); after == before {
			t.Fatalf("fallbacks stayed %s", after)
		}
	})

	t.Run("store restarted: sharing resumes", func(t *testing.T) {
		redis.Restart()
		waitStore(t, three)
		if got := triesUntilThrottled(t, three, "198.51.100.8", "alice"); got != alone {
			t.Fatalf("throttled after %d failures spread round-robin, want %d", got, alone)
		}
	})
}

// waitStore waits until every server's /readyz finds the store answering.
func waitStore(t *testing.T, servers []*Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i, s := range servers {
		for {
			r := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if !strings.Contains(r.raw, "throttle_store") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: the store does not answer: %s", i, r.raw)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// A cached success asks the store nothing unless this replica knows of
// failures of the pair to clear: with the store down, such logins count
// no fallback.
func TestCachedLoginSkipsStore(t *testing.T) {
	redis := redistest.Start(t)
	s := replicas(t, 1, ", store: {type: redis, addrs: ["+strconv.Quote(redis.Addr)+"]}", time.Now)[0]
	const ip = "198.51.100.9"
	login := func(step, repo, pass string, want int) {
		t.Helper()
		if r := getAt(s, ip, "service=registry&scope=repository:"+repo+":pull", "alice", pass); r.status != want {
			t.Fatalf("%s: status %d, want %d: %s", step, r.status, want, r.raw)
		}
	}
	fallbacks := func() string { return metric(t, s, "gatehouse_throttle_store_fallbacks_total") }
	login("first login: checked, the store asked", "alice/a", "alicepw", 200)
	redis.Stop()
	login("grant cache", "alice/a", "alicepw", 200)
	login("credential cache", "alice/b", "alicepw", 200)
	if got := fallbacks(); got != "0" {
		t.Fatalf("cached successes asked the store: %s fallbacks", got)
	}
	redis.Restart()
	waitStore(t, []*Server{s})
	login("a failure, counted in the store", "alice/c", "x", 401)
	redis.Stop()
	login("a cached success with a failure to clear", "alice/d", "alicepw", 200)
	if got := fallbacks(); got != "1" {
		t.Fatalf("the success with a failure to clear: %s fallbacks, want 1 (the store asked once)", got)
	}
}
