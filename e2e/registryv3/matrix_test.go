package registryv3

import (
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestInteropMatrix runs the clients of the interop matrix against registry
// v3.1.2 trusting Gatehouse's certificate (rootcertbundle) with the default
// token header (x5c) and with x5c off and the thumbprint kid, and trusting
// only a jwks file fetched from Gatehouse with x5c off and either kid, for
// each signing key type: every client with the default header, the token
// clients with the others. docs/compatibility.md shows the table it logs.
func TestInteropMatrix(t *testing.T) {
	harness.RunMatrix(t, harness.MatrixClients, []harness.MatrixConfig{
		{Registry: "v3.1.2", New: newRegistry, Trust: harness.TrustBundle},
		{Registry: "v3.1.2", New: newRegistry, Trust: harness.TrustBundle, NoX5C: true, Kid: harness.KidThumbprint, Clients: harness.TokenClients},
		{Registry: "v3.1.2", New: newRegistry, Trust: harness.TrustJWKS, NoX5C: true, Kid: harness.KidThumbprint, Clients: harness.TokenClients},
		{Registry: "v3.1.2", New: newRegistry, Trust: harness.TrustJWKS, NoX5C: true, Kid: harness.KidLibtrust, Clients: harness.TokenClients},
	})
}

// TestJWKSOnlyRefusesX5C shows why a registry v3.1.2 trusting only a jwks
// file needs `token.x5c: false`: with no certificate pool it refuses every
// token that carries an x5c chain, whatever the kid.
func TestJWKSOnlyRefusesX5C(t *testing.T) {
	for _, kt := range []harness.KeyType{harness.RSA2048, harness.ECP256} {
		t.Run(string(kt), func(t *testing.T) {
			e := harness.NewEnvTrust(t, newRegistry, kt, harness.GatehouseOptions{}, harness.TrustJWKS)
			e.RequireTokenHeader(t, harness.KidLibtrust, true)
			_, err := e.Push(t, harness.Alice, "alice/app")
			e.RequireDeniedByRegistry(t, err, "alice pushing with an x5c token to a jwks-only registry")
		})
	}
}
