package registryv2

import (
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestAWSKMSPushPull pushes and pulls through registry v2.8.3 with tokens
// signed by a key held in a KMS (local-kms on loopback), ES256 and RS256:
// Gatehouse writes the key's self-signed certificate (generate_if_missing,
// signed by KMS), which the registry trusts as its rootcertbundle. The
// registry finds the key by the default header's x5c (the chain verified
// against the bundle), and with x5c off by the default libtrust kid, which
// v2.8 looks up among the bundle certificates' keys.
func TestAWSKMSPushPull(t *testing.T) {
	harness.RunAWSKMSPushPull(t, newRegistry, keyHeaders...)
}

// keyHeaders are the token headers registry v2.8.3 takes with a
// rootcertbundle.
var keyHeaders = []harness.KeyHeader{
	harness.HeaderX5C,
	{Name: "x5c off, kid libtrust (default)", NoX5C: true},
}
