package harness

import (
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// Main runs a registry test package's tests with the registry's logging
// (the global logrus, at info by default: a line per request) cut down to
// errors.
func Main(m *testing.M) {
	logrus.SetLevel(logrus.ErrorLevel)
	os.Exit(m.Run())
}

// TokenOptions is the registry's `auth: token:` section for a, in the shape
// both registry versions' configuration.Parameters take.
func (a RegistryAuth) TokenOptions() map[string]any {
	return map[string]any{
		"realm":          a.Realm,
		"service":        a.Service,
		"issuer":         a.Issuer,
		"rootcertbundle": a.RootCertBundle,
	}
}
