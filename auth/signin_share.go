package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/token"
)

// signInShare is where the replicas share the revalidations of sign-in
// credentials: the throttle store (throttle.store), when one is
// configured. Each credential's last revalidation (when, the refresh
// token to use next, the labels) is one record, sealed with the
// credential's sealing key and bound to its id, so a provider that
// rotates refresh tokens finds the rotated one whichever replica asks
// next; a short lock per credential lets one replica at a time spend its
// refresh token, the others wait for its record.
//
// Every call carries the store's timeout. A store that does not answer
// leaves each replica with its own memory, as without a store (counted in
// gatehouse_signin_store_fallbacks_total, logged with the throttle's
// warning); nothing is refused because of the store.
type signInShare struct {
	store *throttleStore // nil: no store, each replica its own
	creds *token.SignIns
	// hold is how long the lock lasts: longer than a revalidation's calls
	// to the provider; a replica waits for another's record that long.
	hold time.Duration
}

// leadPoll is how often a replica waiting for another's revalidation
// looks for its record and for the lock.
const leadPoll = 25 * time.Millisecond

// signInHold is the lock's lifetime for a flow whose calls to the
// provider each take at most timeout: a revalidation makes up to three
// (discovery or the refresh grant, then userinfo or the API), and half
// one more; but no longer than half a request's time, so that the lock of
// a replica that died holding it expires while the others' requests can
// still ask.
func signInHold(timeout time.Duration) time.Duration {
	return min(3*timeout+timeout/2, RequestTimeout/2)
}

// signInShare returns the shared store of the sign-in revalidations (its
// store nil when throttle.store is not configured).
func (st *state) signInShare() signInShare {
	sh := signInShare{creds: st.signIns()}
	if st.throttle != nil {
		st.throttle.mu.Lock()
		sh.store = st.throttle.store
		st.throttle.mu.Unlock()
	}
	return sh
}

// signInRecordKey is the store key of credential id's record: a hash of
// the id, as the hash tag, so the lock is in the same slot of a Cluster.
func signInRecordKey(id string) string {
	sum := sha256.Sum256([]byte("gatehouse sign-in record\x00" + id))
	return "gatehouse:signin:{" + hex.EncodeToString(sum[:16]) + "}"
}

func signInLockKey(id string) string { return signInRecordKey(id) + ":lock" }

// sharedRevalidation is a record's content, sealed (token.SignIns
// SealRecord) before it leaves the replica.
type sharedRevalidation struct {
	At      int64               `json:"at"` // UnixMilli
	Refresh string              `json:"rt,omitempty"`
	Labels  map[string][]string `json:"labels,omitempty"`
}

// load reads c's record; ok is false when there is none, it does not
// open (logged: written by someone without the refresh secret, or for
// another credential) or the store did not answer.
func (sh signInShare) load(c *token.SignInClaims) (revalidation, bool) {
	var raw []byte
	answered := sh.store.do(sh.store.metrics.signInFallbacks, func(ctx context.Context) (err error) {
		raw, err = sh.store.client.Get(ctx, signInRecordKey(c.ID)).Bytes()
		if errors.Is(err, redis.Nil) {
			raw, err = nil, nil
		}
		return err
	})
	if !answered || raw == nil {
		return revalidation{}, false
	}
	var rec sharedRevalidation
	plain, err := sh.creds.OpenRecord(c.ID, raw)
	if err == nil {
		err = json.Unmarshal(plain, &rec)
	}
	if err != nil {
		sh.store.logger.Warn("sign-in revalidation record in the store does not open: ignored", "account", c.Account, "err", err)
		return revalidation{}, false
	}
	return revalidation{at: time.UnixMilli(rec.At), refresh: rec.Refresh, labels: rec.Labels, expires: c.ExpiresAt}, true
}

// save writes v as c's record, sealed, until the credential expires.
func (sh signInShare) save(c *token.SignInClaims, v revalidation, now time.Time) {
	ttl := c.ExpiresAt.Sub(now)
	if ttl <= 0 {
		return
	}
	plain, err := json.Marshal(sharedRevalidation{At: v.at.UnixMilli(), Refresh: v.refresh, Labels: v.labels})
	if err != nil {
		return
	}
	sealed := sh.creds.SealRecord(c.ID, plain)
	sh.store.do(sh.store.metrics.signInFallbacks, func(ctx context.Context) error {
		return sh.store.client.Set(ctx, signInRecordKey(c.ID), sealed, ttl).Err()
	})
}

// lock takes c's lock for hold (SET NX PX) under a random value; got is
// false when another replica holds it, answered false when the store did
// not answer.
func (sh signInShare) lock(id string) (value string, got, answered bool) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	value = base64.RawURLEncoding.EncodeToString(b)
	answered = sh.store.do(sh.store.metrics.signInFallbacks, func(ctx context.Context) (err error) {
		got, err = sh.store.client.SetNX(ctx, signInLockKey(id), value, sh.hold).Result()
		return err
	})
	return value, got && answered, answered
}

// unlockScript deletes the lock KEYS[1] if it still holds ARGV[1]: a lock
// that expired and another replica took is not released.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (sh signInShare) unlock(id, value string) {
	sh.store.do(sh.store.metrics.signInFallbacks, func(ctx context.Context) error {
		return unlockScript.Run(ctx, sh.store.client, []string{signInLockKey(id)}, value).Err()
	})
}

// lead makes this replica the one to ask the provider about c, or finds
// that another just did. It returns the latest revalidation known (the
// store's record when newer than last, which r then remembers) and fresh
// when it is within every of now: no need to ask. Otherwise release ends
// the lead, once the new revalidation is saved.
//
// While another replica holds c's lock, this one waits for its record
// (polling every leadPoll) instead of spending the same refresh token,
// which a rotating provider would refuse; when the lock is released
// without a record (the provider refused it, or did not answer), this one
// takes it and asks itself. A store that does not answer, a lock held
// past hold or the request's end leave it to ask on its own.
func (sh signInShare) lead(ctx context.Context, r *revalidations, c *token.SignInClaims, last revalidation, now time.Time, every time.Duration) (_ revalidation, fresh bool, release func()) {
	nothing := func() {}
	newer := func() bool {
		if rec, ok := sh.load(c); ok && rec.at.After(last.at) {
			last = rec
			r.remember(c.ID, rec, now)
		}
		return now.Sub(last.at) < every
	}
	if newer() {
		return last, true, nothing
	}
	deadline := time.Now().Add(sh.hold)
	for {
		value, got, answered := sh.lock(c.ID)
		switch {
		case !answered:
			return last, false, nothing
		case got && newer(): // another replica's record came before the lock
			sh.unlock(c.ID, value)
			return last, true, nothing
		case got:
			return last, false, func() { sh.unlock(c.ID, value) }
		}
		select {
		case <-ctx.Done():
			return last, false, nothing
		case <-time.After(leadPoll):
		}
		if newer() {
			return last, true, nothing
		}
		if time.Now().After(deadline) {
			return last, false, nothing
		}
	}
}
