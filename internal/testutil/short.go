package testutil

import (
	"os"
	"testing"
)

// SkipIfShort skips t under go test -short, for tests that are slow rather
// than dependent on a missing component. With CI=true they run even with
// -short: CI runs every test (README, scripts/test.sh).
func SkipIfShort(t testing.TB, reason string) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip(reason + " (-short; CI=true runs it)")
	}
}
