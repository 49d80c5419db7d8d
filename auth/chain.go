package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// chain asks the authenticators in order, as docker_auth does: an unknown
// account passes to the next one, a wrong password stops with 401, a
// backend failure stops with 503.
type chain struct {
	backends []authn.Authenticator
	fake     *authn.FakeHash
	// floor (nanoseconds) is the least time a password check takes,
	// whatever its outcome: the time of one bcrypt operation at the
	// highest cost, first that of making the fake hash, then a moving
	// average of the fake comparisons, so it follows the machine's load.
	// Checks against cheaper hashes wait out the rest, so response times
	// do not tell which accounts exist.
	floor     atomic.Int64
	challenge string
	metrics   *Metrics
	cache     *credCache // nil: no caching
	limit     *checkLimiter
}

// identity is who a request was authenticated as.
type identity struct {
	Account string
	Labels  authn.Labels
	Backend string // the authenticator that answered
	// Credential identifies the stored credential the password was checked
	// against (authn.Account.Credential): refresh tokens are bound to it.
	Credential string
	// noRefresh: the backend cannot look the account up again
	// (authn.Account.NoRefresh), so no refresh token is issued.
	noRefresh bool
	// from is set for an access-token login (and a refresh token issued
	// to one): its scopes narrow the grant (narrowByToken).
	from *token.AccessTokenClaims
	// until is when the credential cache stops vouching for the password
	// check; zero when the check was not cached (anonymous, refresh
	// token, cache off).
	until time.Time
}

// chainOptions are the cache and limiter settings of a chain.
type chainOptions struct {
	cacheTTL     time.Duration // 0: no cache
	cacheEntries int
	checks       int
	checkWait    time.Duration
	now          func() time.Time
}

func newChain(backends []authn.Authenticator, realm string, m *Metrics, o chainOptions) (*chain, error) {
	cost, _ := bcryptCosts(backends)
	start := time.Now()
	fake, err := authn.NewFakeHash(cost) // one bcrypt operation at that cost
	if err != nil {
		return nil, err
	}
	floor := time.Since(start)
	if o.now == nil {
		o.now = time.Now
	}
	cache, err := newCredCache(o.cacheTTL, max(o.cacheEntries, 1), o.now)
	if err != nil {
		return nil, err
	}
	c := &chain{backends: backends, fake: fake, challenge: fmt.Sprintf("Basic realm=%q", realm), metrics: m,
		cache: cache, limit: newCheckLimiter(o.checks, o.checkWait)}
	c.floor.Store(int64(floor))
	return c, nil
}

// checkFloor returns the least time a password check takes now.
func (c *chain) checkFloor() time.Duration { return time.Duration(c.floor.Load()) }

// observeFake moves the floor an eighth of the way towards d, the time a
// fake comparison just took. Concurrent updates may lose one another's
// step, which only slows the average down.
func (c *chain) observeFake(d time.Duration) {
	old := c.floor.Load()
	c.floor.Store(old + (int64(d)-old)/8)
}

// Messages of 401 answers: the same for every wrong credential, so the
// answer does not tell an unknown account from a wrong password.
const (
	msgBadCredentials = "incorrect username or password"
	msgNoCredentials  = "authentication required"
	msgBadRefresh     = "invalid or expired refresh token: log in again"
)

func (c *chain) unauthorized(message string, reason error) *Error {
	return &Error{
		Status:    http.StatusUnauthorized,
		Code:      CodeUnauthorized,
		Message:   message,
		Challenge: c.challenge,
		Err:       reason,
	}
}

// authenticate resolves the request's credentials to an identity. An
// anonymous request is served as the account "" when an authenticator
// knows it (users: {"": {}}), and refused otherwise.
func (c *chain) authenticate(ctx context.Context, req *Request) (identity, *Error) {
	account, password := req.Account, req.Password
	if !req.HasCredentials {
		account, password = "", ""
	} else if account == "" {
		return identity{}, c.unauthorized(msgBadCredentials, errors.New("password without a user name"))
	}
	var mac *[32]byte
	if c.cache != nil && req.HasCredentials {
		m := c.cache.mac(password)
		mac = &m
	}
	// Every password check not answered by a remembered success lasts at
	// least the floor, whatever the outcome.
	if req.HasCredentials {
		start := time.Now()
		stored := false
		defer func() {
			if !stored {
				c.pad(ctx, start)
			}
		}()
		return c.authenticatePassword(ctx, account, password, mac, &req.attempt, &stored)
	}
	return c.authenticatePassword(ctx, account, password, mac, &req.attempt, new(bool))
}

// authenticatePassword asks the backends in turn, each check within att's
// throttle reservation; stored is set when a remembered success answered.
func (c *chain) authenticatePassword(ctx context.Context, account, password string, mac *[32]byte, att *attempt, stored *bool) (identity, *Error) {
	for _, b := range c.backends {
		if k, ok := b.(authn.Knower); ok && !k.Knows(account) {
			continue // what its Authenticate would say, without the cache or a check slot
		}
		acct, until, src, err := c.check(ctx, b, account, password, mac, att)
		*stored = src == answerStored
		switch {
		case errors.Is(err, errThrottled):
			return identity{}, att.refused()
		case errors.Is(err, errBusy):
			return identity{}, c.limit.busy(fmt.Errorf("%s: %w", b.Name(), err))
		case err == nil:
			return identity{Account: acct.Name, Labels: acct.Labels, Backend: b.Name(), Credential: acct.Credential, noRefresh: acct.NoRefresh, until: until}, nil
		case errors.Is(err, authn.ErrNoMatch):
			continue
		case errors.Is(err, authn.ErrWrongPassword):
			return identity{}, c.unauthorized(msgBadCredentials, fmt.Errorf("%s: wrong password for %q", b.Name(), account))
		default:
			return identity{}, unavailable(fmt.Errorf("%s: %w", b.Name(), err))
		}
	}
	if account == "" {
		return identity{}, c.unauthorized(msgNoCredentials, errNoCredentials)
	}
	// No backend knows the account: spend what a wrong password costs, so
	// response times do not tell which accounts exist. Identical requests
	// in flight share one comparison, as they do for known accounts.
	fakeCheck := func() (authn.Account, error) {
		release, err := c.slot(ctx, att)
		if err != nil {
			return authn.Account{}, err
		}
		defer release()
		start := time.Now()
		c.fake.Compare(password)
		c.observeFake(time.Since(start))
		return authn.Account{}, authn.ErrWrongPassword
	}
	var err error
	var src answerSource
	if mac == nil {
		_, err = fakeCheck()
	} else {
		_, _, src, err = c.cache.do(cacheKey{backend: unknownBackend, account: account, mac: *mac}, fakeCheck)
		if src == answerJoined && errors.Is(err, errThrottled) {
			_, err = fakeCheck() // refused for the request it waited for: its own budget decides
		}
	}
	switch {
	case errors.Is(err, errBusy):
		return identity{}, c.limit.busy(err)
	case errors.Is(err, errThrottled):
		return identity{}, att.refused()
	}
	return identity{}, c.unauthorized(msgBadCredentials, fmt.Errorf("unknown account %q", account))
}

// slot waits for a password-check slot (errBusy past the wait) and takes a
// reservation in the client's failure budget (errThrottled when it is
// spent); release frees the slot.
func (c *chain) slot(ctx context.Context, att *attempt) (release func(), err error) {
	release, err = c.limit.acquire(ctx)
	if err != nil {
		return nil, err
	}
	if !att.reserve() {
		release()
		return nil, errThrottled
	}
	return release, nil
}

// unknownBackend keys, in the credential cache, the fake comparisons of
// accounts no backend knows: they are coalesced like real checks, never
// remembered. No authenticator has an empty name.
const unknownBackend = ""

// pad waits until the floor has passed since start, or ctx ends.
func (c *chain) pad(ctx context.Context, start time.Time) {
	wait := c.checkFloor() - time.Since(start)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// bcryptCosts returns the highest and lowest bcrypt cost of the backends
// that compare bcrypt hashes (0, 0 without any).
func bcryptCosts(backends []authn.Authenticator) (highest, lowest int) {
	for _, b := range backends {
		if bc, ok := b.(authn.BcryptCoster); ok && bc.MaxBcryptCost() > 0 {
			highest = max(highest, bc.MaxBcryptCost())
			if lowest == 0 || bc.MinBcryptCost() < lowest {
				lowest = bc.MinBcryptCost()
			}
		}
	}
	return highest, lowest
}

// check asks one backend, through the credential cache when the request
// carries credentials (mac is their HMAC), and within a limiter slot and a
// throttle reservation (att) when the backend has to do the work.
// Anonymous requests take neither. until is when the cached answer expires
// (zero when mac is nil).
func (c *chain) check(ctx context.Context, b authn.Authenticator, account, password string, mac *[32]byte, att *attempt) (authn.Account, time.Time, answerSource, error) {
	run := func() (authn.Account, error) {
		if account != "" {
			release, err := c.slot(ctx, att)
			if err != nil {
				return authn.Account{}, err
			}
			defer release()
		}
		start := time.Now()
		acct, err := b.Authenticate(ctx, account, password)
		c.observe(b.Name(), start, err)
		return acct, err
	}
	if mac == nil {
		acct, err := run()
		return acct, time.Time{}, answerChecked, err
	}
	acct, until, src, err := c.cache.do(cacheKey{backend: b.Name(), account: account, mac: *mac}, run)
	if src == answerJoined && errors.Is(err, errThrottled) {
		// The throttle refused the check this request waited for, maybe
		// for another client: its own budget decides.
		acct, err = run()
		return acct, time.Time{}, answerChecked, err
	}
	if c.metrics != nil && err == nil {
		if src != answerChecked {
			c.metrics.cacheHit.Inc()
		} else {
			c.metrics.cacheMiss.Inc()
		}
	}
	return acct, until, src, err
}

// lookup finds account again in the authenticator named backend, without a
// password: how a refresh token is redeemed. An account that is gone, or a
// backend no longer configured, is a 401.
func (c *chain) lookup(ctx context.Context, backend, account string) (identity, *Error) {
	return c.lookupAs(ctx, backend, account, msgBadRefresh, "refresh token")
}

// lookupAs is lookup for a credential of the kind what, refused with
// message.
func (c *chain) lookupAs(ctx context.Context, backend, account, message, what string) (identity, *Error) {
	for _, b := range c.backends {
		if b.Name() != backend {
			continue
		}
		start := time.Now()
		acct, err := b.Lookup(ctx, account)
		c.observe(b.Name(), start, err)
		switch {
		case err == nil:
			return identity{Account: acct.Name, Labels: acct.Labels, Backend: backend, Credential: acct.Credential}, nil
		case errors.Is(err, authn.ErrNoMatch):
			return identity{}, c.unauthorized(message, fmt.Errorf("%s: %s no longer knows %q", what, backend, account))
		default:
			return identity{}, unavailable(fmt.Errorf("%s: lookup: %w", backend, err))
		}
	}
	return identity{}, c.unauthorized(message, fmt.Errorf("%s: authenticator %q is not configured", what, backend))
}

func unavailable(reason error) *Error {
	return &Error{
		Status:  http.StatusServiceUnavailable,
		Code:    CodeUnavailable,
		Message: "authentication backend unavailable, try again later",
		Err:     reason,
	}
}

// observe records one backend call: its latency, and an error that is not
// an answer about the credentials.
func (c *chain) observe(backend string, start time.Time, err error) {
	if c.metrics == nil {
		return
	}
	c.metrics.observeStage("authn", backend, time.Since(start))
	if err != nil && !errors.Is(err, authn.ErrNoMatch) && !errors.Is(err, authn.ErrWrongPassword) {
		c.metrics.backendErrors.WithLabelValues(backend).Inc()
	}
}

// identify establishes who the request is from: a refresh token is checked
// and its account looked up again; anything else goes through the
// authenticator chain.
func (st *state) identify(ctx context.Context, req *Request) (identity, *Error) {
	if st.isSignIn(req) {
		return st.identifySignIn(ctx, req)
	}
	if st.isGatehouseToken(req) {
		return st.identifyAccessToken(ctx, req)
	}
	if req.Grant != GrantRefresh {
		if id, e, ok := st.workloadIdentity(ctx, req); ok {
			return id, e // a JWT from a workload_identity issuer, or from one not trusted
		}
		return st.chain.authenticate(ctx, req)
	}
	if st.refresh == nil {
		return identity{}, st.chain.unauthorized(msgBadRefresh, errors.New("refresh token presented but oauth2 is off"))
	}
	claims, err := st.refresh.Verify(req.RefreshToken, req.Service)
	if err != nil {
		return identity{}, st.chain.unauthorized(msgBadRefresh, err)
	}
	req.Account = claims.Subject
	if claims.From != nil {
		req.tokenName, req.tokenID = claims.From.Name, claims.From.ID
		id, e := st.identifyRefreshFromToken(ctx, claims.From)
		if e == nil && !st.refresh.Bound(claims, id.Credential) {
			e = st.chain.unauthorized(msgBadRefresh, fmt.Errorf("refresh token: not issued to access token %s", claims.From.ID))
		}
		return id, e
	}
	id, e := st.chain.lookup(ctx, claims.Authenticator, claims.Subject)
	if e != nil {
		return identity{}, e
	}
	if !st.refresh.Bound(claims, id.Credential) {
		return identity{}, st.chain.unauthorized(msgBadRefresh, fmt.Errorf("refresh token: the credential of %q in %s changed since it was issued", claims.Subject, claims.Authenticator))
	}
	return id, nil
}
