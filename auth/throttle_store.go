package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// throttleStore is the shared half of the throttle (throttle.store): the
// failure counts of every replica in one Redis or Valkey, updated by
// atomic scripts with the same arithmetic as the in-memory records
// (throttle_table.go record). Reservations for checks in flight stay in
// each replica.
//
// Every call is bounded by the configured timeout. A call that fails or
// times out marks the store down for storeRetry: meanwhile the throttle
// counts in its own memory without asking (fail open to per-replica
// counts, never to no throttling), each such operation is counted in
// gatehouse_throttle_store_fallbacks_total, and a warning is logged at most
// once per storeLogEvery.
type throttleStore struct {
	client   redis.UniversalClient
	cfg      config.ThrottleStore // what it was built from, to keep it over a reload
	password string
	timeout  time.Duration
	logger   *slog.Logger
	metrics  *storeMetrics

	downUntil atomic.Int64 // UnixNano: skip the store until then
	lastLog   atomic.Int64 // UnixNano of the last warning
	skipped   atomic.Int64 // fallbacks since the last warning
}

// storeRetry is how long the throttle stops asking a store that failed.
const storeRetry = time.Second

// storeLogEvery bounds the store's warnings.
const storeLogEvery = 30 * time.Second

// storeMetrics are the store's collectors; they belong to the Server and
// outlive any one store.
type storeMetrics struct {
	fallbacks prometheus.Counter
	// signInFallbacks counts the sign-in revalidation calls
	// (signin_share.go) made without the store.
	signInFallbacks prometheus.Counter
	up              atomic.Int64 // 1 when the last call succeeded; -1 without a store
}

func newStoreMetrics(reg *prometheus.Registry) *storeMetrics {
	m := &storeMetrics{fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_throttle_store_fallbacks_total",
		Help: "Throttle operations counted in this replica's memory because the shared throttle store (throttle.store) did not answer in time.",
	}), signInFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_signin_store_fallbacks_total",
		Help: "Sign-in revalidation calls to the shared store (throttle.store) that it did not answer in time: the revalidation used this replica's memory only.",
	})}
	m.up.Store(-1)
	reg.MustRegister(m.fallbacks, m.signInFallbacks, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_throttle_store_up",
		Help: "1 when the shared throttle store answered the last call, 0 when it did not, -1 when none is configured.",
	}, func() float64 { return float64(m.up.Load()) }))
	return m
}

// newThrottleStore builds the client of c (it does not connect: the first
// call does, so Gatehouse starts while the store is down). It returns
// prev when c and the password are unchanged.
func newThrottleStore(c *config.ThrottleStore, prev *throttleStore, logger *slog.Logger, m *storeMetrics) (*throttleStore, error) {
	var errs []error
	password := ""
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		password = strings.TrimSpace(string(b))
		switch {
		case err != nil:
			errs = append(errs, cfgerr.At(fmt.Errorf("throttle store: %w", err), "password_file"))
		case password == "":
			errs = append(errs, cfgerr.At(fmt.Errorf("throttle store: %s is empty", c.PasswordFile), "password_file"))
		}
	}
	var tlsCfg *tls.Config
	if c.TLS {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CACertificate != "" {
			pem, err := os.ReadFile(c.CACertificate)
			tlsCfg.RootCAs = x509.NewCertPool()
			switch {
			case err != nil:
				errs = append(errs, cfgerr.At(fmt.Errorf("throttle store: %w", err), "ca_certificate"))
			case !tlsCfg.RootCAs.AppendCertsFromPEM(pem):
				errs = append(errs, cfgerr.At(fmt.Errorf("throttle store: %s holds no PEM certificate", c.CACertificate), "ca_certificate"))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if prev != nil && prev.password == password && reflect.DeepEqual(prev.cfg, *c) {
		return prev, nil
	}
	timeout := c.Timeout.Or(config.DefaultThrottleStoreTimeout)
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      c.Addrs,
		MasterName: c.MasterName,
		Username:   c.Username,
		Password:   password,
		DB:         c.DB,
		TLSConfig:  tlsCfg,
		// Every call is bounded by timeout, retries included: a slow store
		// must not slow logins down.
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true, // CLIENT SETINFO is Redis 7.2+
	})
	return &throttleStore{client: client, cfg: *c, password: password, timeout: timeout,
		logger: logger.With("component", "throttle store"), metrics: m}, nil
}

// sharedRecord is a key's record in the store.
type sharedRecord struct {
	count       int
	last, until time.Time
}

// current is failures.current for a shared record.
func (r sharedRecord) current(now time.Time, window time.Duration) int {
	if now.Sub(r.last) > window {
		return 0
	}
	return r.count
}

// Keys: both of a request share the client's hash tag, so that one script
// may touch them in a Redis Cluster.
func storeIPKey(ip netip.Addr) string { return "gatehouse:throttle:{" + ip.String() + "}:ip" }

func storePairKey(pk pairKey) string {
	return "gatehouse:throttle:{" + pk.ip.String() + "}:pair:" + pk.account
}

// storeKeys returns the store's keys of a request: the client's, then the
// pair's when there is an account.
func storeKeys(ipk netip.Addr, pk pairKey, withAccount bool) []string {
	if withAccount {
		return []string{storeIPKey(ipk), storePairKey(pk)}
	}
	return []string{storeIPKey(ipk)}
}

// peekScript returns count, last and until (milliseconds) of every key.
var peekScript = redis.NewScript(`
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'c', 'l', 'u')
  out[3*i-2] = tonumber(v[1]) or 0
  out[3*i-1] = tonumber(v[2]) or 0
  out[3*i] = tonumber(v[3]) or 0
end
return out`)

// failScript counts a failure in every key, as throttle.record does:
// ARGV is now, window, delay, max_delay (milliseconds), then each key's
// limit. A key expires once its window and its block have passed.
var failScript = redis.NewScript(`
local now, window, delay, maxd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[4 + i])
  local v = redis.call('HMGET', key, 'c', 'l', 'u')
  local c, l, u = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
  if now - l > window then c = 0 end
  c = c + 1
  if c >= limit then
    local d = delay
    for j = 1, c - limit do
      if d >= maxd then break end
      d = d * 2
    end
    u = now + math.min(d, maxd)
  end
  redis.call('HSET', key, 'c', c, 'l', now, 'u', u)
  redis.call('PEXPIRE', key, math.max(window, u - now) + 1000)
end
return 1`)

// peek reads the records of keys; ok is false when the store did not
// answer (the caller goes on with its own records).
func (s *throttleStore) peek(keys []string) (recs [2]sharedRecord, ok bool) {
	var v []int64
	ok = s.call(func(ctx context.Context) (err error) {
		v, err = peekScript.Run(ctx, s.client, keys).Int64Slice()
		if err == nil && len(v) != 3*len(keys) {
			err = fmt.Errorf("throttle store: %d values for %d keys", len(v), len(keys))
		}
		return err
	})
	if !ok {
		return recs, false
	}
	for i := range keys {
		recs[i] = sharedRecord{count: int(v[3*i]), last: time.UnixMilli(v[3*i+1]), until: time.UnixMilli(v[3*i+2])}
	}
	return recs, true
}

// fail counts a failure under keys with limits; false when the store did
// not answer (the caller counts it in memory).
func (s *throttleStore) fail(now time.Time, set throttleSettings, keys []string) bool {
	args := []any{now.UnixMilli(), set.window.Milliseconds(), set.delay.Milliseconds(), set.maxDelay.Milliseconds(), set.ipLimit, set.pairLimit}
	return s.call(func(ctx context.Context) error {
		return failScript.Run(ctx, s.client, keys, args[:4+len(keys)]...).Err()
	})
}

// clear forgets the pair's failures after a success.
func (s *throttleStore) clear(pk pairKey) bool {
	return s.call(func(ctx context.Context) error {
		return s.client.Del(ctx, storePairKey(pk)).Err()
	})
}

// call runs a throttle operation f within the timeout (do).
func (s *throttleStore) call(f func(context.Context) error) bool {
	return s.do(s.metrics.fallbacks, f)
}

// do runs f within the timeout, unless the store is marked down; an
// operation done without the store is counted in fallbacks.
func (s *throttleStore) do(fallbacks prometheus.Counter, f func(context.Context) error) bool {
	if time.Now().UnixNano() < s.downUntil.Load() {
		s.fallback(fallbacks, nil)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		s.downUntil.Store(time.Now().Add(storeRetry).UnixNano())
		s.fallback(fallbacks, err)
		return false
	}
	if s.metrics.up.Swap(1) == 0 {
		s.logger.Info("throttle store answers again: failed logins are counted, and sign-in revalidations shared, across replicas")
	}
	return true
}

// fallback counts an operation done without the store and logs, at most
// once per storeLogEvery, why.
func (s *throttleStore) fallback(fallbacks prometheus.Counter, err error) {
	fallbacks.Inc()
	s.metrics.up.Store(0)
	n := s.skipped.Add(1)
	last := s.lastLog.Load()
	if now := time.Now().UnixNano(); now-last >= int64(storeLogEvery) && s.lastLog.CompareAndSwap(last, now) {
		s.skipped.Add(-n)
		s.logger.Warn("throttle store not answering: failed logins are counted in this replica only (each replica gives its own budget), and sign-in revalidations are this replica's own (a rotated refresh token is not shared), until it answers",
			"err", err, "fallbacks", n, "retry", storeRetry)
	}
}

// status pings the store for /readyz: "" when it answers.
func (s *throttleStore) status(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, 250*time.Millisecond))
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		s.metrics.up.Store(0)
		return "not answering: failed logins are counted per replica"
	}
	s.downUntil.Store(0) // answering again: the next call need not wait for storeRetry
	return ""
}

// close closes the client.
func (s *throttleStore) close() {
	if s != nil {
		_ = s.client.Close()
	}
}
