package authn

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gatehouse/gatehouse/internal/ldaptest"
	"github.com/gatehouse/gatehouse/token"
)

// BenchmarkLDAPToken measures tokens per second for an LDAP user: the
// authentication (search, bind as the user, bind back, group search) and
// an ES256 token, with pooled connections and with a new connection per
// request (what docker_auth does), over plain LDAP and StartTLS, with one
// client and with eight concurrent clients. slapd runs on the same machine.
//
//	go test -run '^$' -bench BenchmarkLDAPToken -benchtime 2s ./authn
func BenchmarkLDAPToken(b *testing.B) {
	srv := ldaptest.Start(b)
	dir := b.TempDir()
	tc := token.Config{Issuer: "bench", Expiration: 900, GenerateIfMissing: true,
		Certificate: filepath.Join(dir, "token.pem"), Key: filepath.Join(dir, "token.key")}
	signer, err := tc.NewSigner(token.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	access := []token.Access{{Type: "repository", Name: "pushers/app", Actions: []string{"pull", "push"}}}
	issue := func(a *LDAP) error {
		if _, err := a.Authenticate(context.Background(), "alice", ldaptest.Alice.Password); err != nil {
			return err
		}
		_, err := signer.Issue("alice", "registry", access)
		return err
	}
	for _, transport := range []string{LDAPTLSNone, LDAPTLSStartTLS} {
		for _, pooled := range []bool{true, false} {
			for _, clients := range []int{1, 8} {
				name := transport + "/pooled"
				if !pooled {
					name = transport + "/new-connection"
				}
				b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
					cfg := testLDAPConfig(srv)
					cfg.TLS, cfg.PoolSize = transport, 8
					if transport != LDAPTLSNone {
						cfg.CACertificate = srv.CAFile
					}
					a := newTestLDAP(b, cfg)
					a.pool.reuse = pooled
					if err := issue(a); err != nil { // dial outside the timing
						b.Fatal(err)
					}
					b.ResetTimer()
					if clients == 1 {
						for b.Loop() {
							if err := issue(a); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if err := issue(a); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				})
			}
		}
	}
}
