package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse/gatehouse/internal/kmstest"
)

// benchAccess is a typical push request: one repository, two actions.
var benchAccess = []Access{{Type: "repository", Name: "team/service-api", Actions: []string{"pull", "push"}}}

// eddsaSigner is a Signer with an Ed25519 key signing through golang-jwt's
// SigningMethodEdDSA. Ed25519 is not a supported key type (registries v2.8
// cannot verify it); it exists only to compare signing costs.
func eddsaSigner(b *testing.B) *Signer {
	key := testKey(b, "ed25519").(ed25519.PrivateKey)
	s := &Signer{alg: "EdDSA", issuer: "bench issuer", expiration: 15 * time.Minute, pub: key.Public(), now: time.Now,
		sign: func(_ context.Context, dst, msg []byte) ([]byte, error) {
			sig, err := jwt.SigningMethodEdDSA.Sign(string(msg), key)
			return append(dst, sig...), err
		}}
	if err := s.precompute(); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkIssue(b *testing.B) {
	signers := []struct {
		name string
		new  func(*testing.B) *Signer
	}{
		{"RS256-2048", func(b *testing.B) *Signer { return testSigner(b, testKey(b, "rsa2048"), nil) }},
		{"ES256", func(b *testing.B) *Signer { return testSigner(b, testKey(b, "p256"), nil) }},
		{"ES256-no-x5c", func(b *testing.B) *Signer {
			return testSigner(b, testKey(b, "p256"), func(c *Config) { f := false; c.X5C = &f })
		}},
		{"EdDSA-golang-jwt", eddsaSigner},
		{"overhead-without-signing", func(b *testing.B) *Signer {
			s := testSigner(b, testKey(b, "p256"), nil)
			s.sign = func(_ context.Context, dst, _ []byte) ([]byte, error) { return append(dst, make([]byte, 64)...), nil }
			return s
		}},
	}
	for _, bs := range signers {
		b.Run(bs.name, func(b *testing.B) {
			s := bs.new(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Issue("alice", "registry.example.com", benchAccess); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIssueParallel is ES256 throughput on all CPUs.
func BenchmarkIssueParallel(b *testing.B) {
	s := testSigner(b, testKey(b, "p256"), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Issue("alice", "registry.example.com", benchAccess); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGolangJWTES256 is the straightforward way for comparison:
// jwt.NewWithClaims with a claims struct and SignedString, header built per
// token (same kid and x5c as the ES256 Issue benchmark).
func BenchmarkGolangJWTES256(b *testing.B) {
	s := testSigner(b, testKey(b, "p256"), nil)
	key := testKey(b, "p256")
	x5c := []string{}
	for _, c := range s.certs {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
	}
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now().Unix()
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwtClaims{
			Iss: s.issuer, Sub: "alice", Aud: "registry.example.com", Exp: now + 900, Nbf: now - 10, Iat: now,
			Jti: "AAECAwQFBgcICQoLDA0ODw", Access: benchAccess})
		tok.Header["kid"] = s.kid
		tok.Header["x5c"] = x5c
		if _, err := tok.SignedString(key); err != nil {
			b.Fatal(err)
		}
	}
}

// jwtClaims adapts the claims struct to jwt.Claims for the comparison.
type jwtClaims claims

func (jwtClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (jwtClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (jwtClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (jwtClaims) GetIssuer() (string, error)                   { return "", nil }
func (jwtClaims) GetSubject() (string, error)                  { return "", nil }
func (jwtClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// BenchmarkClaims compares the hand-written claims encoder with
// encoding/json on the same claims.
func BenchmarkClaims(b *testing.B) {
	s := &Signer{issuer: "bench issuer"}
	if err := s.precompute(); err != nil {
		b.Fatal(err)
	}
	jti := []byte("AAECAwQFBgcICQoLDA0ODw")
	b.Run("appendClaims", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = s.appendClaims(buf[:0], "alice", "registry.example.com", 1780315200, 1780316100, jti, benchAccess)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(claims{Iss: s.issuer, Sub: "alice", Aud: "registry.example.com", Exp: 1780316100,
				Nbf: 1780315190, Iat: 1780315200, Jti: string(jti), Access: benchAccess}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIssueAWSKMS is ES256 through a KMS API on loopback (local-kms,
// in the test process), one call at a time: the cost of the HTTP round
// trip, SigV4 signing and local-kms's work, on top of Issue.
func BenchmarkIssueAWSKMS(b *testing.B) {
	srv := kmstest.Start(b)
	c := kmsConfig(b, b.TempDir(), srv.Ref(srv.CreateKey(b, "ECC_NIST_P256")))
	s := kmsSigner(b, c)
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Issue("alice", "registry.example.com", benchAccess); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	// 16 requests at once per core, as a busy token endpoint has.
	b.Run("parallel-16x", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Issue("alice", "registry.example.com", benchAccess); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
