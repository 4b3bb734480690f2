// Package sendlock tells whether the qmail-send of a tree runs, and which
// process it is, from queue/lock/sendmutex: the file qmail-send holds an
// exclusive flock on and writes its pid into. Every program that signals
// qmail-send (qmailctl, sendmail -q) asks here, so that none of them ever
// signals a pid that a stale or planted file names. queue/lock belongs to
// qmailq; these programs may run as root, so the file is opened as a queue
// file (qhome.OpenQueueFile: no link followed, no FIFO waited on).
package sendlock

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// MutexFile is the path of sendmutex below the root.
const MutexFile = "queue/lock/sendmutex"

// ErrNotRunning means no qmail-send holds queue/lock/sendmutex.
var ErrNotRunning = errors.New("qmail-send is not running")

// procLocks is /proc/locks, procDir the /proc its processes are looked
// up in; variables for tests.
var procLocks, procDir = "/proc/locks", "/proc"

// Process is the running qmail-send as Find found it.
type Process struct {
	// PID is its pid as the caller sees it: the one to signal.
	PID int
	// Named is the pid written in sendmutex, the one qmail-send knows
	// itself by (and writes into sendstatus). It differs from PID only
	// when qmail-send runs in another pid namespace (a container).
	Named int
}

// Locate finds the running qmail-send of the tree at root and returns
// its pid as the caller sees it. It never guesses: qmail-send is running
// exactly when the flock on sendmutex is held (a shared lock cannot be
// taken), and the pid written in the file must be the holder of that lock
// according to /proc/locks (when the kernel shows the lock there). A pid
// file that names another process is an error, and no signal is ever sent
// to it. A holder in another pid namespace than the caller (qmail-send in
// a container, qmailctl on the host) has written its pid as seen in its
// own namespace, while /proc/locks shows it as the caller sees it: such a
// holder counts when its pid in its innermost namespace is the one
// written, and its pid as the caller sees it is returned.
func Locate(root string) (int, error) {
	p, err := Find(root)
	return p.PID, err
}

// Find is Locate, returning also the pid written in sendmutex (what
// qmail-send writes into sendstatus as its pid).
func Find(root string) (Process, error) {
	path := filepath.Join(root, MutexFile)
	// As a queue file: queue/lock is qmailq's, and a link planted there
	// must not make root lock, or quote, a file it points to.
	f, err := qhome.OpenQueueFile(path, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Process{}, ErrNotRunning
		}
		return Process{}, fmt.Errorf("unable to open %s: %w", path, qerr.Bare(err))
	}
	defer f.Close()
	// A qmail-send takes the lock and then writes its pid: in between the
	// file holds nothing or the last one's pid. That moment is waited out
	// (pidWait), so that a qmailctl run while qmail-send starts (a link
	// hook at boot) signals it rather than failing.
	for waited := time.Duration(0); ; waited += pidStep {
		p, settled, err := check(root, path, f)
		if settled || waited >= pidWait {
			return p, err
		}
		time.Sleep(pidStep)
	}
}

// Locked reports whether queue/lock/sendmutex is locked, that is, whether
// a qmail-send runs, without Find's look at the pid the file names (a
// stale pid file is no sign that qmail-send is stopped). No file: not
// locked.
func Locked(root string) (bool, error) {
	path := filepath.Join(root, MutexFile)
	f, err := qhome.OpenQueueFile(path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("unable to open %s: %w", path, qerr.Bare(err))
	}
	defer f.Close()
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err {
	case nil:
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false, nil
	case unix.EWOULDBLOCK:
		return true, nil
	default:
		return false, fmt.Errorf("unable to test the lock on %s: %w", path, err)
	}
}

// pidWait bounds how long Locate waits for a qmail-send that holds the
// lock to name itself in the file; pidStep is the pause between looks.
var pidWait, pidStep = time.Second, 20 * time.Millisecond

// check tests the lock on the open sendmutex f and the pid in it. settled
// is false when the answer may change in a moment: the lock is held and
// the file does not (yet) name its holder.
func check(root, path string, f *os.File) (p Process, settled bool, err error) {
	fd := int(f.Fd())
	err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		unix.Flock(fd, unix.LOCK_UN)
		return Process{}, true, ErrNotRunning
	}
	if err != unix.EWOULDBLOCK {
		return Process{}, true, fmt.Errorf("unable to test the lock on %s: %w", path, err)
	}
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	text := strings.TrimSpace(string(b[:n]))
	pid, perr := strconv.Atoi(text)
	if perr != nil || pid <= 1 {
		return Process{}, false, fmt.Errorf("%s is locked but holds no valid pid (%q); not signalling anyone", path, text)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Process{}, true, fmt.Errorf("unable to stat %s: %w", path, err)
	}
	holders, ok := LockHolders(st.Ino)
	if ok && len(holders) > 0 {
		holder, found := 0, false
		for _, h := range holders {
			if h == pid {
				holder, found = h, true
				break
			}
		}
		if !found {
			// Only now the namespaces: in the usual case nothing more
			// is read, and a pid that matches needs no other look.
			for _, h := range holders {
				if namedInOtherNamespace(h, pid) {
					holder, found = h, true
					break
				}
			}
		}
		if !found {
			return Process{}, false, fmt.Errorf("%s names pid %d but the lock is held by pid %d; stale pid file, not signalling anyone",
				path, pid, holders[0])
		}
		// From here on the holder's pid as this process sees it: that
		// is the one /proc and kill(2) know.
		if other := otherTree(root, holder); other != "" {
			return Process{}, true, &OtherTreeError{Path: path, PID: holder, Tree: other}
		}
		return Process{PID: holder, Named: pid}, true, nil
	}
	// The kernel does not show the lock (another pid namespace, no /proc):
	// trust the file, but only if that process exists.
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return Process{}, false, fmt.Errorf("%s names pid %d, which does not exist; not signalling anyone", path, pid)
	}
	return Process{PID: pid, Named: pid}, true, nil
}

// namedInOtherNamespace tells whether the lock holder holder (its pid as
// this process sees it) runs in another pid namespace than this process
// and is pid in its own, innermost one: a qmail-send in a container
// writes the pid it sees (13), /proc/locks shows the one the reader sees
// (4935). Anything that cannot be read means no: the lock holder must be
// shown to be the process the file names, or nobody is signalled (a pid
// that qmailq wrote into a file it locked itself is never taken).
func namedInOtherNamespace(holder, pid int) bool {
	dir := filepath.Join(procDir, strconv.Itoa(holder))
	var its, mine unix.Stat_t
	if unix.Stat(filepath.Join(dir, "ns", "pid"), &its) != nil ||
		unix.Stat(filepath.Join(procDir, "self", "ns", "pid"), &mine) != nil || its.Ino == mine.Ino {
		return false
	}
	inner, ok := innermostPID(filepath.Join(dir, "status"))
	return ok && inner == pid
}

// innermostPID reads the NSpid line of a /proc/PID/status file: the
// process's pid in each namespace from the one of that /proc down to its
// own; the last is its pid as it sees itself.
func innermostPID(status string) (int, bool) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, false
		}
		p, err := strconv.Atoi(fields[len(fields)-1])
		return p, err == nil
	}
	return 0, false
}

// OtherTreeError is Locate's error for a sendmutex locked by the
// qmail-send of another tree: the file is a hard link shared with that
// tree (cp -al makes such copies), and this tree's qmail-send is not
// running.
type OtherTreeError struct {
	Path string // this tree's sendmutex
	PID  int    // the other tree's qmail-send
	Tree string // the other tree's root
}

func (e *OtherTreeError) Error() string {
	return fmt.Sprintf("%s is locked by qmail-send pid %d of the tree %s, not of this one "+
		"(the file is a hard link shared with that tree, as a cp -al copy makes); not signalling anyone", e.Path, e.PID, e.Tree)
}

// otherTree returns the root of the tree whose program pid (as this
// process sees it) runs, when that is known (its /proc/PID/exe can be
// read: root, or the same user) and is not root itself; "" otherwise. A sendmutex hard-linked between
// two trees (cp -al) is locked by the qmail-send of one of them: the
// other must not take it for its own.
func otherTree(root string, pid int) string {
	exe, err := os.Readlink(filepath.Join(procDir, strconv.Itoa(pid), "exe"))
	// A program replaced since it started (make install over a running
	// system) reads "PATH (deleted)"; its directory is still the tree's.
	exe = strings.TrimSuffix(exe, " (deleted)")
	if err != nil || !strings.HasSuffix(exe, "/bin/qmail-send") {
		return ""
	}
	its := filepath.Dir(filepath.Dir(exe))
	a, err1 := os.Stat(its)
	b, err2 := os.Stat(root)
	if err1 != nil || err2 != nil || os.SameFile(a, b) {
		return ""
	}
	return its
}

// LockHolders returns the pids /proc/locks shows holding a FLOCK on the
// file with inode ino; ok is false when /proc/locks cannot be read. Only the
// inode is compared: on overlay and similar file systems the device numbers
// of stat and /proc/locks differ, and FLOCK locks on two files with the same
// inode number on different devices are rare enough (both holders would
// have to be listed, and one of them would be the pid named in the file).
func LockHolders(ino uint64) (pids []int, ok bool) {
	f, err := os.Open(procLocks)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	want := ":" + strconv.FormatUint(ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->".
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], want) ||
			strings.Count(fields[5], ":") != 2 {
			continue
		}
		if p, err := strconv.Atoi(fields[4]); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, sc.Err() == nil
}
