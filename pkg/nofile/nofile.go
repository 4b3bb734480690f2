// Package nofile fits a program's concurrency to its descriptor limit
// (RLIMIT_NOFILE): the spawners' delivery slots, qmail-smtpd -listen's
// sessions and the queue service's jobs each hold a known number of
// descriptors, and a program that runs out of them fails in the middle of
// work (a pipe that cannot be made, a directory that cannot be opened).
// Each such program raises its soft limit toward what it needs at start
// (Raise) and, when the hard limit is lower, runs fewer at once (Fit).
package nofile

import "syscall"

// Raise raises the soft RLIMIT_NOFILE toward need, as far as the hard
// limit allows, and returns the soft and hard limits in force afterwards
// (0, 0 when they cannot be read), each at most 1<<31. Go programs start
// with the soft limit already raised to the hard one; this also covers a
// runtime that did not, and a limit lowered since.
func Raise(need int64) (soft, hard int64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0
	}
	if n := uint64(max(need, 0)); rl.Cur < n && rl.Cur < rl.Max {
		want := rl
		want.Cur = min(n, rl.Max)
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			rl = want
		}
	}
	clamp := func(v uint64) int64 { return int64(min(v, 1<<31)) }
	return clamp(rl.Cur), clamp(rl.Max)
}

// Fit returns how many of something to run at once: limit when reserve
// descriptors plus per for each of limit fit in nofile, otherwise as many
// as fit, and at least 1. nofile <= 0 means the limit is unknown: limit
// is kept.
func Fit(limit int, per, reserve, nofile int64) int {
	if nofile <= 0 {
		return limit
	}
	fit := (nofile - reserve) / per
	if fit < int64(limit) {
		return int(max(fit, 1))
	}
	return limit
}
