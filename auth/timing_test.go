package auth

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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

	measure := func(user string) time.Duration {
		start := time.Now()
		if r := get(s, "service=registry", user, "wrong"); r.status != 401 {
			t.Fatalf("%s: %d %s", user, r.status, r.raw)
		}
		return time.Since(start)
	}
	// A leak is systematic (without the fake comparison an unknown account
	// answers ~100 times faster) and fails every attempt; a burst of load
	// from other tests fails one at most, so up to three attempts are made.
	var ratio float64
	for attempt := 1; attempt <= 3; attempt++ {
		var known, unknown []time.Duration
		for i := range 15 {
			// Interleaved, so drifts in machine load hit both alike.
			known = append(known, measure("alice"))
			unknown = append(unknown, measure(fmt.Sprintf("nobody%d", i)))
		}
		mk, mu := median(known), median(unknown)
		ratio = float64(mu) / float64(mk)
		t.Logf("attempt %d: median wrong password %v, unknown account %v (ratio %.2f)", attempt, mk, mu, ratio)
		if ratio >= 0.8 && ratio <= 1.2 {
			return
		}
	}
	t.Fatalf("unknown account vs wrong password median ratio %.2f, want within 20%%", ratio)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
