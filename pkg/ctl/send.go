package ctl

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Paths below the root.
const (
	MutexFile  = "queue/lock/sendmutex"
	StatusFile = "queue/lock/sendstatus"
)

// ErrNotRunning means no qmail-send holds queue/lock/sendmutex.
var ErrNotRunning = errors.New("qmail-send is not running")

// procLocks is /proc/locks; a variable for tests.
var procLocks = "/proc/locks"

// LocateSend finds the running qmail-send of the tree at root and returns
// its pid. It never guesses: qmail-send is running exactly when the flock
// on sendmutex is held (a shared lock cannot be taken), and the pid written
// in the file must be the holder of that lock according to /proc/locks
// (when the kernel shows the lock there). A pid file that names another
// process is an error, and no signal is ever sent to it.
func LocateSend(root string) (int, error) {
	path := filepath.Join(root, MutexFile)
	// As a queue file: queue/lock is qmailq's, and a link planted there
	// must not make root lock, or quote, a file it points to.
	f, err := qhome.OpenQueueFile(path, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, ErrNotRunning
		}
		return 0, fmt.Errorf("unable to open %s: %w", path, err)
	}
	defer f.Close()
	fd := int(f.Fd())
	err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		unix.Flock(fd, unix.LOCK_UN)
		return 0, ErrNotRunning
	}
	if err != unix.EWOULDBLOCK {
		return 0, fmt.Errorf("unable to test the lock on %s: %w", path, err)
	}
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	text := strings.TrimSpace(string(b[:n]))
	pid, perr := strconv.Atoi(text)
	if perr != nil || pid <= 1 {
		return 0, fmt.Errorf("%s is locked but holds no valid pid (%q); not signalling anyone", path, text)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("unable to stat %s: %w", path, err)
	}
	holders, ok := lockHolders(st.Ino)
	if ok && len(holders) > 0 {
		for _, h := range holders {
			if h == pid {
				return pid, nil
			}
		}
		return 0, fmt.Errorf("%s names pid %d but the lock is held by pid %d; stale pid file, not signalling anyone",
			path, pid, holders[0])
	}
	// The kernel does not show the lock (another pid namespace, no /proc):
	// trust the file, but only if that process exists.
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return 0, fmt.Errorf("%s names pid %d, which does not exist; not signalling anyone", path, pid)
	}
	return pid, nil
}

// lockHolders returns the pids /proc/locks shows holding a FLOCK on the
// file with inode ino; ok is false when /proc/locks cannot be read. Only the
// inode is compared: on overlay and similar file systems the device numbers
// of stat and /proc/locks differ, and FLOCK locks on two files with the same
// inode number on different devices are rare enough (both holders would
// have to be listed, and one of them would be the pid named in the file).
func lockHolders(ino uint64) (pids []int, ok bool) {
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

// Status is queue/lock/sendstatus: "key value" lines.
type Status map[string]string

// ReadStatus reads queue/lock/sendstatus; a missing file is an empty
// Status. It is read as a queue file (qhome.ReadQueueFile): no link
// planted in queue/lock is followed.
func ReadStatus(root string) (Status, error) {
	b, err := qhome.ReadQueueFile(filepath.Join(root, StatusFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Status{}, nil
		}
		return nil, err
	}
	return ParseStatus(b), nil
}

// ParseStatus parses sendstatus contents. Lines without a space have an
// empty value; later keys win. A last line without its newline is ignored:
// qmail-send rewrites the file in place, so a reader may see it half
// written.
func ParseStatus(b []byte) Status {
	s := Status{}
	text := string(b)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	} else {
		text = ""
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		s[k] = strings.TrimSpace(v)
	}
	return s
}

// Generation is the status's generation, -1 when absent or malformed.
func (s Status) Generation() int64 {
	n, err := strconv.ParseInt(s["generation"], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Int returns an integer value, ok false when absent or malformed.
func (s Status) Int(key string) (int64, bool) {
	n, err := strconv.ParseInt(s[key], 10, 64)
	return n, err == nil
}

// Flag interprets a yes/no value: "", "0", "no", "false", "-" are false.
func (s Status) Flag(key string) bool {
	switch strings.ToLower(s[key]) {
	case "", "0", "no", "false", "-", "off":
		return false
	}
	return true
}

// pollEvery is the interval at which sendstatus is re-read while waiting.
var pollEvery = 20 * time.Millisecond

// SignalAndWait sends sig to the qmail-send of root and waits, at most
// timeout, until sendstatus shows a generation above the one seen before
// the signal, written by that pid. It returns the new status.
//
// The generation counts the signals one qmail-send process handled (from 0
// at its start). A status written by another pid (the qmail-send before a
// restart, when the new one has not written its first status yet) says
// nothing about the located one: then, as when no generation can be read,
// a generation of at least 1 from the located pid is the confirmation.
func SignalAndWait(root string, sig syscall.Signal, timeout time.Duration) (int, Status, error) {
	pid, err := LocateSend(root)
	if err != nil {
		return 0, nil, err
	}
	// The file is rewritten in place; an empty or partial read is retried
	// a few times so that gen0 is not taken from a half-written file.
	gen0 := int64(-1)
	for i := 0; i < 10; i++ {
		before, err := ReadStatus(root)
		if err != nil {
			return pid, nil, fmt.Errorf("unable to read %s: %w", StatusFile, err)
		}
		if gen0 = before.Generation(); gen0 >= 0 {
			if p, ok := before.Int("pid"); ok && int(p) != pid {
				gen0 = 0 // another process's count
			}
			break
		}
		time.Sleep(pollEvery / 4)
	}
	gen0 = max(gen0, 0) // the located pid has handled our signal: at least 1
	if err := unix.Kill(pid, sig); err != nil {
		if err == unix.ESRCH {
			return pid, nil, ErrNotRunning
		}
		return pid, nil, fmt.Errorf("unable to signal qmail-send (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for i := 1; ; i++ {
		st, err := ReadStatus(root)
		if err == nil && st.Generation() > gen0 {
			if p, ok := st.Int("pid"); !ok || int(p) == pid {
				return pid, st, nil
			}
		}
		if i%10 == 0 {
			// qmail-send may have exited (or crashed) without confirming.
			if p, err := LocateSend(root); err != nil || p != pid {
				return pid, st, fmt.Errorf("qmail-send (pid %d) exited before confirming", pid)
			}
		}
		if time.Now().After(deadline) {
			return pid, st, fmt.Errorf("qmail-send (pid %d) did not confirm within %v: %s shows generation %s of pid %s, not one above %d of pid %d",
				pid, timeout, StatusFile, orNone(st["generation"]), orNone(st["pid"]), gen0, pid)
		}
		time.Sleep(pollEvery)
	}
}

// orNone is v, or "(none)" when empty.
func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}
