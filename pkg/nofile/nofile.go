// Package nofile fits a program's concurrency to its descriptor limit
// (RLIMIT_NOFILE): the spawners' delivery slots, qmail-smtpd -listen's
// sessions and the queue service's jobs each hold a known number of
// descriptors, and a program that runs out of them fails in the middle of
// work (a pipe that cannot be made, a directory that cannot be opened).
// Each such program raises its soft limit toward what it needs at start
// (Raise) and, when the hard limit is lower, runs fewer at once (Fit). A
// short program that changes state (qmailctl) checks first that the
// descriptors it needs are free (Free), so that it fails before any
// change rather than halfway.
package nofile

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

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

// RaiseHard raises the hard RLIMIT_NOFILE to need when it is lower, as
// only a privileged process can, and reports whether the hard limit is at
// least need afterwards. The soft limit is left alone (each program
// raises its own with Raise). need is taken down to the system's most
// (fs.nr_open) when that is lower.
func RaiseHard(need int64) bool {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return false
	}
	n := uint64(max(need, 0))
	if rl.Max >= n {
		return true
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if most, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && most < n {
			n = most
		}
	}
	want := syscall.Rlimit{Cur: min(rl.Cur, n), Max: n}
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil && uint64(max(need, 0)) <= n
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

// Free returns how many more descriptors, up to n, the process can open
// now, whatever holds the others (the caller's inherited ones, the
// runtime's own) and whatever the limit. It opens them (O_PATH opens of
// "/", plain system calls: the runtime's poller is not started by them)
// and closes them again before it returns, so call it while no other
// goroutine opens files. A Go program makes the poller's two descriptors
// (an epoll descriptor and an eventfd) at its first open of a file and
// dies when it cannot: count them in n.
func Free(n int) int {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for len(fds) < n {
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fds = append(fds, fd)
	}
	return len(fds)
}
