package install

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/unixid"
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
// Except root's own links in the directories only root writes (the root
// itself, bin/, control/, etc/ and users/ by the table): a link there
// that belongs to root (or, in a tree of an ordinary user, to that user)
// is followed (control -> /etc/qmail, users/assign -> a file kept
// elsewhere), its target's owner and mode are left as they are (said
// once on the log), and what is below a followed directory is repaired
// as usual. Only root can make a symbolic link of root's, or chown one
// (lchown), so a user who could once write the directory cannot have
// made it. The directory must also have been writable by no group or
// others when the run first opened it, before the repair's own chmod or
// chown of it (the repair closing a directory does not make what was put
// there before trustworthy: a user may have moved or, where the system
// allows it, hard-linked a link of root's there), and still be so; then
// nobody else can swap the link between its fstatat and the open that
// follows it.

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
	mineOpen map[string]bool // directory -> onlyMine when first opened, before any change
	own      *owners         // names of ids in messages (nil until known)
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
		mineOpen: map[string]bool{".": onlyMine(fd)}, send: sendLock{fd: -1, newFd: -1}}, nil
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

// mine reports whether only the user running the repair could add a
// name to the directory rel (onlyMine) when the run first opened it, and
// still can: the state before the repair changed its owner or mode.
func (w *walker) mine(rel string) bool {
	rel = filepath.Clean(rel)
	fd, ok := w.fds[rel]
	return ok && w.mineOpen[rel] && onlyMine(fd)
}

// linkOwnerOK reports whether a symbolic link of owner uid can only have
// been made by the user running the repair (or root): only root makes or
// chowns a link of another user's.
func linkOwnerOK(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// follows reports whether the symbolic link of stat lst in the directory
// dir (relative) is followed: dir is one of rootDirs, was mine before the
// run changed it and still is, and the link is root's or the user's
// running the repair. As nobody else can add a name there, the link
// found by fstatat is the one a later open follows.
func (w *walker) follows(dir string, lst *unix.Stat_t) bool {
	dir = filepath.Clean(dir)
	return lst != nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK && rootDirs[dir] && w.mine(dir) && linkOwnerOK(lst.Uid)
}

// me names the user running the repair in messages.
func me() string {
	if os.Geteuid() != 0 {
		return "you"
	}
	return "root"
}

// whyNotFollowed says why a link in the directory rel is not followed,
// by the directory alone (see walker.whyNotFollowed for the link's owner).
func whyNotFollowed(rel string) string {
	rel = filepath.Clean(rel)
	name := rel + "/"
	if rel == "." {
		name = "the tree's root"
	}
	switch o := tableDirOwner[rel]; {
	case rootDirs[rel]:
		return name + " can be written by others than " + me()
	case o != "" && me() == "root":
		return name + " belongs to " + o
	}
	return "links are followed only in the tree's root, bin/, control/, etc/ and users/"
}

// whyNotFollowed says why the link rel (stat st, nil when unknown) is not
// followed.
func (w *walker) whyNotFollowed(rel string, st *unix.Stat_t) string {
	dir := filepath.Clean(filepath.Dir(rel))
	if !rootDirs[dir] {
		return whyNotFollowed(dir)
	}
	name := dir + "/"
	if dir == "." {
		name = "the tree's root"
	}
	fd, open := w.fds[dir]
	switch {
	case open && !onlyMine(fd):
		return name + " can be written by others than " + me()
	case !w.mineOpen[dir]:
		return name + " could be written by others than " + me() + " when this run began"
	case st != nil && !linkOwnerOK(st.Uid):
		return "the link belongs to " + w.userName(int(st.Uid)) + ", not to " + me()
	}
	return whyNotFollowed(dir)
}

// userName names uid for messages: qmail's user of that id, the passwd
// name, or the number.
func (w *walker) userName(uid int) string {
	if w.own != nil {
		return w.own.userName(uid)
	}
	return unixid.Format(uid)
}

// groupName names gid as userName names a uid.
func (w *walker) groupName(gid int) string {
	if w.own != nil {
		return w.own.groupName(gid)
	}
	return unixid.Format(gid)
}

// linkTarget is what the link name in dir points to ("" when unknown).
func linkTarget(dir int, name string) string {
	t, _ := readlinkAt(dir, name)
	return t
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
	w.skipWith(rel, want, st, "", "")
}

// skipWith is skip, saying what the wrong kind costs (effect) and what to
// do (fix), when not "".
func (w *walker) skipWith(rel string, want Kind, st *unix.Stat_t, effect, fix string) {
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
		msg += ": not followed, as " + w.whyNotFollowed(rel, st)
	}
	if effect != "" {
		msg += ": " + effect
	}
	if want == Dir {
		msg += "; it and everything below it were left alone"
	} else {
		msg += "; left alone"
	}
	if fix != "" {
		msg += " (" + fix + ", and run qmail-install again)"
	} else if link {
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
		if sp == nil || !w.follows(filepath.Dir(rel), sp) {
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
	w.mineOpen[rel] = onlyMine(fd)
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
	dir, name, err := w.parent(rel)
	if err != nil {
		return nil, err
	}
	flags := unix.O_RDONLY | unix.O_NOFOLLOW
	if st, exists, err := statAt(dir, name); err == nil && exists && w.follows(filepath.Dir(rel), &st) {
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
			if why := unixid.Unmapped(uid, gid, nil, false); err == unix.EINVAL && why != "" {
				return fmt.Errorf("unable to chown %s: %v: %s", p, err, why)
			}
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

// cacheFiles are the files of the tree whose contents nobody needs
// kept: qmail-remote's cache of hosts that timed out (tcpto) and what
// qmail-send makes anew each time it starts (its lock sendmutex, its
// status sendstatus, the FIFOs trigger and sendctl). Every other file
// (holdperiods, heldmsgs, .qmail-default, control files, users/assign,
// etc/aliases.cdb, a program) holds data.
var cacheFiles = map[string]bool{
	"queue/lock/tcpto":      true,
	"queue/lock/sendstatus": true,
	mutexRel:                true,
	"queue/lock/trigger":    true,
	"queue/lock/sendctl":    true,
}

// settle gives the file or FIFO e.Path (open as fd, stat st, in the
// directory dir) owner uid, gid and mode e.Mode. One with more than one
// link in a directory another user can write (replaces) is not changed
// in place: that user may have linked there a file it does not own (any
// other file it may link: one of the tree, qmail-remote's tcpto, or,
// where the system lets anyone link anything, one of root's), and a
// chown through one name changes the file under all its names. Then:
//
//   - when its owner, group and mode are right already (and nothing
//     else is to change: extra, "size 10, want 1024", is ""), it is left
//     as it is: nothing is done through that name;
//   - a cache (cacheFiles) is replaced by a new file with e.Init,
//     reported on the log (replaced), but one qmail-send holds open
//     while it runs (running.go);
//   - a file with data is left alone and reported (a problem, exit
//     111): a replacement could not keep contents that may be another
//     file's, and would lose what a writer renamed in meanwhile.
func (w *walker) settle(dir int, fd int, st *unix.Stat_t, e Entry, uid, gid int, extra string) (replaced bool, err error) {
	rel := e.Path
	if !w.replaces(filepath.Dir(rel), st) {
		return false, fixOwnerMode(fd, st, uid, gid, e.Mode, w.path(rel))
	}
	wrong := w.wrongs(st, uid, gid, e.Mode)
	if extra != "" {
		wrong = append(wrong, extra)
	}
	if len(wrong) == 0 {
		// A lock file qmail-send holds is each tree's own: one shared
		// with a copy (cp -al) makes the two trees' qmail-sends exclude
		// each other. It is replaced when this tree's qmail-send does not
		// run (its lock free, or held by the other tree's).
		if !sendHeld[rel] || !cacheFiles[rel] || w.sendBusy() != "" {
			return false, nil
		}
		wrong = []string{"shared with another tree (a copy's lock files must be its own)"}
	}
	what := fmt.Sprintf("%d hard links and %s", st.Nlink, strings.Join(wrong, " and "))
	if !cacheFiles[rel] {
		msg := fmt.Sprintf("%s: %s: left alone; remove the other link and run qmail-install again",
			w.path(rel), what)
		if eff := sendFileEffect(rel); eff != "" && !ownerCanRW(st, uid, gid) {
			msg += " (" + eff + ")"
		}
		w.problems = append(w.problems, msg)
		return false, nil
	}
	if w.leaveHeld(rel, what) {
		return false, nil
	}
	fifo := st.Mode&unix.S_IFMT == unix.S_IFIFO
	var fill func(*os.File) error
	if !fifo {
		fill = func(f *os.File) error {
			if _, err := f.Write(e.Init); err != nil {
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
	err = w.placeAt(dir, rel, fifo, fill, uid, gid, e.Mode, st)
	if err == errChanged {
		w.problem("%s: %d hard links; it was replaced by another meanwhile, which was left as it is: run qmail-install again", w.path(rel), st.Nlink)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if w.log != nil {
		fmt.Fprintf(w.log, "qmail-install: warning: %s: %s; replaced\n", rel, what)
	}
	return true, nil
}

// wrongs lists how the owner, group and mode of st differ from uid, gid
// and mode ("owner 12345, want qmails").
func (w *walker) wrongs(st *unix.Stat_t, uid, gid int, mode uint32) []string {
	var out []string
	if int(st.Uid) != uid {
		out = append(out, fmt.Sprintf("owner %s, want %s", w.userName(int(st.Uid)), w.userName(uid)))
	}
	if int(st.Gid) != gid {
		out = append(out, fmt.Sprintf("group %s, want %s", w.groupName(int(st.Gid)), w.groupName(gid)))
	}
	if m := st.Mode & 0o7777; m != mode {
		out = append(out, fmt.Sprintf("mode %04o, want %04o", m, mode))
	}
	return out
}

// ownerCanRW reports whether the user uid of group gid may read and
// write the file of stat st, by its mode bits.
func ownerCanRW(st *unix.Stat_t, uid, gid int) bool {
	m := st.Mode & 0o777
	switch {
	case int(st.Uid) == uid:
		m >>= 6
	case int(st.Gid) == gid:
		m >>= 3
	}
	return m&0o6 == 0o6
}

// replaces reports whether settle must not change the file of stat st
// in the directory dir (relative) in place: it has more than one link,
// in a directory another user can write or could when the run began
// (mine: one the repair has just closed may hold a link planted before).
func (w *walker) replaces(dir string, st *unix.Stat_t) bool {
	return st.Nlink > 1 && !w.mine(dir)
}

// errChanged: the file to be replaced is no longer at its name.
var errChanged = errors.New("changed meanwhile")

// placeAt puts a new file (a FIFO when fifo is set) at rel in the
// directory dir: made under a temporary name of its own (O_EXCL, never
// through a link), filled by fill, given owner and mode through its
// descriptor, synced, and renamed over rel. Whatever was at rel is
// replaced, never written through. With old set, rel must still be that
// file just before the rename, else nothing is renamed (errChanged).
//
// That test and the rename are two steps: a writer may still act on the
// old file between them, and what it does there is lost with it. Only
// caches are replaced with old set (settle; a file with data is never
// replaced), and there the loss is harmless: tcpto is written in place,
// under its flock, by qmail-remote, qmail-send and qmailctl, and an entry
// written into the old file costs one more connection attempt to a host
// that timed out; sendmutex, sendstatus, trigger and sendctl are written
// (and read) by qmail-send alone, and are replaced only while the repair
// holds qmail-send's lock (running.go), so no qmail-send runs to write
// them. Nobody renames a file over a cache, so errChanged there only
// means someone else replaced it.
//
// The temporary name is fixed (".NAME.new"), and one found there is
// removed first as the leftover of an interrupted run. That is safe only
// because no other repair of the tree runs meanwhile: each holds the
// exclusive flock on the tree's root (treelock.go) for its whole run.
// Without it, two runs removed each other's temporary files, and one's
// rename could put the other's half-written file into place (QA
// rnonroot2). Nothing else in hqmail uses that name (qmail-queued's own
// in queue/lock ends in its pid).
func (w *walker) placeAt(dir int, rel string, fifo bool, fill func(*os.File) error, uid, gid int, mode uint32, old *unix.Stat_t) error {
	name := filepath.Base(rel)
	tmp := "." + name + ".new"
	// A leftover of an interrupted run goes (no other run is at work:
	// the tree's lock is held); a name that will not is avoided.
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
