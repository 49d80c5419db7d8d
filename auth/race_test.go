//go:build race

package auth

// raceEnabled: the tests run under the race detector, which slows bcrypt
// and the scheduler unevenly, so the timing tests skip (scripts/test.sh
// runs them again without it).
const raceEnabled = true
