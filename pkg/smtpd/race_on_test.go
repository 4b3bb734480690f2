//go:build race

package smtpd

// raceEnabled: the race detector slows byte-by-byte work about tenfold, so
// the largest inputs are scaled down under it.
const raceEnabled = true
