package authn_test

// Helpers of the backend fault tests (ldap_faults_test.go,
// mongo_faults_test.go): a directory or database stopped, slowed past its
// timeout, stalled, answering garbage or dropping connections, through the
// real HTTP handler.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/faultproxy"
	"github.com/gatehouse/gatehouse/internal/leakcheck"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// faultKnobs turn off the failed-login throttle, which would keep
// requests from reaching the backend, and make the bound on waiting for a
// password-check slot explicit. The configurations they go with also turn
// off the credential cache (cache: {ttl: 0}).
const faultKnobs = `throttle: {enabled: false}
limits: {concurrent_checks: 4, check_wait: 1s}
`

// faultCheckWait is limits.check_wait in faultKnobs.
const faultCheckWait = time.Second

// faultSlack is what an answer may take beyond the configured timeout.
const faultSlack = 2 * time.Second

// replaceOnce replaces old, which must occur exactly once in s.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("the configuration holds %q %d times, want once:\n%s", old, n, s)
	}
	return strings.Replace(s, old, new, 1)
}

// parseIn parses yml as dir/auth_config.yml.
func parseIn(t *testing.T, dir, yml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(dir, "auth_config.yml"), []byte(yml))
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, yml)
	}
	return cfg
}

// faultEnv is a server under test with its log and the timings measured.
type faultEnv struct {
	s     *auth.Server
	log   *testutil.SyncBuffer
	bound time.Duration // the longest a 503 may take: the timeout plus slack

	mu      sync.Mutex
	timings []string
}

func newFaultEnv(t *testing.T, cfg *config.Config, timeout time.Duration) *faultEnv {
	t.Helper()
	e := &faultEnv{log: &testutil.SyncBuffer{}, bound: timeout + faultSlack}
	var err error
	e.s, err = auth.New(cfg, auth.WithLogger(slog.New(slog.NewTextHandler(e.log, nil))))
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() {
		_ = e.s.Close()
		t.Logf("timings:\n\t%s", strings.Join(e.timings, "\n\t"))
	})
	return e
}

// record notes how long a step took, for the log.
func (e *faultEnv) record(step string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.timings = append(e.timings, fmt.Sprintf("%-55s %s", step, d.Round(time.Millisecond)))
}

// failClosed asks for a token as user during an outage: the answer must be
// a 503 with an errcode UNAVAILABLE body that reveals nothing internal,
// within the bound; never a 401, never a token.
func (e *faultEnv) failClosed(t *testing.T, step, user, pw string, scopes ...string) {
	t.Helper()
	start := time.Now()
	status, body, _ := tokenGrants(t, e.s, user, pw, scopes...)
	d := time.Since(start)
	e.record(step+": "+user+" 503", d)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("%s: %s got %d, want 503 (fail closed): %s\n--- log ---\n%s", step, user, status, body, e.log.String())
	}
	checkFaultBody(t, body)
	if d > e.bound {
		t.Errorf("%s: the 503 took %s, want at most %s", step, d, e.bound)
	}
}

func checkFaultBody(t *testing.T, body string) {
	t.Helper()
	checkErrcode(t, body, "UNAVAILABLE")
	if b := strings.ToLower(body); strings.Contains(b, "ldap") || strings.Contains(b, "token\"") {
		t.Errorf("body %s reveals internal detail or carries a token", body)
	}
}

// burst sends n requests at once during an outage: every one must fail
// closed within bound. ask makes one request and returns the status and
// body.
func (e *faultEnv) burst(t *testing.T, step string, n int, bound time.Duration, ask func() (int, string)) {
	t.Helper()
	type result struct {
		status int
		body   string
		d      time.Duration
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			status, body := ask()
			results[i] = result{status, body, time.Since(start)}
		})
	}
	wg.Wait()
	var slowest time.Duration
	for _, r := range results {
		slowest = max(slowest, r.d)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("%s: %d, want 503: %s", step, r.status, r.body)
		}
		checkFaultBody(t, r.body)
	}
	e.record(fmt.Sprintf("%s: %d at once, slowest 503", step, n), slowest)
	if slowest > bound {
		t.Errorf("%s: the slowest of %d 503s took %s, want at most %s", step, n, slowest, bound)
	}
}

// login returns a function that asks for a token as user.
// (It does not use t, so that it can run on other goroutines.)
func (e *faultEnv) login(user, pw string, scopes ...string) func() (int, string) {
	return func() (int, string) {
		r := httptest.NewRequest(http.MethodGet, "/auth?"+url.Values{"service": {"registry"}, "scope": scopes}.Encode(), nil)
		r.SetBasicAuth(user, pw)
		w := httptest.NewRecorder()
		e.s.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
}

// refreshToken logs in as user with offline_token and returns the refresh
// token issued.
func (e *faultEnv) refreshToken(t *testing.T, user, pw string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/auth?service=registry&client_id=faults&offline_token=true", nil)
	r.SetBasicAuth(user, pw)
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	var resp struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); w.Code != http.StatusOK || err != nil || resp.RefreshToken == "" {
		t.Fatalf("login with offline_token: %d %s", w.Code, w.Body)
	}
	return resp.RefreshToken
}

// redeem returns a function that redeems refresh token rt for scope.
func (e *faultEnv) redeem(rt, scope string) func() (int, string) {
	return func() (int, string) {
		form := url.Values{"grant_type": {"refresh_token"}, "service": {"registry"}, "client_id": {"faults"},
			"refresh_token": {rt}, "scope": {scope}}
		r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.s.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
}

// grants asks for a token as user and wants a 200 granting want, at once.
func (e *faultEnv) grants(t *testing.T, step, user, pw string, want map[string][]string, scopes ...string) {
	t.Helper()
	start := time.Now()
	status, body, got := tokenGrants(t, e.s, user, pw, scopes...)
	e.record(step+": "+user+" 200", time.Since(start))
	if status != http.StatusOK || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %s got %d %v, want 200 %v: %s\n--- log ---\n%s", step, user, status, got, want, body, e.log.String())
	}
}

// recovers asks as user until the answer is a 200 granting want, for at
// most limit; every answer before must be a 503 (never a 401, never other
// grants while the backend comes back).
func (e *faultEnv) recovers(t *testing.T, step string, limit time.Duration, user, pw string, want map[string][]string, scopes ...string) {
	t.Helper()
	start := time.Now()
	for {
		status, body, got := tokenGrants(t, e.s, user, pw, scopes...)
		switch {
		case status == http.StatusOK && reflect.DeepEqual(got, want):
			e.record(step+": "+user+" 200 again after", time.Since(start))
			return
		case status == http.StatusServiceUnavailable:
			checkFaultBody(t, body)
		case status != http.StatusOK:
			t.Fatalf("%s: %s got %d while the backend comes back, want 503 or 200: %s", step, user, status, body)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: %s got %d %v after %s, want 200 %v: %s\n--- log ---\n%s", step, user, status, got, limit, want, body, e.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reload reloads cfg and returns how long building it took.
func (e *faultEnv) reload(t *testing.T, step string, cfg *config.Config) time.Duration {
	t.Helper()
	start := time.Now()
	if err := e.s.Reload(cfg); err != nil {
		t.Fatalf("%s: Reload: %v", step, err)
	}
	d := time.Since(start)
	e.record(step+": Reload", d)
	return d
}

// closeClean closes the server and checks that it left nothing behind: no
// connection open through proxy, and no more goroutines than at snap
// (with a slack of 2, for a restarted harness's own).
func (e *faultEnv) closeClean(t *testing.T, proxy *faultproxy.Proxy, snap leakcheck.Snapshot) {
	t.Helper()
	_ = e.s.Close()
	deadline := time.Now().Add(3 * time.Second)
	for proxy.Open() > 0 {
		if time.Now().After(deadline) {
			t.Errorf("%d connections to the backend still open 3s after the server closed", proxy.Open())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	snap.Check(t, 2)
}
