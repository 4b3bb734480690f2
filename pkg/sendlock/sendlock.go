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

// procLocks is /proc/locks; a variable for tests.
var procLocks = "/proc/locks"

// Locate finds the running qmail-send of the tree at root and returns
// its pid. It never guesses: qmail-send is running exactly when the flock
// on sendmutex is held (a shared lock cannot be taken), and the pid written
// in the file must be the holder of that lock according to /proc/locks
// (when the kernel shows the lock there). A pid file that names another
// process is an error, and no signal is ever sent to it.
func Locate(root string) (int, error) {
	path := filepath.Join(root, MutexFile)
	// As a queue file: queue/lock is qmailq's, and a link planted there
	// must not make root lock, or quote, a file it points to.
	f, err := qhome.OpenQueueFile(path, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, ErrNotRunning
		}
		return 0, fmt.Errorf("unable to open %s: %w", path, qerr.Bare(err))
	}
	defer f.Close()
	// A qmail-send takes the lock and then writes its pid: in between the
	// file holds nothing or the last one's pid. That moment is waited out
	// (pidWait), so that a qmailctl run while qmail-send starts (a link
	// hook at boot) signals it rather than failing.
	for waited := time.Duration(0); ; waited += pidStep {
		pid, settled, err := check(root, path, f)
		if settled || waited >= pidWait {
			return pid, err
		}
		time.Sleep(pidStep)
	}
}

// pidWait bounds how long Locate waits for a qmail-send that holds the
// lock to name itself in the file; pidStep is the pause between looks.
var pidWait, pidStep = time.Second, 20 * time.Millisecond

// check tests the lock on the open sendmutex f and the pid in it. settled
// is false when the answer may change in a moment: the lock is held and
// the file does not (yet) name its holder.
func check(root, path string, f *os.File) (pid int, settled bool, err error) {
	fd := int(f.Fd())
	err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		unix.Flock(fd, unix.LOCK_UN)
		return 0, true, ErrNotRunning
	}
	if err != unix.EWOULDBLOCK {
		return 0, true, fmt.Errorf("unable to test the lock on %s: %w", path, err)
	}
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	text := strings.TrimSpace(string(b[:n]))
	pid, perr := strconv.Atoi(text)
	if perr != nil || pid <= 1 {
		return 0, false, fmt.Errorf("%s is locked but holds no valid pid (%q); not signalling anyone", path, text)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, true, fmt.Errorf("unable to stat %s: %w", path, err)
	}
	holders, ok := LockHolders(st.Ino)
	if ok && len(holders) > 0 {
		for _, h := range holders {
			if h == pid {
				if other := otherTree(root, pid); other != "" {
					return 0, true, &OtherTreeError{Path: path, PID: pid, Tree: other}
				}
				return pid, true, nil
			}
		}
		return 0, false, fmt.Errorf("%s names pid %d but the lock is held by pid %d; stale pid file, not signalling anyone",
			path, pid, holders[0])
	}
	// The kernel does not show the lock (another pid namespace, no /proc):
	// trust the file, but only if that process exists.
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return 0, false, fmt.Errorf("%s names pid %d, which does not exist; not signalling anyone", path, pid)
	}
	return pid, true, nil
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

// otherTree returns the root of the tree whose program pid runs, when
// that is known (its /proc/PID/exe can be read: root, or the same user)
// and is not root itself; "" otherwise. A sendmutex hard-linked between
// two trees (cp -al) is locked by the qmail-send of one of them: the
// other must not take it for its own.
func otherTree(root string, pid int) string {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
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
