package daemon

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the garbage collector's GOGC while serving, unless
// the environment sets GOGC. Gatehouse's live heap is a megabyte or two,
// so with Go's default of 100 the heap goal sits at the 4 MB minimum and a
// server issuing ten thousand tokens a second collects about fifty times a
// second, a tenth of its CPU; 200 halves the collections for about 4 MB
// more resident memory (docs/performance.md).
const defaultGCPercent = 200

// tuneGC applies defaultGCPercent when GOGC is not set.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
