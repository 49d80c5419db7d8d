package registryv2

import (
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestInteropMatrix runs the clients of the interop matrix against registry
// v2.8.3 trusting Gatehouse's certificate (rootcertbundle), with the default
// token header (x5c: every client) and with x5c off and the libtrust kid
// (the token clients), for each signing key type. docs/compatibility.md
// shows the table it logs.
func TestInteropMatrix(t *testing.T) {
	harness.RunMatrix(t, harness.MatrixClients, []harness.MatrixConfig{
		{Registry: "v2.8.3", New: newRegistry, Trust: harness.TrustBundle},
		{Registry: "v2.8.3", New: newRegistry, Trust: harness.TrustBundle, NoX5C: true, Kid: harness.KidLibtrust, Clients: harness.TokenClients},
	})
}
