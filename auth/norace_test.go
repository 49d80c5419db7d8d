//go:build !race

package auth

// raceEnabled: the tests run without the race detector.
const raceEnabled = false
