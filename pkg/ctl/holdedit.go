package ctl

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sendlock"
	"golang.org/x/sys/unix"
)

// lockWait bounds the wait for another qmailctl editing the control files.
var lockWait = 10 * time.Second

// errAllHeld is returned when a domain is to be released from a file
// that holds everything only because it lists no domain.
var errAllHeld = errors.New("remote delivery is held for all destinations; " +
	"release it entirely (qmailctl release remote) or hold only some domains")

// EditResult says what a hold edit did.
type EditResult struct {
	Before, After hold.Flag
	Changed       bool
	// ReplacedLink is, when the flag file was a symbolic link that the
	// edit replaced with a file or removed, where the link pointed (its
	// target is never written: a list shared through the link stays as
	// it was).
	ReplacedLink string
}

// lockDir takes the control directory's lock, an exclusive flock on
// control/lock (control.LockName), so that concurrent qmailctl runs (and
// qmail-start's startheld) edit the flag files and linkwant one after the
// other. The wait is bounded.
//
// The file is made on first use, mode 0600, and must be a regular file of
// root's, of the control directory's owner or of the caller: no other
// user can open it, and so none can hold the lock. (It was the flock of
// the control directory itself, which every user may open to read, so
// that anyone's flock(1) made every hold and release wait and fail, and
// qmailctl boot hold nothing: QA rsec3.) It is reached through the
// directory's descriptor, never through a symbolic link, and a FIFO there
// is not waited on. Made by root in a control directory of another user
// (a tree an ordinary user installed), it is given to that user, whose
// own qmailctl must open it.
func lockDir(dir string, wait time.Duration) (unlock func(), err error) {
	f, err := openLock(dir)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("unable to lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			// Only root and the tree's owner can open the file:
			// another qmailctl, a qmail-start applying startheld, or
			// some other process of theirs (flock(1), an older
			// qmailctl's child) holds it.
			who := "another process"
			if pids, ok := sendlock.LockHoldersOf(f); ok && len(pids) > 0 {
				who = fmt.Sprintf("pid %d", pids[0])
			}
			f.Close()
			return nil, fmt.Errorf("unable to lock %s: held by %s for more than %v "+
				"(another qmailctl or qmail-start, or another process of root's or of the tree's owner: only they can open it)",
				f.Name(), who, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openLock opens (making it if need be) the lock file of the control
// directory dir, as lockDir describes.
func openLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, control.LockName)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	var dst unix.Stat_t
	if err := unix.Fstat(dfd, &dst); err != nil {
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	const flags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	// Made here (O_EXCL), or opened as it is; one removed between the
	// two is made again.
	var fd int
	made := false
	for try := 0; ; try++ {
		fd, err = unix.Openat(dfd, control.LockName, flags|unix.O_CREAT|unix.O_EXCL, 0o600)
		if made = err == nil; err != unix.EEXIST {
			break
		}
		if fd, err = unix.Openat(dfd, control.LockName, flags, 0); err != unix.ENOENT || try == 2 {
			break
		}
	}
	switch {
	case err == unix.ELOOP:
		return nil, fmt.Errorf("unable to open %s: it is a symbolic link; the lock must be a file of its own (remove it)", path)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	euid := os.Geteuid()
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		f.Close()
		return nil, fmt.Errorf("unable to lock %s: not a regular file (remove it)", path)
	case st.Uid != 0 && st.Uid != dst.Uid && int(st.Uid) != euid:
		f.Close()
		return nil, fmt.Errorf("unable to lock %s: it belongs to uid %d, not to root or to the owner of %s (uid %d), "+
			"so another user could hold the lock; remove it", path, st.Uid, dir, dst.Uid)
	}
	if made {
		// Mode 0600 whatever the umask, and the directory's owner's
		// when root makes it in a user's tree.
		err := f.Chmod(0o600)
		if err == nil && euid == 0 && dst.Uid != 0 {
			err = f.Chown(int(dst.Uid), int(dst.Gid))
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	} else if st.Mode&0o077 != 0 && (euid == 0 || int(st.Uid) == euid) {
		// Opened to others (a chmod by hand), it would let them take
		// the lock: closed to them again.
		f.Chmod(0o600)
	}
	return f, nil
}

// EditHold sets (hold=true) or clears a hold flag file in the control
// directory dir. name is hold.LocalFile or hold.RemoteFile.
// Without domains the whole channel is held or released; for remote
// delivery the domains held by name are kept under a hold of everything
// and stay held when it is released. With domains (remote only):
//   - hold adds the domains that are not listed yet (file lines are kept,
//     comments and junk included); if everything is held already, nothing
//     changes;
//   - release removes the lines naming those domains (case-insensitive);
//     when no domain line is left the file is removed, unless everything
//     is held ("*" first), which stays: the file cannot say "all but
//     these", so those domains flow once everything is released.
//
// The new file is written as NAME.tmp, synced and renamed; the directory is
// synced after the rename or removal. A flag file that is a symbolic link
// is read through the link, but a change replaces the link itself (with a
// file of its own, or by its removal), never its target
// (EditResult.ReplacedLink).
func EditHold(dir, name string, holding bool, domains []string) (EditResult, error) {
	if err := checkDomains(domains); err != nil {
		return EditResult{}, err
	}
	unlock, err := lockDir(dir, lockWait)
	if err != nil {
		return EditResult{}, err
	}
	defer unlock()
	return editHold(dir, name, holding, domains)
}

func checkDomains(domains []string) error {
	for _, d := range domains {
		if hold.AllMarker(d) {
			return usageError("%q is not a domain; to hold or release every destination, name none", d)
		}
		if !hold.ValidDomain(d) {
			if hold.OffWord(d) {
				return usageError("not a domain: %q (a word for off: a flag holds while it exists; release it to send)", d)
			}
			if a, ok := zeroPadded(d); ok {
				return usageError("not a domain: %q (qmail-remote reads no leading zeros in an address literal, unlike qmail's ip_scan; write %s)", d, a)
			}
			return usageError("not a domain: %q", d)
		}
	}
	return nil
}

// zeroPadded returns "[a.b.c.d]" for a bracketed dotted quad written with
// leading zeros ("[127.000.000.001]"), which qmail-remote (pkg/dnsmx,
// net.ParseIP) does not read as an address.
func zeroPadded(d string) (string, bool) {
	in, ok := strings.CutPrefix(d, "[")
	if in, ok = strings.CutSuffix(in, "]"); !ok {
		return "", false
	}
	parts := strings.Split(in, ".")
	if len(parts) != 4 || strings.Trim(in, "0123456789.") != "" {
		return "", false
	}
	padded := false
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if p == "" || len(p) > 3 || err != nil || n > 255 {
			return "", false
		}
		padded = padded || len(p) > 1 && p[0] == '0'
		parts[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(parts, ".") + "]", padded
}

// editHold is EditHold for a caller holding the directory lock.
func editHold(dir, name string, holding bool, domains []string) (EditResult, error) {
	var res EditResult

	path := filepath.Join(dir, name)
	// A link is read through, but what is written or removed is the link
	// itself (ReplaceFile renames over it): writing through it would edit
	// whatever file it points to, a list shared with others perhaps.
	link := linkTarget(path)
	if name == hold.LocalFile {
		if !holding {
			return releaseLocal(dir, path)
		}
		if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
			// A directory or FIFO there holds local delivery already
			// (qmail-send asks only whether the name exists).
			res.Before = hold.ParseFile(name, nil)
			res.After = res.Before
			return res, nil
		}
	}
	old, err := qhome.ReadRegular(path) // as qmail-send reads it: a FIFO is an error, not a wait
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	// Lines as qmail-send reads them: a byte order mark (Notepad) is
	// not part of the first domain, and the file is written without it.
	old = control.StripBOM(old)
	if exists {
		res.Before = hold.ParseFile(name, old)
		// A flag others cannot read (written by hand under umask 077)
		// is one qmail-send cannot apply, even when its words stay. Not
		// through a link: its target is not qmailctl's to change.
		if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o044 != 0o044 {
			_ = os.Chmod(path, st.Mode().Perm()|0o044)
		}
	}

	var content []byte
	remove := false
	switch {
	case holding && len(domains) == 0:
		if exists && res.Before.All {
			res.After = res.Before
			return res, nil
		}
		// The domains held by name stay below the "*" line, so that
		// releasing the hold of everything gives them back.
		content = append([]byte("*\n"), old...)
	case holding:
		if exists && res.Before.All && !allMarker(control.FirstLine(old)) {
			// A file of junk holds everything only because it lists no
			// domain: a domain line would make it hold that one alone.
			res.After = res.Before
			return res, nil
		}
		// Under a "*" line the domains are recorded too, so that they
		// stay held when everything is released (the uplink's hook must
		// not undo a VPN hook's hold).
		base := old
		if exists && len(old) == 0 {
			// An empty file (touch control/holdremote) holds everything
			// by its empty first line: a domain written as that line
			// would release all the rest (QA docs).
			base = []byte("*\n")
		}
		content = addDomains(base, res.Before.Domains, domains)
	case !exists:
		return res, nil
	case len(domains) == 0:
		// Release the hold of everything; domains held by name stay held
		// (an uplink's hook holds and releases everything, a VPN's its
		// domains, and the one must not undo the other).
		switch {
		case !res.Before.All:
			res.After = res.Before
			return res, nil
		case len(res.Before.Domains) > 0 && allMarker(control.FirstLine(old)):
			// The domains follow. Every line that would hold everything
			// once it came first goes too (a blank line, CRLF's "\r",
			// a second "*"): no domain is one, and the first line left
			// must be a domain line, or the file still holds everything.
			content = old
			for allMarker(control.FirstLine(content)) {
				i := strings.IndexByte(string(content), '\n')
				if i < 0 {
					content = nil
					break
				}
				content = content[i+1:]
			}
		default:
			remove = true
		}
	default:
		if res.Before.All && !allMarker(control.FirstLine(old)) {
			return res, errAllHeld // a file of junk: no domain to take out
		}
		var left int
		content, left = removeDomains(old, domains)
		// Under a hold of everything the domains leave the list held by
		// name (they will flow once everything is released); the file
		// stays, as everything is still held.
		remove = left == 0 && !res.Before.All
	}

	if remove {
		if err := os.Remove(path); err != nil {
			return res, err
		}
		res.Changed = true
		res.ReplacedLink = link
		return res, qhome.SyncDir(dir)
	}
	if exists && string(content) == string(old) {
		res.After = res.Before
		return res, nil
	}
	// Mode 0644 whatever the caller's umask: qmail-send (qmails) must
	// read a hold flag, and one it cannot read stops it at its next start.
	if err := qhome.ReplaceFile(path, content, 0o644, nil); err != nil {
		return res, err
	}
	res.After = hold.ParseFile(name, content)
	res.Changed = true
	res.ReplacedLink = link
	return res, nil
}

// errHoldLocalDir is release local's error for a control/holdlocal that is
// a directory with something in it: what is in it may be someone's, so it
// is not removed wholesale.
var errHoldLocalDir = errors.New("it is a directory that is not empty; remove what is in it, or the directory itself " +
	"(rm -r control/holdlocal), by hand")

// releaseLocal removes control/holdlocal whatever it is, unread: qmail-send
// holds local delivery as long as the name exists, so a directory or a
// FIFO put there holds it as a file does (and a FIFO must not be read:
// that would wait for a writer). An empty directory is removed too, a
// symbolic link itself rather than its target; a directory with
// something in it is an error (errHoldLocalDir) and stays.
func releaseLocal(dir, path string) (EditResult, error) {
	var res EditResult
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return res, nil
	} else if err != nil {
		return res, err
	}
	link := linkTarget(path)
	res.Before = hold.ParseFile(hold.LocalFile, nil)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			res.After = res.Before
			return res, errHoldLocalDir
		}
		return res, err
	}
	res.Changed = true
	res.ReplacedLink = link
	return res, qhome.SyncDir(dir)
}

// linkTarget returns where path points when it is a symbolic link ("?"
// when that cannot be read), "" otherwise.
func linkTarget(path string) string {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return ""
	}
	t, _ := os.Readlink(path)
	return cmp.Or(t, "?")
}

// allMarker reports whether a first line holds everything (hold.AllMarker).
func allMarker(first string) bool { return hold.AllMarker(first) }

// addDomains appends the domains not yet held to the file contents.
func addDomains(old []byte, have, add []string) []byte {
	held := map[string]bool{}
	for _, d := range have {
		held[d] = true
	}
	out := string(old)
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	for _, d := range add {
		d = hold.CanonDomain(d)
		if !held[d] {
			held[d] = true
			out += d + "\n"
		}
	}
	return []byte(out)
}

// removeDomains drops the lines naming one of the domains and returns the
// new contents and the number of domain lines left. Names are compared as
// qmail-send matches them (hold.CanonDomain): without case, and an address
// literal by its address, whatever its spelling.
func removeDomains(old []byte, drop []string) ([]byte, int) {
	gone := map[string]bool{}
	for _, d := range drop {
		gone[hold.CanonDomain(d)] = true
	}
	var keep []string
	left := 0
	for _, raw := range strings.SplitAfter(string(old), "\n") {
		line := strings.TrimSpace(raw)
		if gone[hold.CanonDomain(line)] {
			continue
		}
		if hold.ValidDomain(line) {
			left++
		}
		keep = append(keep, raw)
	}
	return []byte(strings.Join(keep, "")), left
}
