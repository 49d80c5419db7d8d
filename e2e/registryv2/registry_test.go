// Package registryv2 runs Gatehouse's end-to-end scenarios against
// github.com/docker/distribution v2.8.3, served in process through
// handlers.NewApp with in-memory storage. (Its registry package cannot be
// imported: it needs the unavailable rsc.io/letsencrypt.)
package registryv2

import (
	"context"
	"net/http"
	"testing"

	"github.com/docker/distribution/configuration"
	"github.com/docker/distribution/registry/handlers"

	_ "github.com/docker/distribution/registry/auth/token"
	_ "github.com/docker/distribution/registry/storage/driver/inmemory"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

func TestMain(m *testing.M) { harness.Main(m) }

// newRegistry is an empty v2.8.3 registry trusting the tokens a describes.
// (v2.8.3's App has no Shutdown; cancelling its context is all there is.)
func newRegistry(t testing.TB, a harness.RegistryAuth) http.Handler {
	testutil.UsesComponent(t, "registry v2.8.3")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}},
		Auth:    configuration.Auth{"token": a.TokenOptions()},
	}
	cfg.Catalog.MaxEntries = 1000 // configuration.Parse's default
	return handlers.NewApp(ctx, cfg)
}

// TestSeedPolicy proves the seed blog's policy through registry v2.8.3.
func TestSeedPolicy(t *testing.T) {
	harness.RunPolicyScenarios(t, newRegistry)
}

// TestKeyHeader proves registry v2.8.3 accepts Gatehouse's default header
// (x5c) and, with x5c off, the libtrust kid, and refuses the JWK thumbprint
// kid it does not know.
func TestKeyHeader(t *testing.T) {
	harness.RunKidScenarios(t, newRegistry, harness.KidLibtrust, harness.KidThumbprint)
}
