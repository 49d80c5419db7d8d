package registryv3

import (
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestAWSKMSPushPull pushes and pulls through registry v3.1.2 with tokens
// signed by a key held in a KMS (local-kms on loopback), ES256 and RS256:
// Gatehouse writes the key's self-signed certificate, which the registry
// trusts as its rootcertbundle, and never sees the private key. The
// registry finds the key by the default header's x5c, and with x5c off by
// the distribution thumbprint kid.
func TestAWSKMSPushPull(t *testing.T) {
	harness.RunAWSKMSPushPull(t, newRegistry, keyHeaders...)
}

// keyHeaders are the token headers registry v3.1.2 takes with a
// rootcertbundle.
var keyHeaders = []harness.KeyHeader{
	harness.HeaderX5C,
	{Name: "x5c off, kid thumbprint", NoX5C: true, Kid: harness.KidThumbprint},
}
