package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// countingBackend stands in for a test server's static authenticator: it
// counts the password checks that reach it and, when hold is set, keeps
// every check of another password than right waiting until hold is
// closed, announcing each on arrived.
type countingBackend struct {
	authn.Authenticator
	checks  atomic.Int64
	right   string
	hold    chan struct{}
	arrived chan struct{}
	down    atomic.Bool // every check fails as if the backend were unreachable
}

// countChecks puts a countingBackend in front of s's static authenticator.
// Call it before the first request.
func countChecks(t *testing.T, s *Server, hold bool) *countingBackend {
	t.Helper()
	st := s.state.Load()
	if st.chain.backends[0].Name() != "static" {
		t.Fatalf("first authenticator is %s, want static", st.chain.backends[0].Name())
	}
	b := &countingBackend{Authenticator: st.chain.backends[0], right: "alicepw", arrived: make(chan struct{}, 128)}
	if hold {
		b.hold = make(chan struct{})
		t.Cleanup(b.release)
	}
	st.chain.backends[0] = b
	return b
}

// Knows is the wrapped authenticator's, so the chain passes over accounts
// it does not list as it would without the wrapper.
func (b *countingBackend) Knows(account string) bool {
	k, ok := b.Authenticator.(authn.Knower)
	return !ok || k.Knows(account)
}

func (b *countingBackend) Authenticate(ctx context.Context, account, password string) (authn.Account, error) {
	b.checks.Add(1)
	if b.down.Load() {
		return authn.Account{}, errors.New("backend down")
	}
	if b.hold != nil && password != b.right {
		b.arrived <- struct{}{}
		<-b.hold
	}
	return b.Authenticator.Authenticate(ctx, account, password)
}

// release lets the held checks finish; calling it again does nothing.
func (b *countingBackend) release() {
	select {
	case <-b.hold:
	default:
		close(b.hold)
	}
}

// burst sends n wrong guesses for user from ip at once, each with its own
// password (so the credential cache cannot merge them); wait returns once
// all are answered, and statuses counts the answers.
func burst(s *Server, ip, user string, n int) (statuses map[int]int, wait func()) {
	statuses = map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := getFrom(s, ip, user, fmt.Sprintf("guess-%d", i))
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
		})
	}
	return statuses, wg.Wait
}

// A burst of concurrent wrong guesses reaches the password check at most
// the limit's number of times, however many checks may run at once: the
// checks in flight count against the budget. An account that does not
// exist gets the same answers.
func TestThrottleBurst(t *testing.T) {
	const ip, limit, guesses = "198.51.100.20", 5, 50
	for _, checks := range []int{1, 2, 64} {
		t.Run(fmt.Sprintf("concurrent_checks %d", checks), func(t *testing.T) {
			env := newOAuthEnv(t)
			env.top = fmt.Sprintf("throttle: {account_ip_failures: %d, ip_failures: 1000}\nlimits: {concurrent_checks: %d, check_wait: 30s}\n", limit, checks)
			s := env.server("", "")
			b := countChecks(t, s, false)
			statuses, wait := burst(s, ip, "alice", guesses)
			wait()
			if n := b.checks.Load(); n > limit {
				t.Fatalf("%d of %d concurrent guesses reached the password check, limit %d (answers %v)", n, guesses, limit, statuses)
			}
			if statuses[401] > limit || statuses[401]+statuses[429] != guesses {
				t.Fatalf("answers %v: want at most %d 401s, the rest 429", statuses, limit)
			}
			if r := getFrom(s, ip, "alice", "alicepw"); r.status != 429 {
				t.Fatalf("the right password after the burst: %d, want 429", r.status)
			}
			unknown, wait := burst(s, ip, "nobody", guesses)
			wait()
			if unknown[401] > limit || unknown[401]+unknown[429] != guesses {
				t.Fatalf("answers for an unknown account %v: want at most %d 401s, the rest 429, as for a known one", unknown, limit)
			}
		})
	}
}

// While guesses that spend the budget are still being checked, the right
// password is refused too, whether it would be checked, answered by the
// credential cache or answered by the grant cache.
func TestThrottleBurstRefusesTheRightPassword(t *testing.T) {
	const ip, limit = "198.51.100.21", 5
	const q, otherQ = "service=registry&scope=repository:alice/app:pull", "service=registry&scope=repository:alice/other:pull"
	tests := []struct {
		name  string
		prime bool   // alice logged in with q before the burst
		query string // of the right password's request
	}{
		{"a password the server has not checked yet", false, q},
		{"a password in the credential cache", true, otherQ},
		{"a request in the grant cache", true, q},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newOAuthEnv(t)
			env.top = fmt.Sprintf("throttle: {account_ip_failures: %d, ip_failures: 1000}\nlimits: {concurrent_checks: 64}\n", limit)
			s := env.server("", "")
			b := countChecks(t, s, true)
			if tt.prime {
				if r := getAt(s, ip, q, "alice", "alicepw"); r.status != 200 {
					t.Fatalf("priming login: %d", r.status)
				}
			}
			before := b.checks.Load()
			statuses, wait := burst(s, ip, "alice", 49)
			for i := range limit {
				select {
				case <-b.arrived:
				case <-time.After(30 * time.Second):
					t.Fatalf("only %d guesses reached the check", i)
				}
			}
			right := getAt(s, ip, tt.query, "alice", "alicepw")
			b.release()
			wait()
			if right.status != 429 {
				t.Fatalf("the right password while %d guesses were being checked: %d, want 429", limit, right.status)
			}
			if n := b.checks.Load() - before; n > limit {
				t.Fatalf("%d guesses reached the password check, limit %d (answers %v)", n, limit, statuses)
			}
			if r := getAt(s, ip, tt.query, "alice", "alicepw"); r.status != 429 {
				t.Fatalf("the right password after the burst: %d, want 429", r.status)
			}
		})
	}
}

// A check that could not be made (the backend is down: 503) releases its
// reservation: it is no failure, and the account is not blocked for it.
func TestThrottleOutageIsNoFailure(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 2, ip_failures: 1000}\ncache: {ttl: 0}\n"
	s := env.server("", "")
	b := countChecks(t, s, false)
	b.down.Store(true)
	const ip = "198.51.100.70"
	for i := range 5 {
		if r := getFrom(s, ip, "alice", "alicepw"); r.status != 503 {
			t.Fatalf("attempt %d while the backend is down: %d, want 503", i, r.status)
		}
	}
	b.down.Store(false)
	if r := getFrom(s, ip, "alice", "alicepw"); r.status != 200 {
		t.Fatalf("once the backend is back: %d, want 200", r.status)
	}
}

// Identical concurrent requests share one password check; when the
// throttle refuses that check for the client that started it, a request
// from another client that waited for it is checked under its own budget,
// not refused with the first.
func TestThrottleRefusalIsNotShared(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 2, ip_failures: 1000}\nlimits: {concurrent_checks: 1, check_wait: 30s}\n"
	s := env.server("", "")
	b := countChecks(t, s, true)
	const blockedIP, otherIP = "198.51.100.80", "198.51.100.81"
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
		}
	}
	// A wrong guess from a third client holds the only check slot.
	var wg sync.WaitGroup
	wg.Go(func() { getFrom(s, "198.51.100.82", "alice", "guess") })
	<-b.arrived
	// The first client's request starts the shared check and waits for the slot...
	var first, second result
	wg.Go(func() { first = getFrom(s, blockedIP, "alice", "alicepw") })
	cache := s.state.Load().chain.cache
	until("the first request starts its check", func() bool {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		return len(cache.flight) == 2
	})
	// ... while its client gets blocked, and another client's identical
	// request joins the check.
	s.throttle.fail("alice", netip.MustParseAddr(blockedIP))
	s.throttle.fail("alice", netip.MustParseAddr(blockedIP))
	wg.Go(func() { second = getFrom(s, otherIP, "alice", "alicepw") })
	until("the second request waits for the first one's check", func() bool { return waitingInFlight() == 1 })
	b.release()
	wg.Wait()
	if first.status != 429 || second.status != 200 {
		t.Fatalf("blocked client %d (want 429), the client that shared its check %d (want 200)", first.status, second.status)
	}
}

// waitingInFlight counts the goroutines waiting for another request's
// password check (credCache.do, as a follower).
func waitingInFlight() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, frames, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[chan receive") && strings.HasPrefix(frames, "github.com/gatehouse/gatehouse/auth.(*credCache).do(") {
			n++
		}
	}
	return n
}
