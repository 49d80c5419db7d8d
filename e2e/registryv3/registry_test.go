// Package registryv3 runs Gatehouse's end-to-end scenarios against
// github.com/distribution/distribution/v3 (registry v3.1.2), served in
// process through handlers.NewApp with in-memory storage.
package registryv3

import (
	"context"
	"net/http"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

func TestMain(m *testing.M) { harness.Main(m) }

// newRegistry is an empty v3 registry trusting the tokens a describes.
func newRegistry(t testing.TB, a harness.RegistryAuth) http.Handler {
	return newRegistryOn(t, a, configuration.Storage{"inmemory": configuration.Parameters{}})
}

// newRegistryOn is a v3 registry on storage trusting the tokens a
// describes.
func newRegistryOn(t testing.TB, a harness.RegistryAuth, storage configuration.Storage) http.Handler {
	testutil.UsesComponent(t, "registry v3")
	cfg := &configuration.Configuration{
		Storage: storage,
		Auth:    configuration.Auth{"token": a.TokenOptions()},
	}
	cfg.Catalog.MaxEntries = 1000 // configuration.Parse's default
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	t.Cleanup(func() {
		_ = app.Shutdown()
		cancel()
	})
	return app
}

// TestSeedPolicy proves the seed blog's policy through registry v3.1.2.
func TestSeedPolicy(t *testing.T) {
	harness.RunPolicyScenarios(t, newRegistry)
}

// TestKeyHeader proves registry v3.1.2 accepts Gatehouse's default header
// (x5c) and, with x5c off, the distribution JWK thumbprint kid, and refuses
// the libtrust kid it no longer knows.
func TestKeyHeader(t *testing.T) {
	harness.RunKidScenarios(t, newRegistry, harness.KidThumbprint, harness.KidLibtrust)
}
