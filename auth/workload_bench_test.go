package auth

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// BenchmarkWorkloadToken measures a token request whose password is a
// GitHub Actions-shaped RS256 OIDC token, each request for another scope
// so the grant cache does not answer: "verified" with the caches off (the
// signature and claims are checked every time), "cached" with them on
// (the credential cache answers from the second request, keyed by the
// token's HMAC, as for a job pulling many layers). Both include signing
// the registry token. docs/performance.md has the figures.
func BenchmarkWorkloadToken(b *testing.B) {
	for _, bc := range []struct{ name, cache string }{
		{"verified", "cache: {ttl: 0}"},
		{"cached", "cache: {ttl: 1h}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newWLEnv(b, bc.cache)
			tok := e.github(b, nil)
			if r := get(e.s, wlScope, "ci", tok); r.status != 200 { // fetches the keys
				b.Fatalf("status %d: %s", r.status, r.raw)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				req := httptest.NewRequest(http.MethodGet, "/auth?"+wlScope+"&n="+strconv.Itoa(i), nil)
				req.SetBasicAuth("ci", tok)
				rec := httptest.NewRecorder()
				e.s.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
