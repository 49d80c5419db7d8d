package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// chain asks the authenticators in order, as docker_auth does: an unknown
// account passes to the next one, a wrong password stops with 401, a
// backend failure stops with 503.
type chain struct {
	backends  []authn.Authenticator
	fake      *authn.FakeHash
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
	cost := 0
	for _, b := range backends {
		if bc, ok := b.(authn.BcryptCoster); ok {
			cost = max(cost, bc.MaxBcryptCost())
		}
	}
	fake, err := authn.NewFakeHash(cost)
	if err != nil {
		return nil, err
	}
	if o.now == nil {
		o.now = time.Now
	}
	cache, err := newCredCache(o.cacheTTL, max(o.cacheEntries, 1), o.now)
	if err != nil {
		return nil, err
	}
	return &chain{backends: backends, fake: fake, challenge: fmt.Sprintf("Basic realm=%q", realm), metrics: m,
		cache: cache, limit: newCheckLimiter(o.checks, o.checkWait)}, nil
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
	for _, b := range c.backends {
		if k, ok := b.(authn.Knower); ok && !k.Knows(account) {
			continue // what its Authenticate would say, without the cache or a check slot
		}
		labels, until, err := c.check(ctx, b, account, password, mac, &req.attempt)
		switch {
		case errors.Is(err, errThrottled):
			return identity{}, req.attempt.refused()
		case errors.Is(err, errBusy):
			return identity{}, c.limit.busy(fmt.Errorf("%s: %w", b.Name(), err))
		case err == nil:
			return identity{Account: account, Labels: labels, Backend: b.Name(), until: until}, nil
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
	// response times do not tell which accounts exist.
	release, err := c.limit.acquire(ctx)
	if err != nil {
		return identity{}, c.limit.busy(err)
	}
	if !req.attempt.reserve() {
		release()
		return identity{}, req.attempt.refused()
	}
	c.fake.Compare(password)
	release()
	return identity{}, c.unauthorized(msgBadCredentials, fmt.Errorf("unknown account %q", account))
}

// check asks one backend, through the credential cache when the request
// carries credentials (mac is their HMAC), and within a limiter slot and a
// throttle reservation (att) when the backend has to do the work.
// Anonymous requests take neither. until is when the cached answer expires
// (zero when mac is nil).
func (c *chain) check(ctx context.Context, b authn.Authenticator, account, password string, mac *[32]byte, att *attempt) (authn.Labels, time.Time, error) {
	run := func() (authn.Labels, error) {
		if account != "" {
			release, err := c.limit.acquire(ctx)
			if err != nil {
				return nil, err
			}
			defer release()
			if !att.reserve() {
				return nil, errThrottled
			}
		}
		start := time.Now()
		labels, err := b.Authenticate(ctx, account, password)
		c.observe(b.Name(), start, err)
		return labels, err
	}
	if mac == nil {
		labels, err := run()
		return labels, time.Time{}, err
	}
	labels, until, shared, err := c.cache.do(cacheKey{backend: b.Name(), account: account, mac: *mac}, run)
	if shared && errors.Is(err, errThrottled) {
		// The throttle refused the check this request waited for, maybe
		// for another client: its own budget decides.
		labels, err = run()
		return labels, time.Time{}, err
	}
	if c.metrics != nil && err == nil {
		if shared {
			c.metrics.cacheHit.Inc()
		} else {
			c.metrics.cacheMiss.Inc()
		}
	}
	return labels, until, err
}

// lookup finds account again in the authenticator named backend, without a
// password: how a refresh token is redeemed. An account that is gone, or a
// backend no longer configured, is a 401.
func (c *chain) lookup(ctx context.Context, backend, account string) (identity, *Error) {
	for _, b := range c.backends {
		if b.Name() != backend {
			continue
		}
		start := time.Now()
		labels, err := b.Lookup(ctx, account)
		c.observe(b.Name(), start, err)
		switch {
		case err == nil:
			return identity{Account: account, Labels: labels, Backend: backend}, nil
		case errors.Is(err, authn.ErrNoMatch):
			return identity{}, c.unauthorized(msgBadRefresh, fmt.Errorf("refresh token: %s no longer knows %q", backend, account))
		default:
			return identity{}, unavailable(fmt.Errorf("%s: lookup: %w", backend, err))
		}
	}
	return identity{}, c.unauthorized(msgBadRefresh, fmt.Errorf("refresh token: authenticator %q is not configured", backend))
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
