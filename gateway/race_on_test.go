//go:build race

package gateway_test

// raceDetector: the race detector slows every request several times, so
// tests that measure a client's throughput against a limit can only check
// the upper bound under it.
const raceDetector = true
