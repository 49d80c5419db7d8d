//go:build pkcs11

package registryv2

import (
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestPKCS11PushPull runs the gatehouse binary built with -tags pkcs11,
// whose token key is in a SoftHSM2 token (no key file exists), in front of
// registry v2.8.3, ES256 and RS256: the registry trusts the certificate
// `gatehouse certificate` writes for the key, and alice pushes an image and
// pulls it back with the default header (x5c) and with x5c off and the
// libtrust kid; a token taken from the realm verifies against the key in
// the token.
func TestPKCS11PushPull(t *testing.T) {
	harness.RunPKCS11PushPull(t, newRegistry, keyHeaders...)
}
