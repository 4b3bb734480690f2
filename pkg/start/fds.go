package start

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeInherited closes every descriptor above 2 that qmail-start got from
// whoever started it. Marking them close-on-exec is not enough: qmail-start
// itself runs for as long as qmail does, and a pipe end it holds keeps the
// caller waiting for an end of file that never comes (a debconf postinst's
// fd 3, a make jobserver's pipe, a "| cat" around an rc script).
//
// Inherited means without FD_CLOEXEC: exec closed every descriptor that
// had it, and the Go runtime opens its own (the poller's epoll and wake-up
// descriptors, this directory) with it, so those are left alone.
func closeInherited() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return // no /proc: spawn.CloseOnExecAll's marking is all there is
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}
