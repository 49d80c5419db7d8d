package registryv3

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/kmstest"
)

// TestAWSKMSPushPull pushes and pulls through registry v3.1.2 with tokens
// signed by a key held in a KMS (local-kms on loopback): Gatehouse writes
// the key's self-signed certificate, which the registry trusts as its
// rootcertbundle, and never sees the private key.
func TestAWSKMSPushPull(t *testing.T) {
	kms := kmstest.Start(t)
	tests := []struct {
		name, spec string
	}{
		{name: "ES256", spec: "ECC_NIST_P256"},
		{name: "RS256", spec: "RSA_2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			secret := filepath.Join(dir, "refresh.secret")
			if err := os.WriteFile(secret, []byte(strings.Repeat("r", 48)), 0o600); err != nil {
				t.Fatal(err)
			}
			e := harness.NewEnvKey(t, newRegistry, harness.GatehouseOptions{
				Key:        harness.SigningKey{CertPath: filepath.Join(dir, "token.pem"), KeyPath: kms.Ref(kms.CreateKey(t, tt.spec))},
				TokenExtra: "  generate_if_missing: true\n  refresh_secret_file: " + secret + "\n",
			})
			signed := kms.Calls("Sign") // the certificate's signature
			dg := e.MustPush(t, harness.Alice, "alice/app")
			e.MustPullDigest(t, harness.Alice, "alice/app", dg)
			_, err := e.Pull(t, harness.Bob, "alice/app")
			e.RequireDeniedByRegistry(t, err, "bob pulling alice/app")
			if kms.Calls("Sign") == signed {
				t.Error("no token was signed by KMS")
			}
		})
	}
}
