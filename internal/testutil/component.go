package testutil

import "testing"

// ComponentMarker starts the line a test logs when it uses a real component;
// scripts/testreport counts those lines to print which components the suite
// used and whether their tests passed.
const ComponentMarker = "gatehouse-component: "

// UsesComponent records in t's log that t runs against the real component
// name (such as "slapd" or "FerretDB"). The line is part of the test's
// output, so `go test -json` carries it to scripts/testreport.
func UsesComponent(t testing.TB, name string) {
	t.Helper()
	t.Log(ComponentMarker + name)
}
