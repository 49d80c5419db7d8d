package auth

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/redistest"
)

// Benchmarks of the token endpoint's hot path. docs/performance.md has the
// figures and the load benchmark (go run ./bench/load) that measures the
// same paths over loopback HTTP.
//
//	go test -run '^$' -bench . -benchmem ./auth

func BenchmarkParseScopes(b *testing.B) {
	cases := []struct {
		name   string
		values []string
	}{
		{"pull", []string{"repository:team/service-api:pull"}},
		{"pull-push", []string{"repository:team/service-api:pull,push"}},
		{"host-port-name", []string{"repository:registry.example.com:5000/team/service-api:pull,push"}},
		// docker push of an image with a cross-repository blob mount.
		{"push-with-mount", []string{"repository:team/service-api:pull,push", "repository:team/base:pull"}},
		{"merged-duplicates", []string{"repository:team/app:pull repository:team/app:push repository:team/app:pull"}},
		{"64-scopes", func() []string {
			v := make([]string, MaxScopes)
			for i := range v {
				v[i] = fmt.Sprintf("repository:team/app%02d:pull,push", i)
			}
			return v
		}()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseScopes(c.values); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchHandlerServer is a Server with a P-256 key (generated), a static
// bcrypt-10 user alice, anonymous access and the seed policy, logging at
// info level (the audit line is part of the cost) to io.Discard.
func benchHandlerServer(b *testing.B, cache string) *Server {
	b.Helper()
	dir := b.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("alicepw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	yml := fmt.Sprintf(`server: {addr: ":0"}
token:
  issuer: bench-issuer
  expiration: 900
  certificate: %[1]s/token.pem
  key: %[1]s/token.key
  generate_if_missing: true
%[3]s
users:
  alice: {password: %[2]q}
  "": {}
acl:
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
    comment: own namespace
  - match: {account: "", name: "public/*"}
    actions: [pull]
`, dir, hash, cache)
	return benchServer(b, benchConfig(b, dir, yml))
}

// benchConfig writes yml to dir/auth_config.yml and loads it.
func benchConfig(b *testing.B, dir, yml string) *config.Config {
	b.Helper()
	path := filepath.Join(dir, "auth_config.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchServer is a Server for cfg logging at info level in JSON, audit
// line included, to io.Discard (as serve does with log.format json),
// closed when b ends.
func benchServer(b *testing.B, cfg *config.Config) *Server {
	b.Helper()
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(cfg, WithLogger(logger), WithJSONAuditLog(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchWriter is a ResponseWriter that keeps nothing, so allocs/op counts
// the handler's allocations only (what net/http's own writer adds is in
// the load benchmark).
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// benchRequest is a GET token request for scope from 127.0.0.1:40000,
// with user and password as Basic credentials (none when user is "").
func benchRequest(scope, user, password string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/auth?service=registry.example.com&scope="+scope, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	if user != "" {
		r.SetBasicAuth(user, password)
	}
	return r
}

// benchServe measures r through s.ServeHTTP: a first request, which fills
// the caches and must be answered 200, then one per iteration, allocations
// reported; the last answer must be 200 too.
func benchServe(b *testing.B, s *Server, r *http.Request) {
	b.Helper()
	w := &benchWriter{h: http.Header{}}
	s.ServeHTTP(w, r)
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.status = 0
		s.ServeHTTP(w, r)
	}
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkServeHTTP is one GET token request through Server.ServeHTTP,
// with the P-256 key (the ES256 signature, ~27 µs, is most of a cached
// request; see BenchmarkIssue in ./token):
//
//   - anonymous: no credentials, a public pull;
//   - cached: alice (bcrypt cost 10) from her second request on, the same
//     request each time: answered by the grant cache;
//   - credential-cache: the same without the grant cache: parsed, the
//     password answered by the credential cache, decided by the ACL (a
//     client's first request for another repository);
//   - uncached: alice with cache.ttl: 0, a bcrypt comparison per request.
func BenchmarkServeHTTP(b *testing.B) {
	cases := []struct {
		name, cache, user, scope string
		noGrantCache             bool
	}{
		{"anonymous", "", "", "repository:public/base:pull", false},
		{"cached", "", "alice", "repository:alice/app:pull,push", false},
		{"credential-cache", "", "alice", "repository:alice/app:pull,push", true},
		{"uncached-bcrypt10", "cache: {ttl: 0}", "alice", "repository:alice/app:pull,push", false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := benchHandlerServer(b, c.cache)
			if c.noGrantCache {
				s.state.Load().grants = nil
			}
			benchServe(b, s, benchRequest(c.scope, c.user, "alicepw"))
		})
	}
}

// BenchmarkServeHTTPParallel is the cached and anonymous requests on every
// CPU: contention on the cache lock, the metrics and the logger.
func BenchmarkServeHTTPParallel(b *testing.B) {
	for _, user := range []string{"", "alice"} {
		name, scope := "anonymous", "repository:public/base:pull"
		if user != "" {
			name, scope = "cached", "repository:alice/app:pull,push"
		}
		b.Run(name, func(b *testing.B) {
			s := benchHandlerServer(b, "")
			r := benchRequest(scope, user, "alicepw")
			s.ServeHTTP(&benchWriter{h: http.Header{}}, r)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := &benchWriter{h: http.Header{}}
				for pb.Next() {
					w.status = 0
					s.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
		})
	}
}

// BenchmarkThrottleStore is a cached login with throttle.store off and on
// (a redis-server from internal/redistest): a cached success must not
// touch the store, so the two stay within noise (docs/performance.md).
func BenchmarkThrottleStore(b *testing.B) {
	redis := redistest.Start(b)
	for _, path := range []string{"cached", "credential-cache"} {
		for _, store := range []string{"off", "on"} {
			b.Run(path+"/store-"+store, func(b *testing.B) {
				section := ""
				if store == "on" {
					section = fmt.Sprintf("throttle: {store: {type: redis, addrs: [%q]}}", redis.Addr)
				}
				s := benchHandlerServer(b, section)
				if path == "credential-cache" {
					s.state.Load().grants = nil
				}
				benchServe(b, s, benchRequest("repository:alice/app:pull,push", "alice", "alicepw"))
			})
		}
	}
}
