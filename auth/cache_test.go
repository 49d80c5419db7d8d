package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// countingAuthenticator knows every account starting with alice (password
// "right"); checks of gated accounts wait at gate; every call is counted.
type countingAuthenticator struct {
	calls atomic.Int64
	gate  chan struct{}
	gated string // the account whose checks wait at gate
}

func (c *countingAuthenticator) Name() string { return "counting" }
func (c *countingAuthenticator) Lookup(context.Context, string) (authn.Account, error) {
	return authn.Account{}, authn.ErrNoMatch
}
func (c *countingAuthenticator) Authenticate(ctx context.Context, account, password string) (authn.Account, error) {
	c.calls.Add(1)
	if c.gated != "" && account == c.gated {
		<-c.gate
	}
	switch {
	case account == "":
		return authn.Account{Labels: authn.Labels{}}, nil
	case !strings.HasPrefix(account, "alice"):
		return authn.Account{}, authn.ErrNoMatch
	case password != "right":
		return authn.Account{}, authn.ErrWrongPassword
	}
	return authn.Account{Name: account, Labels: authn.Labels{"team": {"blue"}}}, nil
}

func creds(account, password string) *Request {
	return &Request{Account: account, Password: password, HasCredentials: true}
}

func TestCredentialCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	b := &countingAuthenticator{}
	c, err := newChain([]authn.Authenticator{b}, "r", newMetrics("t"), chainOptions{
		cacheTTL: time.Minute, cacheEntries: 8, checks: 2, checkWait: time.Second, now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		name       string
		account    string
		password   string
		advance    time.Duration
		wantStatus int // 0: authenticated
		wantCalls  int64
	}{
		{"first login checks", "alice", "right", 0, 0, 1},
		{"repeat login is cached", "alice", "right", 0, 0, 1},
		{"wrong password is checked", "alice", "wrong", 0, 401, 2},
		{"and never cached", "alice", "wrong", 0, 401, 3},
		{"right password still cached", "alice", "right", 30 * time.Second, 0, 3},
		{"expired after ttl", "alice", "right", 31 * time.Second, 0, 4},
		{"unknown accounts are not cached", "bob", "x", 0, 401, 5},
		{"again", "bob", "x", 0, 401, 6},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		id, e := c.authenticate(ctx, creds(st.account, st.password))
		switch {
		case st.wantStatus == 0 && (e != nil || id.Labels["team"][0] != "blue"):
			t.Fatalf("%s: %v %v", st.name, id, e)
		case st.wantStatus != 0 && (e == nil || e.Status != st.wantStatus):
			t.Fatalf("%s: err %v, want %d", st.name, e, st.wantStatus)
		}
		if got := b.calls.Load(); got != st.wantCalls {
			t.Fatalf("%s: backend called %d times, want %d", st.name, got, st.wantCalls)
		}
	}
	t.Run("bounded", func(t *testing.T) {
		for i := range 50 {
			c.authenticate(ctx, creds("alice", "right"+strings.Repeat("x", i)))
			c.authenticate(ctx, creds("alice"+strings.Repeat("y", i), "right"))
		}
		if n := c.cache.len(); n > 8 {
			t.Fatalf("%d entries, bound is 8", n)
		}
	})
}

func TestIdenticalChecksRunOnce(t *testing.T) {
	b := &countingAuthenticator{gate: make(chan struct{}), gated: "alice"}
	c, _ := newChain([]authn.Authenticator{b}, "r", newMetrics("t"), chainOptions{
		cacheTTL: time.Minute, cacheEntries: 100, checks: 4, checkWait: 5 * time.Second})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, e := c.authenticate(context.Background(), creds("alice", "right")); e == nil {
				ok.Add(1)
			}
		}()
	}
	// Let the goroutines pile up on the one check in flight, then release it.
	for deadline := time.Now().Add(2 * time.Second); b.calls.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(b.gate)
	wg.Wait()
	if ok.Load() != 10 || b.calls.Load() != 1 {
		t.Fatalf("%d succeeded, backend called %d times; want 10 and 1", ok.Load(), b.calls.Load())
	}
}

func TestCheckLimiter(t *testing.T) {
	b := &countingAuthenticator{gate: make(chan struct{}), gated: "alice-slow"}
	c, _ := newChain([]authn.Authenticator{b}, "r", newMetrics("t"), chainOptions{
		cacheTTL: time.Minute, cacheEntries: 100, checks: 1, checkWait: 100 * time.Millisecond})
	// Warm the cache for alice-cached, then hold the only slot with a slow check.
	if _, e := c.authenticate(context.Background(), creds("alice-cached", "right")); e != nil {
		t.Fatal(e)
	}
	held := make(chan *Error, 1)
	go func() {
		_, e := c.authenticate(context.Background(), creds("alice-slow", "right"))
		held <- e
	}()
	for b.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}

	start := time.Now()
	_, e := c.authenticate(context.Background(), creds("alice-other", "right"))
	if e == nil || e.Status != http.StatusServiceUnavailable || e.RetryAfter < 1 || !errors.Is(e, errBusy) {
		t.Fatalf("no slot: err %v", e)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %v for a slot, want about 100ms", waited)
	}
	if outcomeOf(e) != OutcomeOverloaded {
		t.Fatalf("outcome %q", outcomeOf(e))
	}
	// Cached and anonymous requests do not need a slot.
	if _, e := c.authenticate(context.Background(), creds("alice-cached", "right")); e != nil {
		t.Fatalf("cached login during the storm: %v", e)
	}
	if _, e := c.authenticate(context.Background(), &Request{}); e != nil {
		t.Fatalf("anonymous during the storm: %v", e)
	}
	close(b.gate)
	if e := <-held; e != nil {
		t.Fatal(e)
	}
}

func TestCacheClearedOnReload(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	get(s, "service=registry", "alice", "alicepw")                                 // both caches miss
	get(s, "service=registry", "alice", "alicepw")                                 // the same request: grant cache
	get(s, "service=registry&scope=repository:alice/app:pull", "alice", "alicepw") // another request: credential cache
	if err := s.Reload(s.Config()); err != nil {
		t.Fatal(err)
	}
	get(s, "service=registry", "alice", "alicepw") // both caches are new: misses
	m := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw
	for _, want := range []string{
		`gatehouse_credential_cache_requests_total{result="miss"} 2`,
		`gatehouse_credential_cache_requests_total{result="hit"} 1`,
		`gatehouse_grant_cache_hits_total 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestCacheOff(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "cache: {ttl: 0}\n"
	s := env.server("", "")
	if s.state.Load().chain.cache != nil || s.state.Load().grants != nil {
		t.Fatal("cache.ttl: 0 must turn both caches off")
	}
	get(s, "service=registry", "alice", "alicepw")
	get(s, "service=registry", "alice", "alicepw")
	if m := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw; !strings.Contains(m, `gatehouse_stage_duration_seconds_count{backend="static",stage="authn"} 2`) {
		t.Fatal("with the cache off, every login must be checked")
	}
}

// knowingAuthenticator is a countingAuthenticator that lists its accounts.
type knowingAuthenticator struct {
	countingAuthenticator
	accounts map[string]bool
}

func (k *knowingAuthenticator) Name() string              { return "knowing" }
func (k *knowingAuthenticator) Knows(account string) bool { return k.accounts[account] }

func TestKnowerIsPassedOverForUnknownAccounts(t *testing.T) {
	first := &knowingAuthenticator{accounts: map[string]bool{"alice-static": true}}
	second := &countingAuthenticator{}
	// The call counts tell which backend was asked: the first's
	// Authenticate would count an account it does not know too.
	c, err := newChain([]authn.Authenticator{first, second}, "r", newMetrics("t"), chainOptions{
		cacheTTL: time.Minute, cacheEntries: 8, checks: 1, checkWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                  string
		account, password     string
		wantBackend           string
		wantFirst, wantSecond int64
	}{
		{"known to the first: asked", "alice-static", "right", "knowing", 1, 0},
		{"unknown to the first: only the second is asked", "alice-ldap", "right", "counting", 1, 1},
		{"cached in the second", "alice-ldap", "right", "counting", 1, 1},
		{"unknown to both: neither Knower nor cache", "bob", "x", "", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, e := c.authenticate(context.Background(), creds(tt.account, tt.password))
			switch {
			case tt.wantBackend == "" && e == nil:
				t.Fatalf("authenticated as %+v, want 401", id)
			case tt.wantBackend != "" && (e != nil || id.Backend != tt.wantBackend):
				t.Fatalf("got %+v, %v; want backend %s", id, e, tt.wantBackend)
			}
			if f, s := first.calls.Load(), second.calls.Load(); f != tt.wantFirst || s != tt.wantSecond {
				t.Fatalf("calls: first %d, second %d; want %d, %d", f, s, tt.wantFirst, tt.wantSecond)
			}
		})
	}
}
