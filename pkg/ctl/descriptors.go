package ctl

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/nofile"
)

// descriptorsNeeded is how many descriptors qmailctl holds at once at
// most, beyond those open when it starts, with two to spare. Measured
// (strace, every command, qmail-send running and stopped): 6 for a bounce
// while qmail-send is stopped, as root (sendmutex locked, the runtime's
// epoll descriptor and eventfd, bounce/, bounce/ID, etc/ids); 5 for a
// hold or release (the control directory's lock, the runtime's two, and
// queue/ and queue/lock/ on the way to sendmutex or sendstatus); 4 for
// status. A test (TestDescriptorShortage) runs the commands that change
// state with exactly this many free.
const descriptorsNeeded = 8

// checkDescriptors makes sure, before anything is changed, that the
// descriptors qmailctl needs can be opened: with fewer it would fail
// halfway (a flag changed but qmail-send not told), or die in the runtime
// (exit 2) when the poller cannot be made. It returns ExitOK or, after
// saying why, ExitTemp.
func (c *cmd) checkDescriptors() int {
	if free := nofile.Free(descriptorsNeeded); free < descriptorsNeeded {
		limit := "unknown"
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			limit = strconv.FormatUint(rl.Cur, 10)
		}
		return c.fail(ExitTemp, "too few file descriptors: %d free, %d needed (RLIMIT_NOFILE %s; raise it with ulimit -n); nothing was changed",
			free, descriptorsNeeded, limit)
	}
	// The runtime makes its poller (an epoll descriptor and an eventfd)
	// at the first open of a file, and dies when it cannot: made now,
	// while they are known to be free, by a pipe made and closed.
	r, w, err := os.Pipe()
	if err != nil {
		return c.fail(ExitTemp, "unable to make a pipe: %v; nothing was changed", err)
	}
	r.Close()
	w.Close()
	return ExitOK
}
