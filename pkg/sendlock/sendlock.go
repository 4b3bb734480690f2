// Package sendlock tells whether the qmail-send of a tree runs, and which
// process it is, from queue/lock/sendmutex: the file qmail-send holds an
// exclusive flock on and writes its pid into. Every program that signals
// qmail-send (qmailctl, sendmail -q) asks here, so that none of them ever
// signals a pid that a stale or planted file names. queue/lock belongs to
// qmailq; these programs may run as root, so the file is opened as a queue
// file (qhome.OpenQueueFile: no link followed, no FIFO waited on).
//
// qmailq is not trusted either: it can replace sendmutex, write any pid
// into it and lock it itself, and it can read /proc/locks and create files
// until one has the inode number of a file some other process holds a
// flock on. So a holder of the lock counts as qmail-send only when
// /proc/locks shows its lock on this very file (the inode and the device:
// LockHoldersOf), and the process runs as the user qmail-send runs as in
// this tree, real and effective uid (qmails of DIR/etc/ids; the tree's
// user in a tree installed by an ordinary user). Anything else is an error
// and nobody is signalled.
package sendlock

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
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
// written, and its pid as the caller sees it is returned. Whatever the pid,
// the holder must run as qmail-send's user of the tree (sendUID), as its
// uid is seen from the caller's namespace.
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
	holders, ok := LockHoldersOf(f)
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
		if err := runsAsSend(root, holder); err != nil {
			return Process{}, true, fmt.Errorf("%s is locked by pid %d, which %v; not qmail-send, not signalling anyone", path, holder, err)
		}
		return Process{PID: holder, Named: pid}, true, nil
	}
	// The kernel does not show the lock (another pid namespace, no /proc):
	// trust the file, but only if that process exists, and (where /proc
	// can be read) runs as qmail-send's user.
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return Process{}, false, fmt.Errorf("%s names pid %d, which does not exist; not signalling anyone", path, pid)
	}
	if ok {
		if err := runsAsSend(root, pid); err != nil {
			return Process{}, true, fmt.Errorf("%s names pid %d, which %v; not qmail-send, not signalling anyone", path, pid, err)
		}
	}
	return Process{PID: pid, Named: pid}, true, nil
}

// sendUID returns the uid the qmail-send of the tree at root runs as:
// qmails of its etc/ids (in a tree installed by an ordinary user every
// name is that user). A tree whose ids file cannot be read is taken for
// one run by the owner of its root directory: qmail-start as root refuses
// to start without the file, and run by an ordinary user it runs
// everything as that user; for a tree of root's that owner is root, which
// qmailq cannot be.
func sendUID(root string) (int, error) {
	if ids, err := qhome.LoadIDs(root); err == nil {
		return ids.Qmails.UID, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return 0, fmt.Errorf("cannot tell the tree's user (%v)", err)
	}
	return int(st.Uid), nil
}

// runsAsSend returns nil when the process pid (as this process sees it)
// runs with the real and effective uid of qmail-send of the tree at root,
// as /proc shows them from this process's namespace; otherwise an error
// saying what it runs as ("runs as uid 47004, not ...").
func runsAsSend(root string, pid int) error {
	want, err := sendUID(root)
	if err != nil {
		return err
	}
	status := filepath.Join(procDir, strconv.Itoa(pid), "status")
	ruid, euid, read, ok := procUIDs(pid)
	switch {
	case !read && os.Geteuid() != 0:
		// /proc mounted hidepid: an ordinary user may not look at
		// another user's process, nor signal it; the check guards what
		// root signals, and root sees every process.
		return nil
	case !read:
		return fmt.Errorf("cannot be told to run as qmail-send's uid %d (%s unreadable)", want, status)
	case !ok:
		// Read, but no uid in it: nothing to do with hidepid, and
		// nothing shows the process to be qmail-send's.
		return fmt.Errorf("cannot be told to run as qmail-send's uid %d (%s shows none)", want, status)
	case ruid != want || euid != want:
		return fmt.Errorf("runs as uid %d (effective %d), not as qmail-send's uid %d", ruid, euid, want)
	}
	return nil
}

// procUIDs reads the real and effective uid of the process pid from its
// /proc/PID/status. read is false when the file cannot be read; ok is
// false when it cannot be read or shows no uids (no Uid line, or one that
// does not parse).
func procUIDs(pid int) (ruid, euid int, read, ok bool) {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, false, false
	}
	ruid, euid, ok = unixid.StatusUIDs(b)
	return ruid, euid, true, ok
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

// LockHolders returns the pids /proc/locks shows holding a FLOCK on a
// file with inode ino, on any device; ok is false when /proc/locks cannot
// be read. The inode alone does not tell the file: another user can make a
// file with the inode number of one on another file system (numbers come
// from a counter on tmpfs and btrfs) and read in /proc/locks who holds a
// lock on that one. Only for a caller that checks the holder otherwise;
// LockHoldersOf is the one to use on an open file.
func LockHolders(ino uint64) (pids []int, ok bool) {
	return lockHolders(ino, nil)
}

// LockHoldersOf returns the pids /proc/locks shows holding a FLOCK on the
// open file f: the inode number and the device must both match. The
// device /proc/locks prints is the one of the file system's superblock,
// which is not always the st_dev of stat (a btrfs subvolume has a device
// of its own, overlayfs reports the one of the layer below); it is taken
// from /proc/self/mountinfo, by the mount f was opened through
// (/proc/self/fdinfo), and st_dev is accepted as well. Both are devices of
// this file's own file system, so a lock on a file of another one with
// the same inode number never counts. ok is false when /proc/locks cannot
// be read.
func LockHoldersOf(f *os.File) (pids []int, ok bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, false
	}
	dev := uint64(st.Dev) // uint32 on some architectures (mips64)
	devs := []uint64{dev}
	if d, found := mountDev(int(f.Fd())); found && d != dev {
		devs = append(devs, d)
	}
	return lockHolders(st.Ino, devs)
}

// mountDev returns the device of the superblock of the mount the open
// file fd belongs to: its mnt_id in /proc/self/fdinfo/FD, that mount's
// MAJOR:MINOR in /proc/self/mountinfo (which, like /proc/locks, shows the
// superblock's device).
func mountDev(fd int) (dev uint64, ok bool) {
	info, err := os.ReadFile(filepath.Join(procSelf, "fdinfo", strconv.Itoa(fd)))
	if err != nil {
		return 0, false
	}
	id := ""
	for _, line := range strings.Split(string(info), "\n") {
		if rest, found := strings.CutPrefix(line, "mnt_id:"); found {
			id = strings.TrimSpace(rest)
			break
		}
	}
	if id == "" {
		return 0, false
	}
	mounts, err := os.ReadFile(filepath.Join(procSelf, "mountinfo"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != id {
			continue
		}
		maj, min, found := strings.Cut(f[2], ":")
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if !found || err1 != nil || err2 != nil {
			return 0, false
		}
		return unix.Mkdev(uint32(a), uint32(b)), true
	}
	return 0, false
}

// procSelf is where mountDev reads this process's fdinfo and mountinfo:
// always the real /proc (procDir may be a test's fake one).
const procSelf = "/proc/self"

// lockHolders is LockHolders, and LockHoldersOf when devs is not nil: a
// lock then counts only on one of those devices.
func lockHolders(ino uint64, devs []uint64) (pids []int, ok bool) {
	f, err := os.Open(procLocks)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	want := strconv.FormatUint(ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->".
		// The device is MAJOR:MINOR in hex.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		id := strings.Split(fields[5], ":")
		if len(id) != 3 || id[2] != want {
			continue
		}
		if devs != nil {
			maj, err1 := strconv.ParseUint(id[0], 16, 32)
			min, err2 := strconv.ParseUint(id[1], 16, 32)
			if err1 != nil || err2 != nil || !slices.Contains(devs, unix.Mkdev(uint32(maj), uint32(min))) {
				continue
			}
		}
		if p, err := strconv.Atoi(fields[4]); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, sc.Err() == nil
}
