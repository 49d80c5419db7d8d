//go:build race

package main

// raceEnabled: the tests run under the race detector, so the gatehouse
// binary they start is built with it too (a race in serve or reload then
// makes the process exit 66 and the test fail).
const raceEnabled = true
