package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sendlock"
)

// Paths below the root.
const (
	MutexFile  = sendlock.MutexFile
	StatusFile = "queue/lock/sendstatus"
)

// ErrNotRunning means no qmail-send holds queue/lock/sendmutex.
var ErrNotRunning = sendlock.ErrNotRunning

// LocateSend finds the running qmail-send of the tree at root and returns
// its pid (sendlock.Locate: never a guess, never a stranger's pid).
func LocateSend(root string) (int, error) { return sendlock.Locate(root) }

// openError is the error for a failed open of path: "unable to open
// PATH: REASON", the path once, whether err names it again (an
// *fs.PathError of that path, as from os.OpenFile) or not.
func openError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = pe.Err
	}
	return fmt.Errorf("unable to open %s: %w", path, err)
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

// Signal sends sig to the qmail-send of root and returns its pid, without
// waiting for the confirmation (qmailctl linkwant apply nowait: a hook
// must not wait for qmail-send before it returns).
func Signal(root string, sig syscall.Signal) (int, error) {
	pid, err := LocateSend(root)
	if err != nil {
		return 0, err
	}
	if err := unix.Kill(pid, sig); err != nil {
		if err == unix.ESRCH {
			return pid, ErrNotRunning
		}
		return pid, fmt.Errorf("unable to signal qmail-send (pid %d): %w", pid, err)
	}
	return pid, nil
}

// ErrUnconfirmed is in the error of SignalAndWait when the signal was sent
// but sendstatus could not be read to confirm it.
var ErrUnconfirmed = errors.New("signalled, but its confirmation cannot be read")

// unreadWait bounds the wait for a confirmation when sendstatus could not
// be read before the signal.
const unreadWait = 2 * time.Second

// SignalAndWait sends sig to the qmail-send of root and waits, at most
// timeout, until sendstatus shows a generation above the one seen before
// the signal, written by that pid. It returns the new status.
//
// The generation counts the signals one qmail-send process handled (from 0
// at its start). A status written by another pid (the qmail-send before a
// restart, when the new one has not written its first status yet) says
// nothing about the located one: then, as when no generation can be read,
// a generation of at least 1 from the located pid is the confirmation. So
// it is when the pid is the same but the started key (the process's start
// time) differs: a restart under the same pid.
//
// qmail-send writes into sendstatus the pid it knows itself by, which
// differs from the pid signalled when it runs in another pid namespace
// (a container; sendlock.Process): the status is compared with that one.
//
// A sendstatus that cannot be read (replaced by a FIFO or a directory,
// unreadable to the caller) does not keep the signal from being sent: it
// is what makes qmail-send re-read its hold flags, and a release from a
// network hook must reach it. Only the confirmation is then missing, and
// the error says that the signal was sent.
func SignalAndWait(root string, sig syscall.Signal, timeout time.Duration) (int, Status, error) {
	proc, err := sendlock.Find(root)
	if err != nil {
		return 0, nil, err
	}
	pid, named := proc.PID, proc.Named
	// The file is rewritten in place; an empty or partial read is retried
	// a few times so that gen0 is not taken from a half-written file.
	gen0 := int64(-1)
	started0 := ""
	unread := false
	for i := 0; i < 10; i++ {
		before, err := ReadStatus(root)
		if err != nil {
			unread = true // signal all the same; the wait says why it fails
			break
		}
		if gen0 = before.Generation(); gen0 >= 0 {
			if p, ok := before.Int("pid"); ok && int(p) != named {
				gen0 = 0 // another process's count
			}
			started0 = before["started"]
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
	if unread {
		// qmail-send writes into the file it opened at its start: one
		// that was replaced does not become readable by waiting.
		deadline = time.Now().Add(min(timeout, unreadWait))
	}
	for i := 1; ; i++ {
		// One look at the clock per round: read twice, the deadline
		// could pass between the two tests, and a sendstatus that cannot
		// be read was reported as one that showed nothing.
		late := time.Now().After(deadline)
		st, err := ReadStatus(root)
		if err == nil && st.Generation() > sameStart(gen0, started0, st) {
			if p, ok := st.Int("pid"); !ok || int(p) == named {
				return pid, st, nil
			}
		}
		if err != nil && late {
			return pid, nil, fmt.Errorf("qmail-send (pid %d) was %w: unable to read %s: %w (qmail-install -check names what is wrong with it)",
				pid, ErrUnconfirmed, StatusFile, err)
		}
		if i%10 == 0 {
			// qmail-send may have exited (or crashed) without confirming.
			if p, err := LocateSend(root); err != nil || p != pid {
				return pid, st, fmt.Errorf("qmail-send (pid %d) exited before confirming", pid)
			}
		}
		if late {
			return pid, st, fmt.Errorf("qmail-send (pid %d) did not confirm within %v: %s shows generation %s of pid %s, not one above %d of pid %d",
				pid, timeout, StatusFile, orNone(st["generation"]), orNone(st["pid"]), gen0, named)
		}
		time.Sleep(pollEvery)
	}
}

// sameStart is gen0, the generation seen before the signal, when st was
// written by the process that wrote it (the same started key), and 0 when
// by a later one: a qmail-send restarted under the same pid (a container's
// fixed start order) counts from 0 again, so its first signal handled is
// the confirmation, not a generation above the one before the restart.
func sameStart(gen0 int64, started0 string, st Status) int64 {
	if started0 != "" && st["started"] != "" && st["started"] != started0 {
		return 0
	}
	return gen0
}

// orNone is v, or "(none)" when empty.
func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}
