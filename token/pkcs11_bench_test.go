//go:build pkcs11

package token

import (
	"crypto/elliptic"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/hsmtest"
)

// BenchmarkIssuePKCS11 is whole ES256 tokens signed in SoftHSM2 through
// its PKCS #11 module: serially, and on all CPUs (one session per caller).
func BenchmarkIssuePKCS11(b *testing.B) {
	tok := hsmtest.New(b, "bench")
	tok.GenerateECDSA(b, "token-key", []byte{1}, elliptic.P256())
	c := hsmConfig(b, tok.Ref("token-key"), filepath.Join(b.TempDir(), "token.pem"))
	c.GenerateIfMissing = true
	s := hsmSigner(b, c)
	b.Run("ES256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Issue("alice", "registry.example.com", benchAccess); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ES256-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Issue("alice", "registry.example.com", benchAccess); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
