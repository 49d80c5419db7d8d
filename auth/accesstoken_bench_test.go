package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// BenchmarkServeHTTPAccessToken is a repeat login of alice (bcrypt 10)
// with her password and with an access token as the password, otherwise
// as BenchmarkServeHTTP, with the grant cache on (the default) and off:
// an access-token login must cost no more than a password login on the
// same path (docs/performance.md).
func BenchmarkServeHTTPAccessToken(b *testing.B) {
	for _, grantCache := range []string{"grant-cache", "no-grant-cache"} {
		for _, cred := range []string{"password", "access-token"} {
			b.Run(grantCache+"/"+cred, func(b *testing.B) {
				s := benchHandlerServer(b, "access_tokens: {max_ttl: 30d}")
				if grantCache == "no-grant-cache" {
					s.state.Load().grants = nil
				}
				password := "alicepw"
				if cred == "access-token" {
					raw, _, err := s.state.Load().signer.AccessTokens().Mint(token.AccessTokenClaims{Name: "ci", Owner: "alice",
						Authenticator: "static", Scopes: []string{"repository:alice/*:pull,push"}, ExpiresAt: time.Now().Add(time.Hour)})
					if err != nil {
						b.Fatal(err)
					}
					password = raw
				}
				r := httptest.NewRequest(http.MethodGet, "/auth?service=registry.example.com&scope=repository:alice/app:pull,push", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.SetBasicAuth("alice", password)
				w := &benchWriter{h: http.Header{}}
				s.ServeHTTP(w, r) // the first request fills the caches
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
			})
		}
	}
}
