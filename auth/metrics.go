package auth

import (
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of a token request, the "outcome" label of
// gatehouse_token_requests_total.
const (
	OutcomeIssued         = "issued"          // every requested action granted
	OutcomeDenied         = "denied"          // a token, but some requested action refused
	OutcomeBadRequest     = "bad_request"     // malformed or oversized request
	OutcomeUnauthorized   = "unauthorized"    // wrong or missing credentials, bad refresh token
	OutcomeBackendFailure = "backend_failure" // an authenticator could not answer
	OutcomeOverloaded     = "overloaded"      // no password-check slot came free in time (503, Retry-After)
	OutcomeThrottled      = "throttled"       // too many failed logins from the key (429)
	OutcomeInternal       = "internal_error"  // a bug: signing failed
)

// Metrics are Gatehouse's Prometheus collectors, on a registry of the
// server's own (no global state): token requests by outcome, latency per
// stage, backend errors, reloads and build information.
type Metrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	stage         *prometheus.HistogramVec
	backendErrors *prometheus.CounterVec
	signerErrors  *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	lastReload    prometheus.Gauge
	cacheRequests *prometheus.CounterVec

	// Series every token request touches, looked up once: a label lookup
	// hashes the label values on every call.
	authzStage, signStage prometheus.Observer
	cacheHit, cacheMiss   prometheus.Counter
	grantHit              prometheus.Counter
	byOutcome             [len(outcomeValues)]outcomeSeries
}

// outcomeValues are the values of the outcome label.
var outcomeValues = [...]string{OutcomeIssued, OutcomeDenied, OutcomeBadRequest, OutcomeUnauthorized,
	OutcomeBackendFailure, OutcomeOverloaded, OutcomeThrottled, OutcomeInternal}

// grantValues are the values of the grant label ("unknown": the request could
// not be parsed).
var grantValues = [...]string{GrantPassword, GrantRefresh, GrantAccessToken, "anonymous", "unknown"}

// outcomeSeries are the series of one outcome.
type outcomeSeries struct {
	duration prometheus.Observer
	byGrant  [len(grantValues)]prometheus.Counter
}

// latencyBuckets span a cached answer (tens of µs) to a slow bcrypt or
// directory (seconds).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(version string) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_token_requests_total",
			Help: "Token requests by outcome and grant type (password, refresh_token, access_token, anonymous).",
		}, []string{"outcome", "grant"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_token_request_duration_seconds",
			Help:    "Time to answer a token request, by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_stage_duration_seconds",
			Help:    "Time spent per stage of a token request: authn (per backend), authz, sign.",
			Buckets: latencyBuckets,
		}, []string{"stage", "backend"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_backend_errors_total",
			Help: "Authenticator calls that failed to answer (the client got 503).",
		}, []string{"backend"}),
		signerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_signer_errors_total",
			Help: "Tokens the key service holding the signing key (awskms, pkcs11) did not sign in time, after retries (the client got 503).",
		}, []string{"key"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_credential_cache_requests_total",
			Help: "Successful password checks by result: hit (answered from the cache or by an identical check in flight) or miss.",
		}, []string{"result"}),
		grantHit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_grant_cache_hits_total",
			Help: "GET token requests answered from the grant cache: the same request as an earlier one, signed again without parsing, password check or ACL.",
		}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in force was loaded.",
		}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gatehouse_build_info",
		Help:        "Gatehouse's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.registry.MustRegister(m.requests, m.duration, m.stage, m.backendErrors, m.signerErrors, m.reloads, m.lastReload, m.cacheRequests, m.grantHit, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	m.authzStage = m.stage.WithLabelValues("authz", "")
	m.signStage = m.stage.WithLabelValues("sign", "")
	m.cacheHit = m.cacheRequests.WithLabelValues("hit")
	m.cacheMiss = m.cacheRequests.WithLabelValues("miss")
	for i, o := range outcomeValues {
		m.byOutcome[i].duration = m.duration.WithLabelValues(o)
		for j, g := range grantValues {
			m.byOutcome[i].byGrant[j] = m.requests.WithLabelValues(o, g)
		}
	}
	return m
}

// watchGrantCache adds gauges of the grant cache's entries and estimated
// bytes, read from usage at each scrape.
func (m *Metrics) watchGrantCache(usage func() (entries, bytes int)) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_grant_cache_entries",
			Help: "Grants remembered by the grant cache.",
		}, func() float64 { n, _ := usage(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_grant_cache_bytes",
			Help: "Estimated memory held by the grant cache's entries (bounded by cache.max_bytes).",
		}, func() float64 { _, b := usage(); return float64(b) }))
}

// Handler serves the metrics in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Registry is where the collectors are registered; add your own to it.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) observeRequest(outcome, grant string, d time.Duration) {
	i := slices.Index(outcomeValues[:], outcome)
	j := slices.Index(grantValues[:], grant)
	if i < 0 || j < 0 { // not one of the fixed values: a bug, but still counted
		m.requests.WithLabelValues(outcome, grant).Inc()
		m.duration.WithLabelValues(outcome).Observe(d.Seconds())
		return
	}
	m.byOutcome[i].byGrant[j].Inc()
	m.byOutcome[i].duration.Observe(d.Seconds())
}

func (m *Metrics) observeStage(stage, backend string, d time.Duration) {
	m.stage.WithLabelValues(stage, backend).Observe(d.Seconds())
}

func outcomeOf(e *Error) string {
	switch {
	case e.Status == http.StatusUnauthorized:
		return OutcomeUnauthorized
	case e.Status == http.StatusTooManyRequests:
		return OutcomeThrottled
	case e.Status == http.StatusServiceUnavailable && e.RetryAfter > 0:
		return OutcomeOverloaded
	case e.Status == http.StatusServiceUnavailable:
		return OutcomeBackendFailure
	case e.Status >= 500:
		return OutcomeInternal
	}
	return OutcomeBadRequest
}
