//go:build pkcs11

package registryv3

import (
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestPKCS11PushPull runs the gatehouse binary built with -tags pkcs11,
// whose token key is in a SoftHSM2 token (no key file exists), in front of
// registry v3.1.2, ES256 and RS256: alice pushes an image and pulls it
// back, with the default header (x5c) and with x5c off and the thumbprint
// kid, and a token taken from the realm verifies against the key in the
// token.
func TestPKCS11PushPull(t *testing.T) {
	harness.RunPKCS11PushPull(t, newRegistry, keyHeaders...)
}
