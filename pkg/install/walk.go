package install

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The repair runs as root in a tree where qmail's users own directories
// (alias/ is alias's, queue/ and most below it qmailq's or qmails'). A
// path looked up by name, component after component, by each call is
// open to a swap: between two of root's calls the owner of a directory
// on the way can put a symbolic link in place of one of its
// subdirectories, and root's next mkdir or chown lands wherever it
// points. So every name below the root is reached from a descriptor of
// the tree's root, one component at a time (openat, O_NOFOLLOW), and
// every change is made through the descriptor of the file itself or
// relative to that of its directory: a directory once opened stays the
// one that was checked, whatever is renamed later, and a symbolic link
// met below the root is not followed. Only the root, given by the
// administrator, is opened by its path.
//
// Except in the directories only root writes (the root itself, bin/,
// control/, etc/ and users/ by the table, when they are root's and
// writable by no group or others as opened): a link there was put by
// root, and following it crosses no privilege. Such a link is followed
// (control -> /etc/qmail, users/assign -> a file kept elsewhere), its
// target's owner and mode are left as they are (said once on the log),
// and what is below a followed directory is repaired as usual.

// testHook, when set (tests only), is called with step "open" just
// before a name below the root is opened, "opened" just after a
// directory was, and "rename" just before a new file is renamed into
// place: a test changes the tree there, as a user (or qmail-send)
// racing the repair would.
var testHook func(step, rel string)

// errSkipped is the error of a path that was skipped (already reported).
var errSkipped = errors.New("skipped")

// walker holds the directories of a tree open while it is repaired.
type walker struct {
	root     string
	fds      map[string]int  // directory (relative, cleaned; "." the root) -> descriptor
	skipped  map[string]bool // relative paths reported and left alone
	linked   map[string]bool // symbolic links followed (in root's directories)
	send     sendLock        // qmail-send's lock, when files it holds are replaced (running.go)
	problems []string        // what was left alone, and why
	log      io.Writer       // may be nil
}

// openWalker opens the tree's root, following a symbolic link there: it
// is the administrator's choice.
func openWalker(root string, log io.Writer) (*walker, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unable to open %s: %w", root, err)
	}
	return &walker{root: root, fds: map[string]int{".": fd}, skipped: map[string]bool{}, linked: map[string]bool{}, log: log,
		send: sendLock{fd: -1, newFd: -1}}, nil
}

func (w *walker) close() {
	w.releaseSend()
	for _, fd := range w.fds {
		unix.Close(fd)
	}
	w.fds = nil
}

// rootDirs are the directories of the table that only root writes: the
// root, bin/, control/, etc/ and users/ (home/ of a tree of an ordinary
// user is not among them).
var rootDirs = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range Tree("") {
		if e.Kind == Dir && e.Owner == "root" {
			m[e.Path] = true
		}
	}
	return m
}()

// tableDirOwner is the table's owner of each directory of a root tree.
var tableDirOwner = func() map[string]string {
	m := map[string]string{}
	for _, e := range Tree("") {
		if e.Kind == Dir {
			m[e.Path] = e.Owner
		}
	}
	return m
}()

// follows reports whether a symbolic link in the directory rel (open as
// fd) is followed: rel is one of rootDirs and, as opened, writable only
// by the user running the repair (onlyMine), so that the link can only
// be that user's own.
func (w *walker) follows(rel string, fd int) bool {
	return rootDirs[filepath.Clean(rel)] && onlyMine(fd)
}

// whyNotFollowed says why a link in the directory rel is not followed.
func whyNotFollowed(rel string) string {
	rel = filepath.Clean(rel)
	name := rel + "/"
	if rel == "." {
		name = "the tree's root"
	}
	me := "root"
	if os.Geteuid() != 0 {
		me = "you"
	}
	switch o := tableDirOwner[rel]; {
	case rootDirs[rel]:
		return name + " can be written by others than " + me
	case o != "" && me == "root":
		return name + " belongs to " + o
	}
	return "links are followed only in the tree's root, bin/, control/, etc/ and users/"
}

// linkTarget is what the link name in dir points to ("" when unknown).
func linkTarget(dir int, name string) string {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// followLink records that the link rel (name in dir) is followed, and
// says so on the log once.
func (w *walker) followLink(dir int, rel string) {
	if w.linked[rel] {
		return
	}
	w.linked[rel] = true
	if w.log != nil {
		to := ""
		if t := linkTarget(dir, filepath.Base(rel)); t != "" {
			to = " to " + t
		}
		fmt.Fprintf(w.log, "qmail-install: warning: %s: a symbolic link%s; its target's owner and mode are left as they are\n", rel, to)
	}
}

// problem records what was left alone, and why: the run exits 111.
func (w *walker) problem(format string, a ...any) {
	w.problems = append(w.problems, fmt.Sprintf(format, a...))
}

// path is rel as a full path, for messages only.
func (w *walker) path(rel string) string { return filepath.Join(w.root, rel) }

// skip reports rel, which is of the wrong kind (st: what is there, nil
// when unknown), and leaves it (and, for a directory, everything below
// it) alone.
func (w *walker) skip(rel string, want Kind, st *unix.Stat_t) {
	if w.skipped[rel] {
		return
	}
	w.skipped[rel] = true
	got := "a file of another kind"
	if st != nil {
		got = "a " + statKindName(st.Mode)
	}
	msg := fmt.Sprintf("%s: is %s, want a %s", w.path(rel), got, want)
	link := st != nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
	if link {
		msg += ": not followed, as " + whyNotFollowed(filepath.Dir(rel))
	}
	if want == Dir {
		msg += "; it and everything below it were left alone"
	} else {
		msg += "; left alone"
	}
	if link {
		// The link may be the administrator's own idea of a layout:
		// say how to get what the tree needs.
		what := "a " + want.String()
		if want == Dir {
			what = "the directory itself"
		}
		msg += " (put " + what + " in its place, or remove the link, and run qmail-install again)"
	}
	w.problems = append(w.problems, msg)
}

// dir returns a descriptor of the directory rel, opened from the root
// one component at a time without following a symbolic link, and kept
// open for the rest of the run. A component that is no directory (a
// symbolic link included) is reported once (skip) and gives errSkipped,
// for it and everything below it.
func (w *walker) dir(rel string) (int, error) {
	rel = filepath.Clean(rel)
	if fd, ok := w.fds[rel]; ok {
		return fd, nil
	}
	if w.skipped[rel] {
		return -1, errSkipped
	}
	parent, err := w.dir(filepath.Dir(rel))
	if err != nil {
		return -1, err
	}
	name := filepath.Base(rel)
	if testHook != nil {
		testHook("open", rel)
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, name, flags|unix.O_NOFOLLOW, 0)
	if err == unix.ENOTDIR || err == unix.ELOOP {
		var st unix.Stat_t
		sp := &st
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			sp = nil
		}
		if sp == nil || st.Mode&unix.S_IFMT != unix.S_IFLNK || !w.follows(filepath.Dir(rel), parent) {
			w.skip(rel, Dir, sp)
			return -1, errSkipped
		}
		// root's own link in root's directory: followed.
		if fd, err = unix.Openat(parent, name, flags, 0); err != nil {
			w.skipped[rel] = true
			w.problem("%s: is a symbolic link to %s, which cannot be opened as a directory (%v); it and everything below it were left alone",
				w.path(rel), linkTarget(parent, name), err)
			return -1, errSkipped
		}
		w.followLink(parent, rel)
	}
	if err != nil {
		return -1, fmt.Errorf("unable to open %s: %w", w.path(rel), err)
	}
	w.fds[rel] = fd
	if testHook != nil {
		testHook("opened", rel)
	}
	return fd, nil
}

// parent returns the descriptor of rel's directory and rel's last name.
func (w *walker) parent(rel string) (int, string, error) {
	fd, err := w.dir(filepath.Dir(rel))
	return fd, filepath.Base(rel), err
}

// statAt stats name in dir without following a link; exists is false
// for a missing name.
func statAt(dir int, name string) (st unix.Stat_t, exists bool, err error) {
	err = unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return st, false, nil
	}
	return st, err == nil, err
}

// openAt opens name (rel in the tree) in dir without following a link,
// without waiting on a FIFO and without taking a terminal, and stats what
// it opened. A link there gives ELOOP.
func openAt(dir int, rel string, flags int) (int, unix.Stat_t, error) {
	return openAtFollow(dir, rel, flags|unix.O_NOFOLLOW)
}

// openAtFollow is openAt following a link, unless flags has O_NOFOLLOW.
func openAtFollow(dir int, rel string, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if testHook != nil {
		testHook("open", rel)
	}
	fd, err := unix.Openat(dir, filepath.Base(rel), flags|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	return fd, st, nil
}

// readFile returns the contents of the regular file rel, reached as dir
// reaches directories: a link is not followed (ELOOP for the file
// itself), but in root's directories (follows).
func (w *walker) readFile(rel string) ([]byte, error) {
	dir, _, err := w.parent(rel)
	if err != nil {
		return nil, err
	}
	flags := unix.O_RDONLY | unix.O_NOFOLLOW
	if w.follows(filepath.Dir(rel), dir) {
		flags = unix.O_RDONLY
	}
	fd, st, err := openAtFollow(dir, rel, flags)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: is a %s, want a regular file", w.path(rel), statKindName(st.Mode))
	}
	return readAll(fd, st.Size)
}

// readAll reads the file open as fd from its start.
func readAll(fd int, size int64) ([]byte, error) {
	b := make([]byte, 0, size)
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return b, nil
		}
		b = append(b, buf[:n]...)
		off += int64(n)
	}
}

// fixOwnerMode gives the file open as fd (stat st; p names it in
// messages) owner uid, gid and mode.
func fixOwnerMode(fd int, st *unix.Stat_t, uid, gid int, mode uint32, p string) error {
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("unable to chown %s: %v", p, err)
		}
	}
	// chown clears set-id bits: chmod after it, always.
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("unable to chmod %s: %v", p, err)
	}
	return nil
}

// onlyMine reports whether only the user running the repair can add a
// name to the directory open as dir (its owner, writable by no group or
// others): every file there was put there by that user. As root: bin/,
// control/, etc/ and users/; not alias/ or queue/.
func onlyMine(dir int) bool {
	var st unix.Stat_t
	return unix.Fstat(dir, &st) == nil && int(st.Uid) == os.Geteuid() && st.Mode&0o022 == 0
}

// settle gives the file or FIFO rel (open as fd, stat st, in the
// directory dir) owner uid, gid and mode. One with more than one link in
// a directory another user can write is not changed in place: that user
// may have linked there a file it does not own (any other file it may
// link: one of the tree, qmail-remote's tcpto, or, where the system lets
// anyone link anything, one of root's), and a chown through one name
// changes the file under all its names. It is replaced by a new file,
// reported on the log: for a regular file with contents init, or with
// the old contents when keep is set and they are no secret from uid (uid
// owns the old file already). replaced says which.
//
// The old file must still be at rel when the new one is renamed there:
// one its writer replaced meanwhile (qmail-send rewrites
// queue/bounce/holdperiods by a rename) is left as that writer made it,
// and the run asks for another (a problem).
func (w *walker) settle(dir int, rel string, fd int, st *unix.Stat_t, uid, gid int, mode uint32, init []byte, keep bool) (replaced bool, err error) {
	if !replaces(dir, st) {
		return false, fixOwnerMode(fd, st, uid, gid, mode, w.path(rel))
	}
	fifo := st.Mode&unix.S_IFMT == unix.S_IFIFO
	data := init
	if !fifo && keep && int(st.Uid) == uid {
		if data, err = readAll(fd, st.Size); err != nil {
			return false, fmt.Errorf("unable to read %s: %v", w.path(rel), err)
		}
	}
	var fill func(*os.File) error
	if !fifo {
		fill = func(f *os.File) error {
			if _, err := f.Write(data); err != nil {
				return err
			}
			if rel == mutexRel {
				// Locked before it is renamed into place, as the old
				// one is: no qmail-send starts on it while the repair
				// works in queue/lock.
				return w.lockReplacement(f)
			}
			return nil
		}
	}
	err = w.placeAt(dir, rel, fifo, fill, uid, gid, mode, st)
	if err == errChanged {
		w.problem("%s: %d hard links; it was replaced by another meanwhile, which was left as it is: run qmail-install again", w.path(rel), st.Nlink)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if w.log != nil {
		fmt.Fprintf(w.log, "qmail-install: warning: %s: %d hard links; replaced\n", rel, st.Nlink)
	}
	return true, nil
}

// replaces reports whether settle replaces the file of stat st in the
// directory dir rather than change it in place: it has more than one
// link, in a directory another user can write.
func replaces(dir int, st *unix.Stat_t) bool {
	return st.Nlink > 1 && !onlyMine(dir)
}

// errChanged: the file to be replaced is no longer at its name.
var errChanged = errors.New("changed meanwhile")

// placeAt puts a new file (a FIFO when fifo is set) at rel in the
// directory dir: made under a temporary name of its own (O_EXCL, never
// through a link), filled by fill, given owner and mode through its
// descriptor, synced, and renamed over rel. Whatever was at rel is
// replaced, never written through. With old set, rel must still be that
// file just before the rename, else nothing is renamed (errChanged).
func (w *walker) placeAt(dir int, rel string, fifo bool, fill func(*os.File) error, uid, gid int, mode uint32, old *unix.Stat_t) error {
	name := filepath.Base(rel)
	tmp := "." + name + ".new"
	// A leftover of an interrupted run goes; a name that will not is
	// avoided.
	unix.Unlinkat(dir, tmp, 0)
	var fd int
	for try := 0; ; try++ {
		var err error
		if fifo {
			if err = unix.Mkfifoat(dir, tmp, 0o600); err == nil {
				fd, err = unix.Openat(dir, tmp, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		} else {
			fd, err = unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		}
		if err == unix.EEXIST && try < 10 {
			tmp = "." + name + ".new." + randomSuffix()
			continue
		}
		if err != nil {
			return fmt.Errorf("unable to create %s: %v", w.path(filepath.Join(filepath.Dir(rel), tmp)), err)
		}
		break
	}
	f := os.NewFile(uintptr(fd), w.path(filepath.Join(filepath.Dir(rel), tmp)))
	fail := func(err error) error {
		f.Close()
		unix.Unlinkat(dir, tmp, 0)
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(err)
	}
	// The FIFO was opened by name after it was made: it must still be
	// the one made here.
	if fifo && (st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Nlink != 1 || int(st.Uid) != os.Geteuid()) {
		return fail(fmt.Errorf("%s: changed while it was made", f.Name()))
	}
	if fill != nil {
		if err := fill(f); err != nil {
			return fail(fmt.Errorf("unable to write %s: %v", f.Name(), err))
		}
	}
	if err := fixOwnerMode(fd, &st, uid, gid, mode, f.Name()); err != nil {
		return fail(err)
	}
	if !fifo {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		unix.Unlinkat(dir, tmp, 0)
		return err
	}
	if testHook != nil {
		testHook("rename", rel)
	}
	if old != nil {
		var now unix.Stat_t
		if err := unix.Fstatat(dir, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil || now.Dev != old.Dev || now.Ino != old.Ino {
			unix.Unlinkat(dir, tmp, 0)
			return errChanged
		}
	}
	if err := unix.Renameat(dir, tmp, dir, name); err != nil {
		unix.Unlinkat(dir, tmp, 0)
		return fmt.Errorf("unable to rename %s to %s: %v", tmp, w.path(rel), err)
	}
	if err := unix.Fsync(dir); err != nil && err != unix.EINVAL {
		return fmt.Errorf("unable to sync %s: %v", w.path(filepath.Dir(rel)), err)
	}
	return nil
}

// createAt makes the regular file rel (name in dir) with data, owner and
// mode, unless something is there already (made false).
func (w *walker) createAt(dir int, rel string, data []byte, uid, gid int, mode uint32) (made bool, err error) {
	fd, err := unix.Openat(dir, filepath.Base(rel), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err == unix.EEXIST {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("unable to create %s: %v", w.path(rel), err)
	}
	f := os.NewFile(uintptr(fd), w.path(rel))
	err = func() error {
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("unable to write %s: %v", f.Name(), err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if err := fixOwnerMode(fd, &st, uid, gid, mode, f.Name()); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return true, err
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statKind is the table's kind of a file mode ('?' for any other).
func statKind(mode uint32) Kind {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFIFO:
		return Fifo
	case unix.S_IFREG:
		return File
	}
	return '?'
}

// statKindName names the kind of a file mode, as kindName does.
func statKindName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return "file of unknown kind"
}
