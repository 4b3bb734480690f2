package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/sendlock"
)

// A repair may run while qmail-send runs (migrating.md allows it). What
// qmail-send keeps open in queue/lock must then stay the file it has
// open: sendmutex (its flock is how qmailctl, the start scripts and a
// second qmail-send know it runs), the FIFOs trigger and sendctl (it
// reads the ones it opened at its start) and sendstatus (written in
// place). A replaced sendmutex is one nobody holds: qmailctl says "not
// running" and the next start runs a second qmail-send on the same
// queue. So before one of those is replaced (settle, for a file with
// extra hard links whose owner or mode must change; or a regular file
// where a FIFO belongs), the repair takes the flock on the sendmutex
// there itself, without waiting: it fails while qmail-send runs, and the
// file is left alone and reported (the run exits 111: stop qmail-send,
// run it again). Taken, the lock is kept until the table is done, so
// that no qmail-send starts before every replacement is in place; a
// replacement sendmutex is locked before it is renamed into place, and
// so never replaced while locked. One of them with extra links whose
// owner and mode are right already is left as it is, running or not.
//
// The files qmail-send keeps data in (queue/bounce/holdperiods and
// heldmsgs) are never replaced (settle): one with extra links and a
// wrong owner or mode is left alone and reported, so nothing a writer
// renamed in meanwhile (qmailctl hold) can be lost. tcpto, a cache, is
// replaced while qmail-send runs: it is written in place under its flock
// by qmail-remote, qmail-send and qmailctl, and one that opened the old
// file before the replacement writes into it, which loses that one entry
// of the cache and costs a connection attempt only (placeAt).

// mutexRel is qmail-send's lock file.
const mutexRel = "queue/lock/sendmutex"

// sendHeld are the files of queue/lock a running qmail-send holds open.
var sendHeld = map[string]bool{
	mutexRel:                true,
	"queue/lock/sendstatus": true,
	"queue/lock/trigger":    true,
	"queue/lock/sendctl":    true,
}

// sendLock is what the repair knows of qmail-send.
type sendLock struct {
	checked bool
	busy    string // why nothing held is replaced ("" when the lock is ours)
	fd      int    // the sendmutex locked by the repair, or -1
	newFd   int    // its replacement, locked before its rename, or -1
}

// sendBusy returns "" when the repair may replace the files qmail-send
// holds open (no qmail-send runs: the repair now holds its lock), else
// the reason it may not.
func (w *walker) sendBusy() string {
	if w.send.checked {
		return w.send.busy
	}
	w.send.checked = true
	w.send.busy = w.lockSend()
	return w.send.busy
}

func (w *walker) lockSend() string {
	dir, err := w.dir("queue/lock")
	if err != nil {
		return "whether qmail-send runs cannot be told (queue/lock cannot be opened); left alone"
	}
	fd, st, err := openAt(dir, mutexRel, unix.O_RDONLY)
	switch {
	case err == unix.ENOENT:
		// No lock file: no qmail-send can have started. It is made
		// before anything else of queue/lock.
		return ""
	case err == unix.ELOOP:
		return "whether qmail-send runs cannot be told (" + mutexRel + " is a symbolic link); left alone"
	case err != nil:
		return fmt.Sprintf("whether qmail-send runs cannot be told (%s: %v); left alone", mutexRel, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		unix.Close(fd)
		return "whether qmail-send runs cannot be told (" + mutexRel + " is no regular file); left alone"
	}
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		unix.Close(fd)
		// The lock may be another tree's: a copy made with cp -al shares
		// sendmutex with the live tree. This tree's qmail-send is not
		// running then, and its files are the copy's to replace (which
		// also ends the sharing); the other tree keeps its own.
		var other *sendlock.OtherTreeError
		if _, lerr := sendlock.Locate(w.root); errors.As(lerr, &other) {
			if w.log != nil {
				fmt.Fprintf(w.log, "qmail-install: warning: %s is a hard link shared with the tree %s, whose qmail-send (pid %d) holds it; this tree's qmail-send is not running, and its lock files are replaced\n",
					w.path(mutexRel), other.Tree, other.PID)
			}
			return ""
		}
		return "qmail-send is running, stop it and run qmail-install again to replace it"
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Sprintf("whether qmail-send runs cannot be told (unable to lock %s: %v); left alone", mutexRel, err)
	}
	w.send.fd = fd
	return ""
}

// lockReplacement locks the new sendmutex (f, still under its temporary
// name) through a descriptor of its own, kept until releaseSend.
func (w *walker) lockReplacement(f *os.File) error {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return err
	}
	unix.CloseOnExec(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return fmt.Errorf("unable to lock %s: %v", f.Name(), err)
	}
	if w.send.newFd >= 0 {
		unix.Close(w.send.newFd)
	}
	w.send.newFd = fd
	return nil
}

// releaseSend gives back the locks the repair took, once the table is
// done (a qmail-send waiting for them starts then).
func (w *walker) releaseSend() {
	for _, fd := range []*int{&w.send.fd, &w.send.newFd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// leaveHeld reports whether the file rel, about to be replaced (what
// says why), is one qmail-send holds open and must be left alone, since
// qmail-send may run; it records the problem then.
func (w *walker) leaveHeld(rel string, what string) bool {
	if !sendHeld[rel] {
		return false
	}
	busy := w.sendBusy()
	if busy == "" {
		return false
	}
	w.problem("%s: %s; %s", w.path(rel), what, busy)
	return true
}

// ReplacedUnderSend returns a note for the admin when programs of the
// tree at root run from files an install has since replaced: an install
// over a running system replaces the programs by rename, and the daemons
// started before it (qmail-start, qmail-send, the spawners, qmail-clean,
// qmail-queued, a qmail-smtpd -listen, qmail-linkwatch) go on with the old
// ones until restarted. Every process whose program was root/bin/NAME and
// is gone ("NAME (deleted)" in /proc/PID/exe) is named, unless the file
// there now holds the same bytes (the same build installed again). ""
// when there is none, or when the processes cannot be looked at (other
// users' processes, for an ordinary user).
func ReplacedUnderSend(root string) string {
	return replacedRunning(root, "/proc")
}

func replacedRunning(root, proc string) string {
	bin := filepath.Join(root, "bin")
	if r, err := filepath.EvalSymlinks(bin); err == nil {
		bin = r
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return ""
	}
	var stale []string
	for _, e := range ents {
		pid := e.Name()
		if pid == "" || strings.Trim(pid, "0123456789") != "" {
			continue
		}
		exe := filepath.Join(proc, pid, "exe")
		target, err := os.Readlink(exe)
		if err != nil {
			continue
		}
		old, ok := strings.CutSuffix(target, " (deleted)")
		if !ok || filepath.Dir(old) != bin {
			continue
		}
		name := filepath.Base(old)
		if sameContents(exe, filepath.Join(bin, name)) {
			continue
		}
		stale = append(stale, name+" (pid "+pid+")")
	}
	if len(stale) == 0 {
		return ""
	}
	sort.Strings(stale)
	verb := "still run programs"
	if len(stale) == 1 {
		verb = "still runs a program"
	}
	return fmt.Sprintf("%s %s that an install has since replaced in %s: "+
		"restart hqmail (systemctl restart qmail.service, /etc/init.d/qmail restart, or make stop and make run "+
		"for make run's tree), and qmail-linkwatch or a qmail-smtpd -listen if they are among them",
		strings.Join(stale, ", "), verb, filepath.Join(root, "bin"))
}

// sameContents reports whether the files a and b hold the same bytes
// (false when either cannot be read).
func sameContents(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}
