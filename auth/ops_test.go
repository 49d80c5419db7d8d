package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/authn"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

func TestMetrics(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	get(s, "service=registry&scope=repository:alice/a:pull", "alice", "alicepw") // issued
	get(s, "service=registry&scope=repository:bob/a:pull", "alice", "alicepw")   // denied
	get(s, "service=registry", "alice", "wrong")                                 // unauthorized
	get(s, "scope=x", "alice", "alicepw")                                        // bad request
	get(s, "service=registry&scope=repository:public/a:pull", "-", "")           // anonymous, issued
	post(s, form("grant_type", "password", "service", "r", "client_id", "c", "username", "alice", "password", "alicepw"))
	r := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	for _, want := range []string{
		`gatehouse_token_requests_total{grant="password",outcome="issued"} 2`,
		`gatehouse_token_requests_total{grant="password",outcome="denied"} 1`,
		`gatehouse_token_requests_total{grant="password",outcome="unauthorized"} 1`,
		`gatehouse_token_requests_total{grant="unknown",outcome="bad_request"} 1`,
		`gatehouse_token_requests_total{grant="anonymous",outcome="issued"} 1`,
		// alice's second and third successful logins come from the cache.
		`gatehouse_stage_duration_seconds_count{backend="static",stage="authn"} 3`,
		`gatehouse_credential_cache_requests_total{result="hit"} 2`,
		`gatehouse_credential_cache_requests_total{result="miss"} 1`,
		`gatehouse_stage_duration_seconds_count{backend="",stage="sign"} 4`,
		`gatehouse_stage_duration_seconds_count{backend="",stage="authz"} 4`,
		`gatehouse_config_reloads_total{result="failure"} 0`,
		`gatehouse_build_info{goversion=`,
		`gatehouse_token_request_duration_seconds_bucket{outcome="issued",le="+Inf"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(r.raw, "alicepw") {
		t.Fatal("a password reached the metrics")
	}
}

func TestMetricsOnTheirOwnAddress(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	s.state.Load().cfg.Server.MetricsAddr = "127.0.0.1:0"
	if r := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil)); r.status != 404 {
		t.Fatalf("metrics on the main listener: %d", r.status)
	}
	rec := httptest.NewRecorder()
	s.Metrics().Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "gatehouse_build_info") {
		t.Fatalf("metrics handler: %d", rec.Code)
	}
}

// checkingAuthenticator is a backend whose readiness check fails on demand.
type checkingAuthenticator struct {
	fakeAuthenticator
	down bool
}

func (c *checkingAuthenticator) Check(ctx context.Context) error {
	if c.down {
		return errors.New("dial tcp: connection refused")
	}
	return nil
}

func TestHealthAndReadiness(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := do(s, httptest.NewRequest(http.MethodGet, path, nil)); r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.raw)
		}
	}
	backend := &checkingAuthenticator{fakeAuthenticator: fakeAuthenticator{name: "ldap", err: authn.ErrNoMatch}}
	st := s.state.Load()
	st.backends = append(st.backends, backend)
	backend.down = true
	r := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if r.status != 503 || !strings.Contains(r.raw, `"ldap"`) || strings.Contains(r.raw, "refused") {
		t.Fatalf("readyz with a backend down: %d %s", r.status, r.raw)
	}
	if r := do(s, httptest.NewRequest(http.MethodGet, "/healthz", nil)); r.status != 200 {
		t.Fatalf("healthz must not depend on backends: %d", r.status)
	}
	s.Close()
	if r := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil)); r.status != 503 {
		t.Fatalf("readyz after close: %d", r.status)
	}
}

func TestReload(t *testing.T) {
	env := newOAuthEnv(t)
	s := env.server("", "")
	if r := get(s, "service=registry&scope=repository:blue/x:pull", "alice", "alicepw"); grants(claimsOf(t, r.body.Token)) != "repository:blue/x:pull" {
		t.Fatalf("before: %s", r.raw)
	}
	// A configuration in which alice is on the red team.
	next := env.server("", "  alice: {password: \""+string(alicePW)+"\", labels: {team: [red]}}\n")
	if err := s.Reload(next.Config()); err != nil {
		t.Fatal(err)
	}
	if r := get(s, "service=registry&scope=repository:blue/x:pull", "alice", "alicepw"); grants(claimsOf(t, r.body.Token)) != "repository:blue/x:" {
		t.Fatalf("after: %s", r.raw)
	}
	// A configuration that does not build is refused; the current one stays.
	bad := next.Config()
	bad.Htpasswd.Path = env.dir + "/absent"
	if err := s.Reload(bad); err == nil {
		t.Fatal("a broken configuration was accepted")
	}
	if r := get(s, "service=registry", "carol", "carolpw"); r.status != 200 {
		t.Fatalf("after a failed reload: %d %s", r.status, r.raw)
	}
	m := do(s, httptest.NewRequest(http.MethodGet, "/metrics", nil)).raw
	for _, want := range []string{`gatehouse_config_reloads_total{result="success"} 1`, `gatehouse_config_reloads_total{result="failure"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAuditLog(t *testing.T) {
	var buf testutil.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env := newOAuthEnv(t)
	s := env.server("", "", WithLogger(logger))
	login := get(s, "service=registry&offline_token=true&client_id=docker", "alice", "alicepw")
	rt := login.body.RefreshToken
	get(s, "service=registry&scope=repository:alice/app:pull,push&scope=repository:bob/x:pull", "alice", "alicepw")
	get(s, "service=registry", "alice", "wrong-secret-password")
	post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "c", "refresh_token", rt, "scope", "repository:alice/app:pull"))
	post(s, form("grant_type", "refresh_token", "service", "registry", "client_id", "c", "refresh_token", rt+"tampered"))
	get(s, "service=registry", "", rt)
	logs := buf.String()

	for _, secret := range []string{"alicepw", "wrong-secret-password", rt, login.body.Token, string(alicePW), "$2a$"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a secret reached the log: %q\n%s", secret, logs)
		}
	}
	// The audit line of the second request says who, what and why.
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(l, "bob/x") {
			json.Unmarshal([]byte(l), &line)
		}
	}
	for _, key := range []string{"account", "client_ip", "service", "decisions", "authenticator", "grant", "latency", "outcome"} {
		if _, ok := line[key]; !ok {
			t.Errorf("audit line lacks %s: %v", key, line)
		}
	}
	decisions, _ := json.Marshal(line["decisions"])
	for _, want := range []string{`"scope":"repository:alice/app:pull,push"`, `"granted":"pull,push"`, `"rule":0`, `"rule":-1`} {
		if !strings.Contains(string(decisions), want) {
			t.Errorf("decisions %s lack %s", decisions, want)
		}
	}
	if line["outcome"] != OutcomeDenied || line["authenticator"] != "static" || line["grant"] != "password" {
		t.Errorf("audit line %v", line)
	}
}

func TestReadinessWaitsForMongoACL(t *testing.T) {
	env := newOAuthEnv(t)
	// Nothing listens on port 1: the rules can never load.
	env.top = "acl_mongo:\n  uri: \"mongodb://127.0.0.1:1/gatehouse?timeoutMS=200\"\n  collection: acl\n"
	s := env.server("", "")
	r := do(s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if r.status != 503 || !strings.Contains(r.raw, `"acl_mongo"`) {
		t.Fatalf("readyz before acl_mongo loaded: %d %s", r.status, r.raw)
	}
}
