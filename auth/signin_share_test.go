package auth

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/oidctest"
	"github.com/gatehouse/gatehouse/internal/redistest"
)

// gitlabReplicas builds two replicas with gitlab_auth against f (one key,
// one configuration, one clock): e.s serves the browser flow at e.base,
// b is the other. With store (a redis-server address) they share
// throttle.store. extra are more keys of gitlab_auth.
func gitlabReplicas(t *testing.T, f *fakeGitlab, store string, extra ...string) (*siEnv, *Server) {
	t.Helper()
	return signInReplicas(t, nil, store, func(e *siEnv) string {
		sections := gitlabSections(f, e)
		for _, x := range extra {
			sections = strings.Replace(sections, "gitlab_auth:\n", "gitlab_auth:\n  "+x+"\n", 1)
		}
		return sections
	})
}

// signInReplicas builds two replicas from the sections sections returns
// for e (gitlabReplicas); is is e's OpenID provider, if any.
func signInReplicas(t *testing.T, is *oidctest.Issuer, store string, sections func(e *siEnv) string) (*siEnv, *Server) {
	t.Helper()
	e := newEnv(t, is)
	return e, e.replicas(t, sections(e), store)
}

// replicas builds e.s and another replica from sections, sharing
// throttle.store when store is a redis-server address, and returns the
// other.
func (e *siEnv) replicas(t *testing.T, sections, store string) *Server {
	t.Helper()
	if store != "" {
		sections += "throttle:\n  store: {type: redis, addrs: [" + strconv.Quote(store) + "], timeout: 200ms}\n"
	}
	cfg := e.config(t, sections)
	servers := make([]*Server, 2)
	for i := range servers {
		s, err := New(cfg, WithClock(e.clock))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers[i] = s
	}
	e.s = servers[0]
	return servers[1]
}

// glLogin logs tanuki in on s with cred and checks the status (and, for a
// 200, that the groups label granted platform/*).
func glLogin(t *testing.T, s *Server, cred string, want int, what string) {
	t.Helper()
	r := get(s, glScope, "tanuki", cred)
	if r.status != want {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.raw, want)
	}
	if want == http.StatusOK {
		if g := grants(claimsOf(t, r.body.Token)); g != "repository:platform/app:pull,push" {
			t.Fatalf("%s: groups label granted %q", what, g)
		}
	}
}

// TestSignInRotationShared: GitLab rotates the refresh token at each
// revalidation and refuses the old one. Replica A revalidates (rotating);
// after revalidate_after, replica B revalidates: with the shared store it
// finds A's rotated token and tanuki stays signed in, and A then finds
// B's; without a store, or with the store down, B spends the credential's
// original token and tanuki is signed out (401, never a 5xx), while A,
// with its own memory, goes on.
func TestSignInRotationShared(t *testing.T) {
	cases := []struct {
		name  string
		store bool
		down  func(*redistest.Server) // what befalls the store after A's revalidation
		wantB int
	}{
		{"shared store: B uses A's rotated token", true, nil, http.StatusOK},
		{"no store: B spends the revoked original", false, nil, http.StatusUnauthorized},
		{"store killed: per-replica as without one", true, (*redistest.Server).Stop, http.StatusUnauthorized},
		{"store hung: per-replica after the timeout", true, (*redistest.Server).Pause, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGitlab(t)
			var srv *redistest.Server
			addr := ""
			if tc.store {
				srv = redistest.Start(t)
				addr = srv.Addr
			}
			e, b := gitlabReplicas(t, f, addr)
			cred, _ := flowCredential(t, e, "tanuki")
			e.advance(2 * time.Minute)
			glLogin(t, e.s, cred, http.StatusOK, "A revalidates (GitLab rotates)")
			if tc.down != nil {
				tc.down(srv)
			}
			e.advance(2 * time.Minute)
			glLogin(t, b, cred, tc.wantB, "B revalidates after revalidate_after")
			if tc.wantB == http.StatusOK {
				e.advance(2 * time.Minute)
				glLogin(t, e.s, cred, http.StatusOK, "A again, after B rotated")
				if n := f.refreshes.Load(); n != 3 {
					t.Fatalf("GitLab refreshed %d times, want 3", n)
				}
			} else {
				glLogin(t, e.s, cred, http.StatusOK, "A, within revalidate_after of its own revalidation")
				e.advance(2 * time.Minute)
				glLogin(t, e.s, cred, http.StatusOK, "A revalidates with its own rotated token")
			}
			if tc.down != nil {
				if v := metric(t, b, "gatehouse_signin_store_fallbacks_total"); v == "" || v == "0" {
					t.Fatalf("gatehouse_signin_store_fallbacks_total %q on B with the store down", v)
				}
			}
		})
	}
}

// TestOIDCRotationShared: the test OpenID provider rotates refresh tokens
// and refuses a used one, as Keycloak with "revoke refresh token" does;
// after A revalidated, B stays signed in with the store, not without.
func TestOIDCRotationShared(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name      string
		store     string
		wantB     int
		refreshes int64 // refresh grants the provider answered
	}{
		{"shared store", srv.Addr, http.StatusOK, 2},
		{"no store", "", http.StatusUnauthorized, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := oidctest.New(t)
			e, b := signInReplicas(t, is, tc.store, func(e *siEnv) string { return oidcSections(is, e, "gatehouse") })
			cred := e.signIn(t, "dana", "dana-pw")
			e.advance(2 * time.Minute)
			if r := get(e.s, siScope, "dana@example.com", cred); r.status != http.StatusOK {
				t.Fatalf("A revalidates: %d %s", r.status, r.raw)
			}
			e.advance(2 * time.Minute)
			if r := get(b, siScope, "dana@example.com", cred); r.status != tc.wantB {
				t.Fatalf("B after revalidate_after: %d %s, want %d", r.status, r.raw, tc.wantB)
			}
			if n := is.RefreshGrants(); n != tc.refreshes {
				t.Fatalf("%d refresh grants answered, want %d", n, tc.refreshes)
			}
		})
	}
}

// TestGithubRevalidationShared: GitHub's token does not rotate, but its
// answer is shared too: with the store, replica B within revalidate_after
// of A's revalidation takes A's answer without asking GitHub; without
// one, B asks GitHub itself.
func TestGithubRevalidationShared(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name   string
		store  string
		bAsked bool
	}{
		{"shared store", srv.Addr, false},
		{"no store", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGithub(t)
			e, b := signInReplicas(t, nil, tc.store, func(e *siEnv) string { return githubSections(f, e) })
			cred, _ := flowCredential(t, e, "octocat")
			e.advance(2 * time.Minute)
			if r := get(e.s, ghScope, "octocat", cred); r.status != http.StatusOK {
				t.Fatalf("A revalidates: %d %s", r.status, r.raw)
			}
			calls := f.apiCalls.Load()
			e.advance(30 * time.Second)
			if r := get(b, ghScope, "octocat", cred); r.status != http.StatusOK {
				t.Fatalf("B: %d %s", r.status, r.raw)
			}
			if asked := f.apiCalls.Load() != calls; asked != tc.bAsked {
				t.Fatalf("B asked GitHub: %v, want %v", asked, tc.bAsked)
			}
		})
	}
}

// TestSignInRevalidationRace: both replicas revalidate the same credential
// at once (GitLab slow to answer, so both are due together); with the
// shared store one asks GitLab and the other waits for its record: GitLab
// sees one refresh grant per round and both logins succeed.
func TestSignInRevalidationRace(t *testing.T) {
	srv := redistest.Start(t)
	f := newFakeGitlab(t)
	e, b := gitlabReplicas(t, f, srv.Addr)
	cred, _ := flowCredential(t, e, "tanuki")
	f.refreshDelay.Store(int64(200 * time.Millisecond))
	for round := 1; round <= 3; round++ {
		e.advance(2 * time.Minute)
		var wg sync.WaitGroup
		status := make([]result, 2)
		for i, s := range []*Server{e.s, b} {
			wg.Go(func() { status[i] = get(s, glScope, "tanuki", cred) })
		}
		wg.Wait()
		for i, r := range status {
			if r.status != http.StatusOK {
				t.Fatalf("round %d, replica %d: %d %s", round, i, r.status, r.raw)
			}
		}
		if n := f.grants.Load(); n != int64(round) {
			t.Fatalf("round %d: GitLab was asked %d refresh grants, want %d", round, n, round)
		}
	}
}

// TestSignInLockOfDeadReplica: a replica that died holding a
// credential's lock (the lock is there, nobody releases it) holds up the
// others only until the lock expires: replica B, due, waits for it and
// then revalidates with the rotated token of A's record.
func TestSignInLockOfDeadReplica(t *testing.T) {
	srv := redistest.Start(t)
	f := newFakeGitlab(t)
	e, b := gitlabReplicas(t, f, srv.Addr, "http_timeout: 200ms") // the lock lasts 700ms
	cred, _ := flowCredential(t, e, "tanuki")
	e.advance(2 * time.Minute)
	glLogin(t, e.s, cred, http.StatusOK, "A revalidates (GitLab rotates)")
	e.advance(2 * time.Minute)
	c, err := e.s.state.Load().signIns().Verify(cred)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	if err := rc.Set(context.Background(), signInLockKey(c.ID), "a dead replica's", 700*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	glLogin(t, b, cred, http.StatusOK, "B, after the dead replica's lock expired")
	if n := f.grants.Load(); n != 2 {
		t.Fatalf("GitLab was asked %d refresh grants, want 2", n)
	}
}

// TestSignInRecordSealed: the store's record of a revalidation holds
// neither the refresh token nor the labels in clear, lasts at most the
// credential's remaining lifetime, and one altered or written without the
// refresh secret (here: with labels of the writer's choosing) is ignored.
func TestSignInRecordSealed(t *testing.T) {
	srv := redistest.Start(t)
	f := newFakeGitlab(t)
	e, b := gitlabReplicas(t, f, srv.Addr)
	cred, _ := flowCredential(t, e, "tanuki")
	e.advance(2 * time.Minute)
	glLogin(t, e.s, cred, http.StatusOK, "A revalidates")

	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "gatehouse:signin:*").Result()
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "gatehouse:signin:{") {
		t.Fatalf("store keys %q (%v), want one gatehouse:signin:{hash}", keys, err)
	}
	val, err := rc.Get(ctx, keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	var live []string
	for rt := range f.refresh {
		live = append(live, rt)
	}
	f.mu.Unlock()
	if len(live) != 1 {
		t.Fatalf("GitLab has %d live refresh tokens, want 1", len(live))
	}
	for _, clear := range []string{live[0], "glrt-", "acme/platform", "groups"} {
		if strings.Contains(string(val), clear) {
			t.Errorf("stored record holds %q in clear: %q", clear, val)
		}
	}
	// The credential lasts credential_ttl (720h) from the sign-in, 2m ago.
	if ttl, _ := rc.TTL(ctx, keys[0]).Result(); ttl <= 719*time.Hour || ttl > 720*time.Hour-2*time.Minute {
		t.Errorf("record TTL %v, want the credential's remaining lifetime, 719h58m", ttl)
	}

	forged := `{"at":` + strconv.FormatInt(e.clock().Add(2*time.Minute).UnixMilli(), 10) +
		`,"rt":"","labels":{"groups":["acme/platform"]}}`
	if err := rc.Set(ctx, keys[0], forged, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.blocked = true // a forged record must not stand in for GitLab's answer
	f.mu.Unlock()
	e.advance(2 * time.Minute)
	glLogin(t, b, cred, http.StatusUnauthorized, "B with a forged record")
}
