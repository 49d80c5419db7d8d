package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/internal/mongotest"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// TestUnknownAccountCostsLikeAWrongPassword compares the response times of
// a known account with a wrong password and of an unknown account: both
// must spend one bcrypt comparison at the configured cost, so their medians
// agree within 20% and timing does not reveal which accounts exist.
func TestUnknownAccountCostsLikeAWrongPassword(t *testing.T) {
	testutil.SkipIfShort(t, "times bcrypt comparisons")
	const cost = 9 // ~30 ms a comparison: well above scheduling noise
	hash, _ := bcrypt.GenerateFromPassword([]byte("alicepw"), cost)
	env := newOAuthEnv(t)
	env.top = "throttle: {enabled: false}\ncache: {ttl: 0}\n"
	s := env.server("", fmt.Sprintf("  alice: {password: %q}\n", hash))

	requireSameTiming(t, s,
		func(int) (string, string) { return "alice", "wrong" },
		func(i int) (string, string) { return fmt.Sprintf("nobody%d", i), "wrong" }, 1)
}

// requireSameTiming measures requests for a known account with a wrong
// password (known) and for unknown accounts (unknown(i) makes the i-th
// request), interleaved, each a burst of burst identical concurrent
// requests, and fails unless their median times agree within 20%. A leak
// is systematic and fails every attempt; a burst of load from other tests
// fails one at most, so up to three attempts are made.
func requireSameTiming(t *testing.T, s *Server, known func(i int) (string, string), unknown func(i int) (string, string), burst int) {
	t.Helper()
	if raceEnabled {
		t.Skip("the race detector distorts bcrypt and scheduling times; scripts/test.sh runs the timing tests without it")
	}
	measure := func(user, pass string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := get(s, "service=registry", user, pass); r.status != 401 {
					t.Errorf("%s: %d %s", user, r.status, r.raw)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var ratio float64
	for attempt := 1; attempt <= 3; attempt++ {
		var k, u []time.Duration
		for i := range 11 {
			k = append(k, measure(known(attempt*100+i)))
			u = append(u, measure(unknown(attempt*100+i)))
		}
		mk, mu := median(k), median(u)
		ratio = float64(mu) / float64(mk)
		t.Logf("attempt %d: median known account %v, unknown account %v (ratio %.2f)", attempt, mk, mu, ratio)
		if ratio >= 0.8 && ratio <= 1.2 {
			return
		}
	}
	t.Fatalf("unknown vs known account median ratio %.2f, want within 20%%", ratio)
}

// TestTimingHidesAccounts covers the timing oracles of hardening round 2:
// identical concurrent requests (coalesced for known accounts, and now for
// unknown ones too), mixed bcrypt costs (a cheap hash answered faster than
// the fake comparison at the highest cost), and a MongoDB-only setup
// (whose hash costs the chain cannot see in advance).
func TestTimingHidesAccounts(t *testing.T) {
	testutil.SkipIfShort(t, "times bcrypt comparisons")
	t.Run("identical concurrent requests", func(t *testing.T) {
		hash, _ := bcrypt.GenerateFromPassword([]byte("alicepw"), 8)
		env := newOAuthEnv(t)
		env.top = "throttle: {enabled: false}\nlimits: {concurrent_checks: 2}\n"
		s := env.server("", fmt.Sprintf("  alice: {password: %q}\n", hash))
		requireSameTiming(t, s,
			func(i int) (string, string) { return "alice", fmt.Sprintf("wrong%d", i) },
			func(i int) (string, string) { return fmt.Sprintf("nobody%d", i), "wrong" }, 6)
	})
	t.Run("mixed bcrypt costs", func(t *testing.T) {
		// carol is in htpasswd at the lowest cost; alice's static hash
		// sets the fake comparison's cost.
		hash, _ := bcrypt.GenerateFromPassword([]byte("alicepw"), 9)
		env := newOAuthEnv(t)
		env.top = "throttle: {enabled: false}\ncache: {ttl: 0}\n"
		s := env.server("", fmt.Sprintf("  alice: {password: %q}\n", hash))
		requireSameTiming(t, s,
			func(int) (string, string) { return "carol", "wrong" },
			func(i int) (string, string) { return fmt.Sprintf("nobody%d", i), "wrong" }, 1)
	})
	t.Run("mongo_auth only", func(t *testing.T) {
		srv := mongotest.Start(t)
		hash, _ := bcrypt.GenerateFromPassword([]byte("amy-pw"), authn.MongoAssumedBcryptCost)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := srv.Client(t).Database("docker_auth").Collection("users").InsertOne(ctx, bson.D{{Key: "username", Value: "amy"}, {Key: "password", Value: string(hash)}}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		s := serverFromYAML(t, dir, fmt.Sprintf(`server: {addr: ":0"}
token: {issuer: x, expiration: 600, certificate: %[1]s/token.pem, key: %[1]s/token.key, generate_if_missing: true}
throttle: {enabled: false}
cache: {ttl: 0}
mongo_auth: {dial_info: {addrs: [%[2]q], timeout: 5s, database: docker_auth}, collection: users}
acl: [{match: {}, actions: [pull]}]
`, dir, srv.Addr()))
		requireSameTiming(t, s,
			func(int) (string, string) { return "amy", "wrong" },
			func(i int) (string, string) { return fmt.Sprintf("nobody%d", i), "wrong" }, 1)
	})
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestMixedBcryptCostsWarn: a configuration whose hashes have different
// costs is logged as a warning when it is built (what `gatehouse validate`
// prints), and one whose hashes share a cost is not.
func TestMixedBcryptCostsWarn(t *testing.T) {
	for _, tc := range []struct {
		name string
		cost int // alice's static hash; carol's htpasswd hash is at bcrypt.MinCost
		warn bool
	}{
		{"mixed", bcrypt.MinCost + 1, true},
		{"one cost", bcrypt.MinCost, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hash, _ := bcrypt.GenerateFromPassword([]byte("alicepw"), tc.cost)
			var logs testutil.SyncBuffer
			newOAuthEnv(t).server("", fmt.Sprintf("  alice: {password: %q}\n", hash), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if got := strings.Contains(logs.String(), "bcrypt costs are mixed"); got != tc.warn {
				t.Fatalf("warned %v, want %v; log:\n%s", got, tc.warn, logs.String())
			}
		})
	}
}
