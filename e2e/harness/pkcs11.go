//go:build pkcs11

package harness

import (
	"crypto/elliptic"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/hsmtest"
)

// hsmKeys generate a key pair of each key type in a SoftHSM2 token.
var hsmKeys = []struct {
	kt  KeyType
	gen func(t testing.TB, tok *hsmtest.Token, label string)
}{
	{ECP256, func(t testing.TB, tok *hsmtest.Token, label string) {
		tok.GenerateECDSA(t, label, []byte{1}, elliptic.P256())
	}},
	{RSA2048, func(t testing.TB, tok *hsmtest.Token, label string) {
		tok.GenerateRSA(t, label, []byte{1}, 2048)
	}},
}

// RunPKCS11PushPull runs the gatehouse binary built with -tags pkcs11,
// whose token key is in a SoftHSM2 token (no key file exists), in front of
// newRegistry's registry, ES256 and RS256, for each header. The registry
// trusts the certificate `gatehouse certificate` writes for the key (signed
// in the token) as its rootcertbundle; alice pushes an image and pulls it
// back (RequireSignedPushPull).
func RunPKCS11PushPull(t *testing.T, newRegistry RegistryFactory, headers ...KeyHeader) {
	bin := BuildGatehouseTags(t, "pkcs11")
	for _, hk := range hsmKeys {
		t.Run(hk.kt.Alg(), func(t *testing.T) {
			for _, h := range headers {
				t.Run(h.Name, func(t *testing.T) {
					tok := hsmtest.New(t, "gatehouse")
					hk.gen(t, tok, "token-key")
					dir := t.TempDir()
					key := SigningKey{Type: hk.kt, CertPath: filepath.Join(dir, "token.pem"), KeyPath: tok.Ref("token-key")}
					RunTool(t, bin, nil, "", "certificate", key.KeyPath, key.CertPath)
					key.CertDER, key.Public = readCertificate(t, key.CertPath)
					cfg := WriteBinaryConfig(t, dir, h.options(t, GatehouseOptions{Key: key}, dir), "")

					p := StartProcess(t, bin, cfg, "gatehouse-pkcs11", FreePort(t))
					p.WaitReady(t, 15*time.Second)
					realm := "http://" + strings.Replace(p.Addr, "127.0.0.1", "localhost", 1) + "/auth" // clients refuse a realm on an IP literal
					e := NewExternalEnv(t, newRegistry, key, realm)
					e.RequireSignedPushPull(t, h, "alice/hsm-signed")
				})
			}
		})
	}
}
