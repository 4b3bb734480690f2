// Package qhome finds the qmail tree a program belongs to and the ids of
// qmail's users in that tree.
//
// A program installed as DIR/bin/NAME uses DIR as its root; nothing in the
// environment can change that, so a set-id program (qmail-queue) never lets
// its caller choose the root. A program run from anywhere else (go run, a
// test binary) uses DefaultRoot.
//
// The ids of qmail's users are not compiled in: qmail-install records them in
// DIR/etc/ids (written as root, mode 0644), so one build serves every tree. In
// a tree installed by an ordinary user every name maps to that user.
package qhome

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultRoot is qmail's traditional QMAILHOME.
const DefaultRoot = "/var/qmail"

// Split is qmail's conf-split: the number of hashed subdirectories.
const Split = 23

// SpawnLimit is the maximum concurrency a spawner offers in qmail's
// one-byte announcement (qmail-lspawn's limit).
const SpawnLimit = 120

// RemoteSpawnLimit is qmail-rspawn's limit, announced in the two-byte form
// of the spawner protocol (qmail-send(8), SPAWNER PROTOCOL).
const RemoteSpawnLimit = 500

// DefConcurrencyLocal and DefConcurrencyRemote are qmail-send's
// concurrency when control/concurrencylocal or control/concurrencyremote
// is missing or does not start with a digit (qmail-control(5)). qmail-send,
// qmail-rspawn (which holds its kept connections to it), qmailctl status
// and qmail-showctl all take them from here.
const (
	DefConcurrencyLocal  = 10
	DefConcurrencyRemote = 20
)

// IDsFile is the path of the ids file relative to the root.
const IDsFile = "etc/ids"

// Root returns the root of the tree holding the running executable.
func Root() string {
	exe, err := os.Executable()
	if err != nil {
		return DefaultRoot
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return RootOf(exe)
}

// RootOf returns the root for an executable path: the parent of its
// directory when that directory is named "bin", else DefaultRoot.
func RootOf(exe string) string {
	dir := filepath.Dir(exe)
	if filepath.Base(dir) != "bin" {
		return DefaultRoot
	}
	return filepath.Dir(dir)
}

// Uninstalled explains, for program prog, a root that has the programs
// (bin/qmail-queue) but no queue/: a source checkout's bin/ after make,
// which was never installed and has no queue or control files to act on.
// It returns "" for anything else: an installed tree costs one lstat, and
// anything named queue there (a symbolic link to a spool elsewhere too,
// even a dangling one) is taken as the tree's queue.
func Uninstalled(root, prog string) string {
	queue := filepath.Join(root, "queue")
	if _, err := os.Lstat(queue); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "qmail-queue")); err != nil {
		return ""
	}
	return fmt.Sprintf("%s is no installed qmail tree (there is no %s): it has the programs "+
		"(as a source checkout's bin/ after make has) but was never installed. "+
		"Use the %s of an installed tree: make run installs one in run/ (run/bin/%s), "+
		"qmail-install -root DIR another (DIR/bin/%s)", root, queue, prog, prog, prog)
}

// User is a uid with its primary gid.
type User struct{ UID, GID int }

// IDs are the users and groups of a qmail tree.
type IDs struct {
	Alias, Qmaild, Qmaill, Qmailp, Qmailq, Qmailr, Qmails User
	Qmail, Nofiles                                        int // group ids
	// Shared is true when every name maps to one ordinary user (a tree
	// installed without root): no process changes its uid.
	Shared bool
}

// UserNames are qmail's user names in the order the ids file lists them.
var UserNames = []string{"alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails"}

// GroupNames are qmail's group names.
var GroupNames = []string{"qmail", "nofiles"}

func (ids *IDs) user(name string) *User {
	switch name {
	case "alias":
		return &ids.Alias
	case "qmaild":
		return &ids.Qmaild
	case "qmaill":
		return &ids.Qmaill
	case "qmailp":
		return &ids.Qmailp
	case "qmailq":
		return &ids.Qmailq
	case "qmailr":
		return &ids.Qmailr
	case "qmails":
		return &ids.Qmails
	}
	return nil
}

func (ids *IDs) group(name string) *int {
	switch name {
	case "qmail":
		return &ids.Qmail
	case "nofiles":
		return &ids.Nofiles
	}
	return nil
}

// UserByName returns the entry of a qmail user name (qhome.UserNames), or
// nil for another name.
func (ids *IDs) UserByName(name string) *User { return ids.user(name) }

// GroupByName returns the gid of a qmail group name (qhome.GroupNames), or
// nil for another name.
func (ids *IDs) GroupByName(name string) *int { return ids.group(name) }

// SharedIDs returns the ids of a tree where every name is one user.
func SharedIDs(uid, gid int) *IDs {
	u := User{uid, gid}
	return &IDs{Alias: u, Qmaild: u, Qmaill: u, Qmailp: u, Qmailq: u, Qmailr: u, Qmails: u,
		Qmail: gid, Nofiles: gid, Shared: true}
}

// Format renders the ids file: "user NAME UID GID", "group NAME GID" and
// "shared yes|no" lines.
func (ids *IDs) Format() string {
	var b strings.Builder
	b.WriteString("# qmail users and groups of this tree; written by qmail-install\n")
	for _, n := range UserNames {
		u := ids.user(n)
		fmt.Fprintf(&b, "user %s %d %d\n", n, u.UID, u.GID)
	}
	for _, n := range GroupNames {
		fmt.Fprintf(&b, "group %s %d\n", n, *ids.group(n))
	}
	if ids.Shared {
		b.WriteString("shared yes\n")
	} else {
		b.WriteString("shared no\n")
	}
	return b.String()
}

// ParseIDs parses an ids file. Every user and group must be present.
func ParseIDs(data string) (*IDs, error) {
	ids := &IDs{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		bad := fmt.Errorf("ids line %d: malformed: %q", line, sc.Text())
		num := func(s string) (int, bool) {
			n, err := strconv.ParseUint(s, 10, 31)
			return int(n), err == nil
		}
		switch {
		case f[0] == "user" && len(f) == 4 && ids.user(f[1]) != nil:
			uid, ok1 := num(f[2])
			gid, ok2 := num(f[3])
			if !ok1 || !ok2 {
				return nil, bad
			}
			*ids.user(f[1]) = User{uid, gid}
			seen["u:"+f[1]] = true
		case f[0] == "group" && len(f) == 3 && ids.group(f[1]) != nil:
			gid, ok := num(f[2])
			if !ok {
				return nil, bad
			}
			*ids.group(f[1]) = gid
			seen["g:"+f[1]] = true
		case f[0] == "shared" && len(f) == 2:
			ids.Shared = f[1] == "yes"
		default:
			return nil, bad
		}
	}
	for _, n := range UserNames {
		if !seen["u:"+n] {
			return nil, fmt.Errorf("ids: user %s missing", n)
		}
	}
	for _, n := range GroupNames {
		if !seen["g:"+n] {
			return nil, fmt.Errorf("ids: group %s missing", n)
		}
	}
	return ids, nil
}

// LoadIDs reads ROOT/etc/ids.
func LoadIDs(root string) (*IDs, error) {
	b, err := os.ReadFile(filepath.Join(root, IDsFile))
	if err != nil {
		return nil, err
	}
	return ParseIDs(string(b))
}

// ErrNotRegular is the error of OpenRegular for a name that is not a
// regular file.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens a queue or control file like os.OpenFile, but never
// waits on something else put in its place: opening a FIFO would block
// until a writer (or reader) comes, and a daemon reading the queue would
// stop there for good. The open is non-blocking (a FIFO then opens at
// once, or fails with ENXIO for writing) and anything but a regular file
// is closed and refused (but /dev/null, which reads as empty): a
// directory with EISDIR, the rest with ErrNotRegular. qmail opens its
// queue files non-blocking for the same reason.
func OpenRegular(name string, flag int) (*os.File, error) {
	return openChecked(name, flag)
}

// ErrSymlink is the error of OpenQueueFile, ReadQueueFile, AppendWhole,
// ReplaceFile and RemoveQueueFile for a name that is a symbolic link, or
// a directory below the queue directory that is one: never followed.
var ErrSymlink = errors.New("is a symbolic link; not followed")

// OpenQueueFile opens a queue file like OpenRegular, for a program that
// may run as root on a file in a directory another user can write
// (queue/bounce, queue/info/S, queue/local/S, queue/remote/S, queue/todo
// belong to qmails and qmailq, queue/lock and queue/ itself to qmailq).
// Nothing below the queue directory is followed: the path is opened as
// usual up to and including its last component named "queue" (the tree's
// queue/, whose parent is root's), then each further directory is opened
// relative to the one before with O_NOFOLLOW (a split directory replaced
// with a symbolic link is refused), and the file relative to the last one
// with O_NOFOLLOW. A path with no "queue" component only has its last
// component guarded. A symbolic link is an error wrapping ErrSymlink; the
// file must be regular (not even /dev/null; ErrNotRegular, or EISDIR for
// a directory); opened for writing (O_WRONLY, O_RDWR) it must have one
// link (ErrHardLink; O_TRUNC is applied only then). A file created
// (O_CREATE) gets mode 0. The error names the file.
func OpenQueueFile(name string, flag int) (*os.File, error) {
	d, base, err := openParent(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(d)
	return openQueueAt(d, base, name, flag, 0)
}

// openChecked is OpenRegular.
func openChecked(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, notRegular(err, name)
	}
	if err := checkOpened(f, name, false, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// notRegular turns the ENXIO of a non-blocking open for writing, which is
// what a FIFO with no reader (or a socket) gives, into what it means
// here: ErrNotRegular, naming the file. Other errors are returned as
// they are.
func notRegular(err error, name string) error {
	if errors.Is(err, syscall.ENXIO) {
		return &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return err
}

// checkOpened refuses what OpenRegular (queue false) or OpenQueueFile
// (queue true) refuses in a file they opened: a directory, anything but a
// regular file (but /dev/null for OpenRegular), and for a queue file
// opened for writing a second link.
func checkOpened(f *os.File, name string, queue, writing bool) error {
	st, err := f.Stat()
	switch {
	case err != nil:
	case st.IsDir():
		err = &os.PathError{Op: "read", Path: name, Err: syscall.EISDIR} // as a read would say
	case !st.Mode().IsRegular() && (queue || !IsDevNull(st)):
		err = &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	case queue && writing && links(st) > 1:
		err = &os.PathError{Op: "open", Path: name, Err: ErrHardLink}
	}
	return err
}

// ReadQueueFile reads a whole queue file, refusing what OpenQueueFile
// refuses, and one larger than MaxReadSize (ErrTooLarge).
func ReadQueueFile(name string) ([]byte, error) {
	f, err := OpenQueueFile(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadCapped(f)
}

// MaxReadSize is the most that ReadRegular, ReadQueueFile and ReadCapped
// read: 64 MB, as for an :include: file. No control file, .qmail or
// .forward file, or status file of the queue comes near it. A file past it
// (a sparse file of gigabytes, made by mistake with truncate or dd, or by
// a user in a home directory) is an error the caller can report and retry
// later, not a daemon killed for want of memory.
const MaxReadSize = 64 << 20

// ErrTooLarge is the error of a read past MaxReadSize.
var ErrTooLarge = errors.New("file too large (over 64 MB)")

// ReadCapped reads f to its end, refusing a file of more than MaxReadSize
// bytes with a *os.PathError of ErrTooLarge: at once when its size says
// so, and otherwise once it has read that much (a file that grows while
// it is read).
func ReadCapped(f *os.File) ([]byte, error) {
	tooLarge := &os.PathError{Op: "read", Path: f.Name(), Err: ErrTooLarge}
	if st, err := f.Stat(); err == nil && st.Size() > MaxReadSize {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxReadSize+1))
	if err == nil && len(b) > MaxReadSize {
		return nil, tooLarge
	}
	return b, err
}

// symlinkError turns the ELOOP of an O_NOFOLLOW open into ErrSymlink,
// keeping the path.
func symlinkError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && errors.Is(pe.Err, syscall.ELOOP) {
		return &os.PathError{Op: pe.Op, Path: pe.Path, Err: ErrSymlink}
	}
	return err
}

// IsDevNull reports whether st is /dev/null (the null device, whatever
// node names it), which an admin may link a control file to for "empty"
// and which reads as such.
func IsDevNull(st os.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	a, ok1 := st.Sys().(*syscall.Stat_t)
	b, ok2 := null.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Rdev == b.Rdev
}

// ReadRegular reads a whole queue or control file, refusing what
// OpenRegular refuses, and one larger than MaxReadSize (ErrTooLarge).
func ReadRegular(name string) ([]byte, error) {
	f, err := OpenRegular(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadCapped(f)
}

// ReplaceFile replaces the file at path with data, durably: written to
// path.tmp with mode perm (whatever the umask), prep run on it first when
// not nil (a chown), flushed, renamed over path, and the directory
// flushed, so that a crash leaves the old contents or the new ones, never
// a part. The temporary file is removed on failure. path.tmp is always a
// file it makes itself (a stale file or link is removed first, then it is
// created O_EXCL; a directory there is an error): a symbolic or hard link
// put there by whoever can write the directory never makes a root caller
// truncate, chmod or chown its target. The directory is reached as for
// OpenQueueFile (no symbolic link followed below the queue directory), and
// the temporary file is made, renamed and removed relative to it. Only one
// writer may replace path meanwhile.
func ReplaceFile(path string, data []byte, perm os.FileMode, prep func(*os.File) error) error {
	var withDir func(*os.File, *unix.Stat_t) error
	if prep != nil {
		withDir = func(f *os.File, _ *unix.Stat_t) error { return prep(f) }
	}
	return ReplaceFileDir(path, data, perm, withDir)
}

// ReplaceFileDir is ReplaceFile whose prep is given also the status of
// the directory the file is written in, taken from the descriptor the
// walk reached it by (fstat): a root caller that gives the file the owner
// of its directory (queue/bounce/heldmsgs to qmails) takes the owner from
// there, not from a second look-up by name, which a directory swapped
// meanwhile would answer (queue/ is qmailq's, who can rename in it).
func ReplaceFileDir(path string, data []byte, perm os.FileMode, prep func(f *os.File, dir *unix.Stat_t) error) error {
	d, base, err := openParent(path)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	var dir unix.Stat_t
	if err := unix.Fstat(d, &dir); err != nil {
		return &os.PathError{Op: "stat", Path: filepath.Dir(path), Err: err}
	}
	tmp, tmpPath := base+".tmp", path+".tmp"
	// Flags 0: a directory there is an error, not removed.
	if err := unix.Unlinkat(d, tmp, 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlink", Path: tmpPath, Err: err}
	}
	fd, err := openat(d, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return symlinkError(&os.PathError{Op: "open", Path: tmpPath, Err: err})
	}
	var wrapped func(*os.File) error
	if prep != nil {
		wrapped = func(f *os.File) error { return prep(f, &dir) }
	}
	return replaceWith(d, fd, tmp, base, path, data, perm, wrapped)
}

// replaceWith ends a replacement: fd is the new temporary file tmp in the
// directory d, which is given perm, prep, data, flushed and renamed over
// base, and the directory flushed; on failure tmp is removed.
func replaceWith(d, fd int, tmp, base, path string, data []byte, perm os.FileMode, prep func(*os.File) error) error {
	tmpPath := filepath.Join(filepath.Dir(path), tmp)
	f := os.NewFile(uintptr(fd), tmpPath)
	err := f.Chmod(perm)
	if err == nil && prep != nil {
		err = prep(f)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if rerr := unix.Renameat(d, tmp, d, base); rerr != nil {
			err = &os.LinkError{Op: "rename", Old: tmpPath, New: path, Err: rerr}
		}
	}
	if err != nil {
		unix.Unlinkat(d, tmp, 0)
		return err
	}
	return syncDirFD(d, filepath.Dir(path))
}

// AppendWhole appends data to path (opened O_APPEND, made with perm if
// missing) whole or not at all: a write or flush cut short (a full disk)
// is cut back to where it started, and a file it made is removed, for a
// caller that answers the failure rather than waits for space. prep, if
// not nil, is run on a file it made (a chown) before anything is written.
// The data is flushed, and so is the directory when the file is new. Only
// one writer may append meanwhile.
//
// As OpenQueueFile, it reaches the directory without following a symbolic
// link below the queue directory, refuses a symbolic link at path (never
// followed: ErrSymlink), anything but a regular file (ErrNotRegular) and
// an existing file with more than one link (ErrHardLink), before anything
// is written: a root caller appending in a directory another user can
// write (queue/bounce) never writes through a link planted there. A file
// it makes is created O_EXCL, so prep (a chown) runs only on it.
func AppendWhole(path string, data []byte, perm os.FileMode, prep func(*os.File) error) error {
	d, base, err := openParent(path)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	f, made, err := openAppend(d, base, path, perm)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = &os.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	} else if err == nil && !made && links(st) > 1 {
		err = &os.PathError{Op: "open", Path: path, Err: ErrHardLink}
	}
	if err != nil {
		f.Close()
		return err
	}
	if made && prep != nil {
		err = prep(f)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if made {
			unix.Unlinkat(d, base, 0)
		} else {
			f.Truncate(st.Size())
		}
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !made {
		return nil
	}
	return syncDirFD(d, filepath.Dir(path))
}

// openAppend opens base in the directory d for appending without
// following a symbolic link: an existing file, else one it makes (made
// true) with O_EXCL. The open is non-blocking, so a FIFO in its place does
// not wait for a reader. path is the full name, for errors.
func openAppend(d int, base, path string, perm os.FileMode) (f *os.File, made bool, err error) {
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	open := func(flags int) (*os.File, error) {
		fd, err := openat(d, base, flags, uint32(perm.Perm()))
		if err != nil {
			return nil, symlinkError(&os.PathError{Op: "open", Path: path, Err: err})
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	for try := 0; ; try++ {
		f, err = open(flags)
		if !errors.Is(err, fs.ErrNotExist) {
			return f, false, err
		}
		f, err = open(flags | unix.O_CREAT | unix.O_EXCL)
		if !errors.Is(err, fs.ErrExist) || try == 2 {
			return f, err == nil, err
		}
		// Made by someone else between the two opens: open that one.
	}
}

// SyncDir flushes the directory dir, so that the entries made or removed
// in it are on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
