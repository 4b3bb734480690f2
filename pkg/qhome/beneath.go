package qhome

// The walk below the queue directory: how OpenQueueFile, ReadQueueFile,
// AppendWhole, ReplaceFile and RemoveQueueFile reach the directory of a
// queue file without following a link that qmail's users could plant.
//
// The tree's queue/ belongs to qmailq, queue/lock to qmailq, queue/info,
// local, remote and bounce (and their split subdirectories) to qmails. A
// program running as root that opened ROOT/queue/remote/9/ID by name
// would follow remote/9 if qmails had replaced it with a symbolic link to
// a root-only directory; O_NOFOLLOW guards only the last component. So
// the path is followed normally up to and including its last component
// named "queue" (the tree's queue/, whose parent is root's; an admin may
// have made queue/ itself a link to another disk), and every directory
// below it is opened relative to the one before with O_NOFOLLOW. The last
// name is then opened, created, unlinked or renamed relative to that
// directory (openat, unlinkat, renameat), and the directory is flushed
// through the same descriptor, so nothing looked up by name again can
// have been swapped meanwhile.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrHardLink is the error of OpenQueueFile (for writing) and AppendWhole
// for a file with more than one link: a hard link to a file elsewhere
// (root's, where fs.protected_hardlinks is off) planted in a directory
// another user can write. Reading such a file is allowed: todo/ID is a
// hard link of intd/ID.
var ErrHardLink = errors.New("has more than one link (a hard link); not written")

// dirLinkError is a directory below the queue directory that is a
// symbolic link; it wraps ErrSymlink and names the directory.
type dirLinkError struct{ dir string }

func (e *dirLinkError) Error() string {
	return "directory " + e.dir + " is a symbolic link; not followed"
}

func (e *dirLinkError) Unwrap() error { return ErrSymlink }

// queueDirs are the directories of a tree's queue/ (spec/queue.md).
var queueDirs = map[string]bool{
	"bounce": true, "info": true, "intd": true, "local": true, "lock": true,
	"mess": true, "pid": true, "remote": true, "todo": true,
}

// openParent opens (O_PATH) the directory holding name's last component
// and returns its descriptor with that component. Up to and including the
// last directory component named "queue" that is followed by one of the
// queue's own directories (queueDirs) or ends the path, the path is
// followed as usual;
// each directory below it is opened relative to the one before with
// O_NOFOLLOW|O_DIRECTORY, and one that is a symbolic link is refused (the
// error wraps ErrSymlink and names it). Without a "queue" component the
// directory is opened as given (links followed), and only the last
// component is guarded, by the caller's O_NOFOLLOW. The caller closes fd.
func openParent(name string) (fd int, base string, err error) {
	clean := filepath.Clean(name)
	dir, base := filepath.Dir(clean), filepath.Base(clean)
	start, below := dir, []string(nil)
	comps := strings.Split(dir, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		// The tree's queue/: a "queue" followed by one of its own
		// directories (or ending the path), so that a tree kept under a
		// directory of that name (/srv/queue/qmail) does not have its
		// control/, say, walked as if it were in the queue.
		if comps[i] == "queue" && (i == len(comps)-1 || queueDirs[comps[i+1]]) {
			start, below = strings.Join(comps[:i+1], "/"), comps[i+1:]
			break
		}
	}
	fd, err = openat(unix.AT_FDCWD, start, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: name, Err: err}
	}
	at := start
	for _, c := range below {
		at += "/" + c
		next, err := openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			var st unix.Stat_t
			if (err == unix.ENOTDIR || err == unix.ELOOP) &&
				unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = &dirLinkError{at}
			}
			unix.Close(fd)
			return -1, "", &os.PathError{Op: "open", Path: name, Err: err}
		}
		unix.Close(fd)
		fd = next
	}
	return fd, base, nil
}

// openat is openat(2), retried when interrupted (as os.OpenFile does).
func openat(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// syncDirFD flushes the directory d (an O_PATH descriptor), whose path is
// dir, so that the entries made or removed in it are on disk.
func syncDirFD(d int, dir string) error {
	fd, err := openat(d, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}

// RemoveQueueFile removes the queue file at path and flushes its
// directory, for a program that may run as root in a directory another
// user can write: the directories below the queue directory are walked as
// for OpenQueueFile (a split directory replaced with a symbolic link is
// refused, ErrSymlink), and the name is unlinked relative to the directory
// it reached (unlinkat). A symbolic link at path is removed itself, never
// its target; a directory there is an error, not removed. A missing file
// is an error wrapping fs.ErrNotExist.
func RemoveQueueFile(path string) error {
	d, base, err := openParent(path)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	if err := unix.Unlinkat(d, base, 0); err != nil {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return syncDirFD(d, filepath.Dir(path))
}

// openQueueAt opens base in the directory d (from openParent) as
// OpenQueueFile does; name is the full path, for errors and the File.
// O_TRUNC is applied only after the file passed the checks, so that a
// hard link is refused before anything is cut.
func openQueueAt(d int, base, name string, flag int, perm os.FileMode) (*os.File, error) {
	writing := flag&(os.O_WRONLY|os.O_RDWR) != 0
	trunc := writing && flag&os.O_TRUNC != 0
	flag &^= os.O_TRUNC
	fd, err := openat(d, base, flag|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, notRegular(symlinkError(&os.PathError{Op: "open", Path: name, Err: err}), name)
	}
	f := os.NewFile(uintptr(fd), name)
	err = checkOpened(f, name, true, writing)
	if err == nil && trunc {
		err = f.Truncate(0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// links is the link count of st.
func links(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Nlink)
	}
	return 1
}
