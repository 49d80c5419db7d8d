package auth

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// verifiedTokens remembers the claims of access tokens whose signature,
// type, audience and scopes verified, keyed by a SHA-256 of the token, so
// that a repeat login does not decode and verify the JWT again: with it an
// access-token login costs no more than a password login answered by the
// credential cache (BenchmarkServeHTTPAccessToken). Only what never changes
// for a given token is remembered: expiry is checked at every use, and the
// revocation list, the owner's lookup and the lifetime policy run on every
// use as before. It belongs to one configuration's state: a reload starts
// empty. At most maxVerifiedTokens entries; when full it is emptied.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[[32]byte]*token.AccessTokenClaims
}

// maxVerifiedTokens bounds the cache: about 300 bytes an entry.
const maxVerifiedTokens = 4096

func (v *verifiedTokens) get(raw string) (*token.AccessTokenClaims, [32]byte) {
	k := sha256.Sum256([]byte(raw))
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[k], k
}

func (v *verifiedTokens) put(k [32]byte, c *token.AccessTokenClaims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerifiedTokens {
		v.m = make(map[[32]byte]*token.AccessTokenClaims)
	}
	v.m[k] = c
}

// errTokenExpired refuses a remembered token past its expiry.
var errTokenExpired = fmt.Errorf("%w: token is expired", token.ErrInvalidAccessToken)

// verifyCached returns raw's claims: remembered, after checking their expiry
// against now, or verified (and then remembered).
func (a *accessTokens) verifyCached(raw string, now time.Time) (*token.AccessTokenClaims, error) {
	c, k := a.seen.get(raw)
	if c != nil {
		if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
			return nil, errTokenExpired
		}
		return c, nil
	}
	c, err := a.verify.Verify(raw)
	if err != nil {
		return nil, err
	}
	a.seen.put(k, c)
	return c, nil
}
