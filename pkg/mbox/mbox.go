// Package mbox appends one message to an mbox file the way qmail-local
// does (spec/delivery.md §4, "mbox"): under an exclusive flock and (beyond
// qmail) an exclusive POSIX record lock on the whole file, a From_ line,
// Return-Path and Delivered-To, the message with ">" added before every
// line matching "^>*From ", a newline if the last line lacked one, and an
// empty line; then fsync. Beyond qmail it also waits while a fresh
// dot-lock (the mbox's name with ".lock" added) exists, without making or
// removing one. On any failure after the locks were taken the file is cut
// back to its old length, so no reader ever sees half a message.
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Knobs, variables so that tests can shorten them.
var (
	// LockTimeout is how long Deliver waits for the lock.
	LockTimeout = 30 * time.Second
	// lockPoll is the pause between lock attempts, and the first pause
	// for a dot-lock.
	lockPoll = 100 * time.Millisecond
	// dotLockPollMax is the longest pause for a dot-lock: each pause for
	// one doubles the last, up to this.
	dotLockPollMax = time.Second
)

// dotLockStale is the age past which a dot-lock is taken for one left
// behind by a program that died, and ignored: liblockfile's and Debian's
// rule (dotlockfile(1): valid if "touched less than 5 minutes ago").
const dotLockStale = 5 * time.Minute

// TextLocked is the report when the lock could not be had in time.
const TextLocked = "File has been locked for 30 seconds straight. (#4.3.0)"

// NeedsQuote reports whether a message line (with or without its '\n')
// must get a '>' in front in an mbox: it matches "^>*From ".
func NeedsQuote(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return len(line)-i >= 5 && string(line[i:i+5]) == "From "
}

// lockEx locks fd for writing within LockTimeout: an exclusive flock, as
// qmail takes on Linux, and a POSIX record lock (fcntl F_SETLK, F_WRLCK) on
// the whole file, which qmail does not take. On Linux the two kinds do not
// exclude each other, and procmail, mutt, Dovecot, s-nail, mailx and
// Postfix's local lock an mbox with fcntl: a reader that truncates and
// rewrites the file under an fcntl lock alone lost messages qmail-local
// appended meanwhile.
//
// Once both are held, the dot-lock dotLock is looked at (dotLocked): while
// a fresh one exists both locks are let go again and the attempt repeated
// after a pause that doubles from lockPoll up to dotLockPollMax, within the
// same LockTimeout. Python's mailbox module lets its fcntl lock go before it
// renames its rewritten mbox over the old one, and keeps only its dot-lock
// across that gap: a delivery let in there appended to the file the rename
// then threw away (QA: 3 of 300 lost). qmail ignores dot-locks. No dot-lock
// is made, and none removed: one left by a qmail-local killed with SIGKILL
// would shut readers out until removed by hand, and a stale one is the
// business of the programs that make them.
//
// Both are asked for without blocking; when the second is busy the first
// is let go before the pause, so that qmail-local never holds one lock while
// it waits for the other (a program taking them in the other order cannot
// deadlock with it). A lock the file system does not support (ENOLCK,
// EOPNOTSUPP, EINVAL, or any error but "busy") is done without, as qmail
// goes on without its flock then. lockEx reports whether every lock the
// file system supports is held: only then can no other writer have
// appended, so that a failed delivery may cut the file back.
func lockEx(fd int, dotLock string) (bool, error) {
	useFlock, useFcntl := !onNFS(fd), true
	deadline := time.Now().Add(LockTimeout)
	dotPause := lockPoll
	for {
		busy, pause := false, lockPoll
		if useFlock {
			switch unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) {
			case nil:
			case unix.EWOULDBLOCK, unix.EINTR:
				busy = true
			default:
				useFlock = false
			}
		}
		if !busy && useFcntl {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 0, Len: 0}
			switch unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk) {
			case nil:
			case unix.EAGAIN, unix.EACCES, unix.EINTR:
				busy = true
				if useFlock {
					unix.Flock(fd, unix.LOCK_UN)
				}
			default:
				useFcntl = false
			}
		}
		if !busy && dotLocked(dotLock) {
			busy, pause = true, dotPause
			dotPause = min(2*dotPause, dotLockPollMax)
			if useFcntl {
				lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart, Start: 0, Len: 0}
				unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
			}
			if useFlock {
				unix.Flock(fd, unix.LOCK_UN)
			}
		}
		if !busy {
			return useFlock || useFcntl, nil
		}
		if !time.Now().Before(deadline) {
			return false, qerr.Temp(TextLocked)
		}
		lockSleep(pause)
	}
}

// dotLocked reports whether the dot-lock fn exists and is fresh: last
// modified less than dotLockStale ago (a time in the future counts as
// fresh, as with liblockfile). Only the name's own time counts (Lstat: a
// lock made as a symbolic link is a lock too); what the file holds (a pid,
// for some) is not read. A dot-lock that cannot be looked at for any other
// reason than its absence (a name too long) counts as none.
func dotLocked(fn string) bool {
	fi, err := os.Lstat(fn)
	return err == nil && time.Since(fi.ModTime()) < dotLockStale
}

// lockSleep is the pause between lock attempts, with neither lock held; a
// variable so that tests can act there.
var lockSleep = time.Sleep

// onNFS reports whether fd is a file on NFS. There Linux makes a flock a
// whole-file fcntl lock owned by the open file rather than the process, so
// qmail-local's own flock and fcntl lock would conflict with each other and
// never both be had: on NFS only the fcntl lock is taken (it is the one NFS
// passes on to the server and other clients).
func onNFS(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Type == unix.NFS_SUPER_MAGIC
}

type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// Deliver appends a message to the mbox file fn (created with mode 0600
// if missing, subject to the umask). head holds the From_, Return-Path
// and Delivered-To lines; msg is the message. It returns nil when the
// message is on disk, else a temporary *qerr.Error with qmail-local's
// text naming fn.
func Deliver(fn string, head []byte, msg io.Reader) error {
	f, madeIn, locked, err := openLocked(fn)
	if err != nil {
		return err
	}
	defer f.Close()
	pos, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		// Nothing written, and no length to cut back to.
		return qerr.Wrap(err, false, "Unable to write "+fn+": "+qerr.Str(err)+". (#4.3.0)")
	}
	w := newWriter(f)
	if _, err := w.Write(head); err != nil {
		return writeErr(f, fn, err, locked, pos)
	}
	if err := copyQuoted(w, msg); err != nil {
		var re readError
		if errors.As(err, &re) {
			left := truncate(f, locked, pos)
			return qerr.Wrap(re.err, false, "Unable to read message: "+qerr.Str(re.err)+"."+left+" (#4.3.0)")
		}
		return writeErr(f, fn, err, locked, pos)
	}
	if err := w.Flush(); err != nil {
		return writeErr(f, fn, err, locked, pos)
	}
	if err := f.Sync(); err != nil {
		return writeErr(f, fn, err, locked, pos)
	}
	if madeIn != "" {
		// A mailbox this delivery made exists only once its directory
		// entry is on disk too: the message leaves the queue after this.
		if err := dirSync(madeIn); err != nil {
			return writeErr(f, fn, err, locked, pos)
		}
	}
	return nil
}

// maxReplaced bounds the opens of one delivery whose file was replaced
// while it waited for its locks.
const maxReplaced = 10

// openLocked opens fn (open) and locks it (lockEx, which also waits for
// the dot-lock fn.lock), and makes sure the file locked is still the one
// fn names. A mail reader that rewrites an mbox into a new file and renames
// that over the old one (Python's mailbox module, some others), or removes
// an mbox it emptied, does so under one of the locks (Python's under its
// dot-lock only); a delivery that opened the old file meanwhile gets the
// locks once they are let go, but of a file no name reaches any more: it
// appended there, reported success, and the message was lost (QA: 13 of
// 200 in one run). So after locking, the open file and the name are
// compared (device and inode, the name followed as open follows it); when
// they differ, or the name is gone, the file is closed (which lets its
// locks go) and fn opened again. qmail does not check this.
func openLocked(fn string) (f *os.File, madeIn string, locked bool, err error) {
	for try := 0; ; try++ {
		f, madeIn, err = open(fn)
		if err != nil {
			return nil, "", false, qerr.Wrap(err, false, "Unable to open "+fn+": "+qerr.Str(err)+". (#4.2.1)")
		}
		locked, err = lockEx(int(f.Fd()), fn+".lock")
		if err != nil {
			f.Close()
			return nil, "", false, err
		}
		if same, err := stillNamed(f, fn); err != nil || same {
			if err != nil {
				f.Close()
				return nil, "", false, qerr.Wrap(err, false, "Unable to open "+fn+": "+qerr.Str(err)+". (#4.2.1)")
			}
			return f, madeIn, locked, nil
		}
		f.Close()
		if try+1 == maxReplaced {
			return nil, "", false, qerr.Temp("Unable to lock %s: it was replaced each time it was locked. (#4.3.0)", fn)
		}
	}
}

// stillNamed reports whether the open file f is the file fn names (false
// when nothing is there any more). An error other than a missing name is
// returned.
func stillNamed(f *os.File, fn string) (bool, error) {
	open, err := f.Stat()
	if err != nil {
		return false, err
	}
	named, err := os.Stat(fn)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(open, named), nil
}

// open opens fn for appending, creating it (mode 0600, subject to the
// umask) if it does not exist, and says in which directory it made it ("" if
// it did not). A symbolic link is followed, one that names a file not there
// yet too: its target is made, as qmail's open(O_CREAT) does.
func open(fn string) (*os.File, string, error) {
	const flags = os.O_WRONLY | os.O_APPEND | unix.O_NONBLOCK
	f, err := os.OpenFile(fn, flags, 0)
	if !errors.Is(err, fs.ErrNotExist) {
		return f, "", err
	}
	f, err = os.OpenFile(fn, flags|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, filepath.Dir(fn), nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, "", err
	}
	if fi, lerr := os.Lstat(fn); lerr != nil || fi.Mode()&fs.ModeSymlink == 0 {
		// Made by another delivery in between: append to it.
		f, err = os.OpenFile(fn, flags, 0)
		return f, "", err
	}
	// A link to nothing yet (O_EXCL refuses every link): make its target.
	f, err = os.OpenFile(fn, flags|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "", err
	}
	target, err := filepath.EvalSymlinks(fn)
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return f, filepath.Dir(target), nil
}

// dirSync flushes a directory; a variable so that tests can watch it.
var dirSync = qhome.SyncDir

// quoter writes a message with "^>*From " lines quoted. It decides at
// each line start by holding back the '>' run and the part of "From "
// matched so far, so lines of any length are handled in constant memory.
type quoter struct {
	w      *bufio.Writer
	inLine bool // past the decision for the current line
	gts    int  // '>' bytes held back
	from   int  // bytes of "From " matched and held back
	wrote  bool // anything written
	lastNL bool // last byte written was '\n'
}

const fromSpace = "From "

func (q *quoter) flushHeld(quote bool) error {
	if quote {
		if err := q.w.WriteByte('>'); err != nil {
			return err
		}
	}
	for ; q.gts > 0; q.gts-- {
		if err := q.w.WriteByte('>'); err != nil {
			return err
		}
	}
	if q.from > 0 {
		if _, err := q.w.WriteString(fromSpace[:q.from]); err != nil {
			return err
		}
		q.from = 0
	}
	return nil
}

func (q *quoter) write(p []byte) error {
	for len(p) > 0 {
		if q.inLine {
			i := bytes.IndexByte(p, '\n')
			n := len(p)
			if i >= 0 {
				n = i + 1
				q.inLine = false
			}
			if _, err := q.w.Write(p[:n]); err != nil {
				return err
			}
			q.wrote, q.lastNL = true, p[n-1] == '\n'
			p = p[n:]
			continue
		}
		c := p[0]
		switch {
		case q.from == 0 && c == '>':
			q.gts++
			p = p[1:]
		case c == fromSpace[q.from]:
			q.from++
			p = p[1:]
			if q.from == len(fromSpace) {
				if err := q.flushHeld(true); err != nil {
					return err
				}
				q.inLine, q.wrote, q.lastNL = true, true, false
			}
		default:
			held := q.gts > 0 || q.from > 0
			if err := q.flushHeld(false); err != nil {
				return err
			}
			if held {
				q.wrote, q.lastNL = true, false
			}
			q.inLine = true // c is written by the inLine branch
		}
	}
	return nil
}

// end flushes a pending line start, ends an unterminated last line and
// writes the empty separator line.
func (q *quoter) end() error {
	if q.gts > 0 || q.from > 0 {
		if err := q.flushHeld(false); err != nil {
			return err
		}
		q.wrote, q.lastNL = true, false
	}
	if q.wrote && !q.lastNL {
		if err := q.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return q.w.WriteByte('\n')
}

// copyQuoted copies msg to w with quoting, the final newline and the
// separator line.
func copyQuoted(w *bufio.Writer, msg io.Reader) error {
	q := &quoter{w: w}
	buf := make([]byte, 64*1024)
	for {
		n, err := msg.Read(buf)
		if n > 0 {
			if werr := q.write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return readError{err}
		}
	}
	return q.end()
}

// cutBack is f.Truncate; a variable for the tests.
var cutBack = (*os.File).Truncate

// truncate cuts f back to pos when the delivery held every lock, and
// returns "" or, when the cut failed, a sentence for the report saying
// so: part of the message is then left in the mailbox, without a From_
// line of its own, and readers see it as the end of the message before.
// qmail says nothing of it. It happens where the write failed for want
// of space and shrinking a file needs space too (btrfs at a quota limit).
func truncate(f *os.File, locked bool, pos int64) string {
	if !locked {
		return ""
	}
	if err := cutBack(f, pos); err != nil {
		if fi, serr := f.Stat(); serr == nil && !fi.Mode().IsRegular() {
			return "" // /dev/null, a tty: nothing was kept to cut
		}
		return " Unable to cut it back to its old length (" + qerr.Str(err) + "): part of the message is left at its end."
	}
	return ""
}

func writeErr(f *os.File, fn string, err error, locked bool, pos int64) error {
	left := truncate(f, locked, pos)
	return qerr.Wrap(err, false, "Unable to write "+fn+": "+qerr.Str(err)+"."+left+" (#4.3.0)")
}

func newWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64*1024) }
