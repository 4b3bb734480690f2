package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/sendlock"
	"github.com/hqmail/hqmail/pkg/unixid"
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
// ones until restarted. A process is named when it is one of those
// daemons (daemon), its program was root/bin/NAME and is gone ("NAME (deleted)" in /proc/PID/exe), unless
// the file there now holds the same bytes (the same build installed
// again). "" when there is none, or when the processes cannot be looked
// at (other users' processes, for an ordinary user).
//
// What /proc says of a process is its owner's to arrange: a user with a
// user and mount namespace of their own can mount a file system of theirs
// over root/bin, run a program of any name from it and remove it, and the
// path reads as a replaced program of the tree. So a process counts only
// when it runs as root or as one of the tree's own users (etc/ids; the
// installer for a tree of an ordinary user), its real uid and its
// effective uid both; when the deleted file it runs was on the file
// system of root/bin (a private mount's file is not); and when NAME is
// one of the tree's Programs (a file qmail-install replaces). The name is
// printed only then, and escaped all the same.
func ReplacedUnderSend(root string) string {
	return replacedRunning(root, "/proc")
}

// replacedRunning is ReplacedUnderSend with the process table at proc (a
// fake one in tests).
func replacedRunning(root, proc string) string {
	// The exe links of /proc are absolute: a relative root (-root . in
	// the tree, or -root tree beside it) is made so first, or no process
	// could ever match.
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	bin := filepath.Join(root, "bin")
	if r, err := filepath.EvalSymlinks(bin); err == nil {
		bin = r
	}
	var binSt unix.Stat_t
	if err := unix.Stat(bin, &binSt); err != nil {
		return ""
	}
	uids := treeUIDs(root)
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
		if name, ok := staleProgram(filepath.Join(proc, pid), bin, uint64(binSt.Dev), uids); ok {
			stale = append(stale, qread.Safe(name)+" (pid "+pid+")")
		}
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

// treeUIDs returns the uids whose processes may be counted as the
// tree's: root's, and those of the tree's users. Without a readable
// etc/ids, root's only.
func treeUIDs(root string) map[int]bool {
	uids := map[int]bool{0: true}
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		return uids
	}
	for _, n := range qhome.UserNames {
		uids[ids.UserByName(n).UID] = true
	}
	return uids
}

// daemons are the programs that run until they are stopped: only they
// need a restart to run a new build. The others end by themselves and
// are started afresh from bin/ (qmail-local and qmail-remote per
// delivery, or kept until idle for control/smtpcache or localcache;
// qmail-queue per message; qmail-getpw per lookup; the admin tools).
var daemons = map[string]bool{
	"qmail-start": true, "qmail-send": true, "qmail-lspawn": true,
	"qmail-rspawn": true, "qmail-clean": true, "qmail-queued": true,
	"splogger": true, "qmail-linkwatch": true, "qmail-smtpd": true,
}

// daemon reports whether the process whose /proc directory is dfd,
// running the program name, is one of the daemons. qmail-smtpd is one
// only with -listen: under tcpserver or inetd it serves one connection
// and ends.
func daemon(dfd int, name string) bool {
	if !daemons[name] {
		return false
	}
	if name != "qmail-smtpd" {
		return true
	}
	fd, err := unix.Openat(dfd, "cmdline", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "cmdline")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	for _, a := range args[min(1, len(args)):] {
		if a == "--" {
			break
		}
		for _, flag := range []string{"-listen", "--listen"} {
			if a == flag || strings.HasPrefix(a, flag+"=") {
				return true
			}
		}
	}
	return false
}

// staleProgram returns the name of the program of bin that the process
// whose /proc directory is dir runs, when an install has replaced it
// since and the process counts (see ReplacedUnderSend). Everything is
// read through one descriptor of dir: should the process end and its
// pid be given to another meanwhile, the reads fail rather than describe
// the other. The owner is read first: a process of root or of the tree
// that runs a replaced program of bin at that point got there by an
// exec of its own, not one its previous owner chose.
func staleProgram(dir, bin string, binDev uint64, uids map[int]bool) (string, bool) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(dfd)
	if !ownedByTree(dfd, uids) {
		return "", false
	}
	target, err := readlinkAt(dfd, "exe")
	if err != nil {
		return "", false
	}
	old, ok := strings.CutSuffix(target, " (deleted)")
	if !ok || filepath.Dir(old) != bin {
		return "", false
	}
	name := filepath.Base(old)
	if !slices.Contains(Programs, name) || !daemon(dfd, name) {
		return "", false
	}
	// exe followed: the program's own inode, deleted or not. It must be
	// on bin/'s file system; on an overlay (overlayroot: a tmpfs over
	// the root file system) bin/ shows the overlay's device and its
	// files their layer's, so the device of the program now in bin/
	// counts too. A program run from a file system mounted over bin/
	// in a mount namespace of its own matches neither.
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, "exe", &st, 0); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", false
	}
	if uint64(st.Dev) != binDev {
		var cur unix.Stat_t
		if unix.Lstat(filepath.Join(bin, name), &cur) != nil || cur.Mode&unix.S_IFMT != unix.S_IFREG || cur.Dev != st.Dev {
			return "", false
		}
	}
	fd, err := unix.Openat(dfd, "exe", unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", false
	}
	exe := os.NewFile(uintptr(fd), filepath.Join(dir, "exe"))
	defer exe.Close()
	if sameContents(exe, filepath.Join(bin, name)) {
		return "", false
	}
	return name, true
}

// ownedByTree reports whether the real and the effective uid on the Uid
// line of the status file in the /proc directory dfd are both in uids.
func ownedByTree(dfd int, uids map[int]bool) bool {
	fd, err := unix.Openat(dfd, "status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "status")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return false
	}
	r, e, ok := unixid.StatusUIDs(b)
	return ok && uids[r] && uids[e]
}

// readlinkAt returns the target of the link name in the directory dfd.
func readlinkAt(dfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}

// sameContents reports whether the open file a and the file b hold the
// same bytes (false when b cannot be read).
func sameContents(a *os.File, b string) bool {
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}
