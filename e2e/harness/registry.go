package harness

import (
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// registryLogs collects the registry's log (the global logrus) when Main
// runs the tests; nil otherwise.
var registryLogs *syncBuffer

// Main runs a registry test package's tests with the registry's log kept in
// memory instead of printed: an environment whose test fails prints the part
// written while it ran. The level is info because that is where the registry
// says why it rejected a token ("token signed by untrusted key ...").
// Environments must then not run in parallel, or their parts interleave.
func Main(m *testing.M) {
	registryLogs = &syncBuffer{}
	logrus.SetOutput(registryLogs)
	logrus.SetLevel(logrus.InfoLevel)
	os.Exit(m.Run())
}

// registryLogSince returns what the registry logged after offset, a value of
// registryLogOffset.
func registryLogSince(offset int) string {
	if registryLogs == nil {
		return "(not captured: the test package does not run harness.Main)\n"
	}
	return registryLogs.since(offset)
}

func registryLogOffset() int {
	if registryLogs == nil {
		return 0
	}
	return registryLogs.len()
}

// TokenOptions is the registry's `auth: token:` section for a, in the shape
// both registry versions' configuration.Parameters take. An empty
// RootCertBundle or JWKS leaves its key out.
func (a RegistryAuth) TokenOptions() map[string]any {
	opts := map[string]any{
		"realm":   a.Realm,
		"service": a.Service,
		"issuer":  a.Issuer,
	}
	if a.RootCertBundle != "" {
		opts["rootcertbundle"] = a.RootCertBundle
	}
	if a.JWKS != "" {
		opts["jwks"] = a.JWKS
	}
	return opts
}
