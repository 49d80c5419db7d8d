package auth

import (
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
				benchServe(b, s, benchRequest("repository:alice/app:pull,push", "alice", password))
			})
		}
	}
}
