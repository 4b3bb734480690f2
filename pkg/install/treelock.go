package install

import (
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// Two runs of qmail-install on one tree take turns: each repair holds an
// exclusive flock(2) on the tree's root directory itself (the directory
// the root names, a link there followed) from before it looks at the
// tree until it ends, and a second one waits for it. Without it
// the two remove each other's temporary files (placeAt's fixed
// ".NAME.new" is first removed as a leftover of an interrupted run) and
// one rename puts the other's half-written file into place (QA
// rnonroot2). -check only reads, but holds a shared lock on it for its
// whole run: it waits for a repair at work rather than report its
// half-done state as deviations, and a repair waits for it (it is
// brief). Nothing else in hqmail locks the root directory itself
// (qmail-send, qmail-queued and qmailctl lock queue/lock, control/lock
// and files in queue/lock), so no daemon ever waits for qmail-install here, nor
// qmail-install for one. Whoever runs qmail-install must not hold an
// flock on the root itself meanwhile (scripts/run.sh does not): the run
// would wait for ever.
//
// A lock the file system refuses (a directory on NFS, whose emulated
// flock wants a descriptor open for writing) is said as a warning, and
// the run goes on without it, as every run did before.

// lockWait bounds the wait for another holder of the root's lock. A
// repair takes seconds; the root directory is readable by every local
// user, who can open it and hold a flock on it, so an unbounded wait
// would let anyone stop root's qmail-install for good.
var lockWait = 5 * time.Minute

// lockedError is a lock still held by another process after lockWait.
type lockedError struct{ root string }

func (e lockedError) Error() string {
	return fmt.Sprintf("%s is still locked by another process after %v (another qmail-install, or any process holding flock(2) on the directory: lslocks shows it)", e.root, lockWait)
}

// lockTree opens the directory root and takes its flock (exclusive, or
// shared when shared is set). Held by another process, one line says so
// on log (when not nil) and the call waits, at most lockWait: then it
// fails with a lockedError. The result releases the lock. A lock the file
// system refuses is a warning on log and no error.
func lockTree(root string, shared bool, log io.Writer) (release func(), err error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unable to open %s: %w", root, err)
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	err = unix.Flock(fd, how|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		if log != nil {
			fmt.Fprintf(log, "qmail-install: waiting for another qmail-install on %s\n", root)
		}
		// Tried again every 100 ms: flock(2) itself cannot be given a
		// deadline.
		deadline := time.Now().Add(lockWait)
		for err == unix.EWOULDBLOCK || err == unix.EINTR {
			if !time.Now().Before(deadline) {
				unix.Close(fd)
				return nil, lockedError{root}
			}
			time.Sleep(100 * time.Millisecond)
			err = unix.Flock(fd, how|unix.LOCK_NB)
		}
	}
	if err != nil {
		if log != nil {
			fmt.Fprintf(log, "qmail-install: warning: unable to lock %s: %v; another qmail-install on this tree meanwhile would disturb this one\n", root, err)
		}
	}
	// Closing the descriptor releases the lock.
	return func() { unix.Close(fd) }, nil
}

// LockForCheck takes the shared flock on the directory root that -check holds
// while it reads the tree: it waits (saying so on log) while a repair of
// the tree runs, at most lockWait, then checks without it. The result
// releases it. A root that cannot be opened is no error here: Check says
// what it is.
func LockForCheck(root string, log io.Writer) (release func()) {
	release, err := lockTree(root, true, log)
	if errors.As(err, new(lockedError)) && log != nil {
		fmt.Fprintf(log, "qmail-install: warning: %v; checking without the lock\n", err)
	}
	if err != nil {
		return func() {}
	}
	return release
}
