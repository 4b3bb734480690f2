package install

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/sendlock"
)

// qmail-queued's two names are each tree's own, as qmail-send's lock
// files are (running.go): its lock queue/lock/queued and its socket
// public/qmail-queue. A copy made with cp -al shares both with the tree
// it was made from: the copy's qmail-queued finds the lock taken by the
// other tree's service and never listens, and the copy's callers
// (sendmail, qmail-inject, qmail-smtpd) connect through the shared
// socket to the other tree's service, which queues their mail in the
// other tree, under its control files and holds.
//
// The repair gives the tree it runs on names of its own, never touching
// the other tree's, and never hurting a qmail-queued of its own tree that
// runs:
//
//   - the lock, with more than one link, is replaced by a new empty file
//     when the repair can take its flock (no service of any tree runs on
//     it) or when the process holding it runs the qmail-queued of
//     another tree (/proc/locks, /proc/PID/exe): that service keeps the
//     old file under its own name. The old file's flock, when taken, and
//     the new one's, taken before its rename, are held until the socket
//     is done, so that no qmail-queued of this tree starts meanwhile (one
//     that tries waits, and opens the new name).
//   - the socket, with more than one link, is removed (only this tree's
//     name of it) while the repair holds this tree's lock: no qmail-queued
//     of this tree runs then, so the socket there is none of its own, and
//     the service makes a new one at its start. Callers find no socket
//     meanwhile and run qmail-queue, in their own tree.
//   - qmail-queued does the same for the lock at its start (pkg/queue
//     Listen), which also makes its socket anew; the repair is what ends
//     the sharing while the copy's qmail-queued does not run, and what
//     removes the copy's name of the socket then.
//   - when this tree's own qmail-queued holds the lock, both are left as
//     they are, with a warning: the tree works, and the other tree's
//     repair gives that tree names of its own. When the holder cannot be
//     told, both are left alone and reported (exit 111).

// queuedSocket is qmail-queued's socket (pkg/qq ServiceSocket).
const queuedSocket = "public/qmail-queue"

// repairQueuedShared gives the tree its own qmail-queued lock and socket
// when they are hard links shared with another tree (see above).
func (w *walker) repairQueuedShared(own *owners) error {
	lockDir, err := w.dir(filepath.Dir(queuedLock))
	if err != nil {
		if err == errSkipped {
			return nil
		}
		return err
	}
	uid, gid, err := own.resolve(Entry{Path: queuedLock, Owner: "qmailq", Group: "qmail"})
	if err != nil {
		return err
	}
	lst, exists, err := statAt(lockDir, filepath.Base(queuedLock))
	if err != nil {
		return fmt.Errorf("unable to stat %s: %v", w.path(queuedLock), err)
	}
	if exists && lst.Mode&unix.S_IFMT != unix.S_IFREG {
		// repairQueuedLock names it; the socket is left for a later run.
		return nil
	}
	if (!exists || lst.Nlink <= 1) && !w.sharedSocket() {
		return nil // nothing shared: the lock is not even tried
	}
	// qmail-queued replaces a shared lock itself at its start, under an
	// flock on queue/lock (pkg/queue sharedLock): taken here too, the
	// two never replace it at once.
	if err := unix.Flock(lockDir, unix.LOCK_EX); err != nil {
		return fmt.Errorf("unable to lock %s: %v", w.path(filepath.Dir(queuedLock)), err)
	}
	defer unix.Flock(lockDir, unix.LOCK_UN)
	var locked []int // flocks held until the end of this step
	defer func() {
		for _, fd := range locked {
			unix.Close(fd)
		}
	}()
	// mine: no qmail-queued of this tree runs, and none can start while
	// this step works (this tree's lock is held here). busy: why not.
	mine, busy := false, ""
	fill := func(f *os.File) error {
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			return err
		}
		unix.CloseOnExec(fd)
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			return fmt.Errorf("unable to lock %s: %v", f.Name(), err)
		}
		locked = append(locked, fd)
		return nil
	}
	if !exists {
		// No lock: no qmail-queued of this tree runs (it makes the file
		// and keeps it). With a shared socket to remove, one is made, as
		// the service makes it, and held meanwhile.
		if _, err := w.createAt(lockDir, queuedLock, nil, uid, gid, 0o600); err != nil {
			return err
		}
	}
	fd, st, err := openAt(lockDir, queuedLock, unix.O_RDONLY)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		if err == nil {
			unix.Close(fd)
		}
		return nil // changed meanwhile: left for -check or a later run
	}
	replace := false
	other := " with another tree"
	switch err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		locked = append(locked, fd)
		mine = true
		replace = st.Nlink > 1
	case err == unix.EWOULDBLOCK:
		unix.Close(fd)
		pid, tree, known := queuedHolder(st.Ino, w.root)
		switch {
		case known && tree != "" && st.Nlink > 1:
			other = fmt.Sprintf(" with the tree %s, whose qmail-queued (pid %d) holds it", tree, pid)
			replace = true
		case known && tree != "":
			busy = fmt.Sprintf("the qmail-queued of the tree %s (pid %d) holds %s", tree, pid, queuedLock)
		case known:
			busy = fmt.Sprintf("this tree's qmail-queued (pid %d) holds %s", pid, queuedLock)
		default:
			busy = "whether this tree's qmail-queued holds " + queuedLock + " cannot be told"
		}
	default:
		unix.Close(fd)
		return fmt.Errorf("unable to lock %s: %v", w.path(queuedLock), err)
	}
	if replace {
		err := w.placeAt(lockDir, queuedLock, false, fill, uid, gid, 0o600, &st)
		if err == errChanged {
			w.problem("%s: %d hard links; it was replaced by another meanwhile, which was left as it is: run qmail-install again", w.path(queuedLock), st.Nlink)
			return nil
		}
		if err != nil {
			return err
		}
		mine = true
		if w.log != nil {
			fmt.Fprintf(w.log, "qmail-install: warning: %s: %d hard links: shared%s (each tree's qmail-queued needs a lock of its own); replaced\n",
				queuedLock, st.Nlink, other)
		}
	} else if st.Nlink > 1 {
		w.leaveShared(queuedLock, uint64(st.Nlink), busy, "the other tree's qmail-queued cannot start")
	}

	// The socket.
	pub, err := w.dir(filepath.Dir(queuedSocket))
	if err != nil {
		if err == errSkipped {
			return nil
		}
		return err
	}
	name := filepath.Base(queuedSocket)
	sst, exists, err := statAt(pub, name)
	if err != nil {
		return fmt.Errorf("unable to stat %s: %v", w.path(queuedSocket), err)
	}
	if !exists || sst.Mode&unix.S_IFMT != unix.S_IFSOCK || sst.Nlink <= 1 {
		return nil
	}
	if !mine {
		w.leaveShared(queuedSocket, uint64(sst.Nlink), busy, "neither tree's callers use a socket shared so, they run qmail-queue")
		return nil
	}
	// Still the one looked at: another run may have removed it.
	var now unix.Stat_t
	if unix.Fstatat(pub, name, &now, unix.AT_SYMLINK_NOFOLLOW) != nil || now.Dev != sst.Dev || now.Ino != sst.Ino {
		return nil
	}
	if err := unix.Unlinkat(pub, name, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("unable to remove %s: %v", w.path(queuedSocket), err)
	}
	if err := unix.Fsync(pub); err != nil && err != unix.EINVAL {
		return fmt.Errorf("unable to sync %s: %v", w.path(filepath.Dir(queuedSocket)), err)
	}
	if w.log != nil {
		fmt.Fprintf(w.log, "qmail-install: warning: %s: %d hard links: a socket shared with another tree, "+
			"which neither tree's callers use (they run qmail-queue meanwhile); removed "+
			"(this tree's qmail-queued makes its own when it starts)\n", queuedSocket, sst.Nlink)
	}
	return nil
}

// sharedSocket reports whether public/qmail-queue is a socket with more
// than one link.
func (w *walker) sharedSocket() bool {
	pub, err := w.dir(filepath.Dir(queuedSocket))
	if err != nil {
		return false
	}
	st, exists, err := statAt(pub, filepath.Base(queuedSocket))
	return err == nil && exists && st.Mode&unix.S_IFMT == unix.S_IFSOCK && st.Nlink > 1
}

// leaveShared says that rel, with n links, is left as it is, since this
// tree's qmail-queued may run (busy says why; cost is what the sharing
// costs the other tree): a warning when this tree's own service holds
// the lock (this tree works, and the other's repair fixes that one), a
// problem when that cannot be told.
func (w *walker) leaveShared(rel string, n uint64, busy, cost string) {
	if strings.HasPrefix(busy, "this tree's") {
		if w.log != nil {
			fmt.Fprintf(w.log, "qmail-install: warning: %s: %d hard links: shared with another tree (%s); left as it is, as %s: "+
				"run qmail-install on the other tree (a copy made with cp -al), which gives it its own\n", rel, n, cost, busy)
		}
		return
	}
	w.problem("%s: %d hard links: shared with another tree (%s); left alone, as %s: stop qmail-queued and run qmail-install again",
		w.path(rel), n, cost, busy)
}

// queuedHolder tells who holds the flock on the file of inode ino, by
// /proc/locks (the inode alone is compared, as pkg/sendlock does): the
// pid, and the root of the tree whose bin/qmail-queued it runs when that
// is another tree than root ("" when it is root's own). known is false
// when no holder is shown, or one runs no qmail-queued that can be told
// (its /proc/PID/exe unreadable: not root, or another user's process).
func queuedHolder(ino uint64, root string) (pid int, tree string, known bool) {
	pids, _ := sendlock.LockHolders(ino)
	if len(pids) == 0 {
		return 0, "", false
	}
	for _, p := range pids {
		exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p), "exe"))
		exe = strings.TrimSuffix(exe, " (deleted)")
		if err != nil || filepath.Base(exe) != "qmail-queued" || filepath.Base(filepath.Dir(exe)) != "bin" {
			return p, "", false
		}
		its := filepath.Dir(filepath.Dir(exe))
		a, err1 := os.Stat(its)
		b, err2 := os.Stat(root)
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			return p, "", true
		}
		pid, tree = p, its
	}
	return pid, tree, true
}
