package aliases

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// This file opens an :include: file by walking its path one component
// at a time, as sendmail judges a file it will take programs and files
// from. A name in the list of another user can lead anywhere through a
// symbolic link (~bob/list -> ~carol/Mailbox), so the owner of the file
// reached says little about who chose what it holds. The walk follows
// links itself, noting the owner of each, and keeps a descriptor of every
// directory it passes, so the file judged is the file read.

// Deliverer is the user an :include: file is read for: the alias user
// for fastforward, the user for dot-forward.
type Deliverer struct {
	UID int
	// Groups, when not nil, are the delivering user's groups, and the
	// walk checks that user's search and read permission from the mode
	// bits (newaliases, run as root, tells what fastforward will meet).
	// Nil: the open itself decides (the programs run as that user).
	Groups []int
}

// may reports whether the deliverer has the access bits (4 read, 1
// search) to what st describes.
func (d Deliverer) may(st *unix.Stat_t, bits uint32) bool {
	if d.Groups == nil || d.UID == 0 {
		return true
	}
	switch {
	case int(st.Uid) == d.UID:
		return st.Mode>>6&bits == bits
	case slices.Contains(d.Groups, int(st.Gid)):
		return st.Mode>>3&bits == bits
	}
	return st.Mode&bits == bits
}

// trusts reports whether uid is root or the deliverer.
func (d Deliverer) trusts(uid uint32) bool {
	return uid == 0 || int(uid) == d.UID
}

// What an :include: file is distrusted for.
const (
	distrustOwner       = iota // the file belongs to another user
	distrustGroup              // its group can write the file
	distrustLink               // a symbolic link on its path belongs to another user
	distrustDirOwner           // its directory belongs to another user
	distrustDirWritable        // others can write its directory, which is not sticky
)

// Distrust says why an :include: file is not trusted with programs,
// files and Maildirs: what is at fault (the file, a symbolic link on its
// path, or the directory that holds it) and how.
type Distrust struct {
	kind     int
	Path     string // the file, link or directory at fault
	UID, GID int    // its owner, its group
	others   bool   // distrustDirWritable: writable by others, not only its group
}

// Reason says what is wrong, to follow "it" or "which": name gives a
// user's name ("uid 1001"), deliverer names the delivering user after
// "not to root or" ("the delivering user").
func (d *Distrust) Reason(name func(uid int) string, deliverer string) string {
	owner := fmt.Sprintf("belongs to %s, not to root or %s", name(d.UID), deliverer)
	switch d.kind {
	case distrustGroup:
		return fmt.Sprintf("is writable by its group (gid %d)", d.GID)
	case distrustLink:
		return fmt.Sprintf("is reached through the symbolic link %s, which %s", d.Path, owner)
	case distrustDirOwner:
		return fmt.Sprintf("is in the directory %s, which %s", d.Path, owner)
	case distrustDirWritable:
		if d.others {
			return fmt.Sprintf("is in the directory %s, which anyone can write (and which is not sticky)", d.Path)
		}
		return fmt.Sprintf("is in the directory %s, which its group (gid %d) can write", d.Path, d.GID)
	}
	return owner
}

// UIDName is the name fastforward's and dot-forward's warnings give a
// user: "uid N".
func UIDName(uid int) string { return fmt.Sprintf("uid %d", uid) }

// errNotRegular is the error of an :include: path that leads to
// something other than a regular file (a FIFO would block the delivery
// for good; a device or directory is no list).
var errNotRegular = errors.New("not a regular file")

// maxLinks bounds the symbolic links followed on one path, as the
// kernel does.
const maxLinks = 40

// openInclude opens the :include: file path for reading without
// blocking, for d, and judges it:
//
//   - the file must belong to root or d and not be writable by its group;
//   - every symbolic link met on the way must belong to root or d;
//   - the directory that holds the file must belong to root or d and
//     not be writable by its group or others, unless it is sticky (then
//     no one else can rename or remove the file, which is root's or d's).
//
// why is the first of these that fails (the file's own owner and mode
// first), nil when none does. Anything but a regular file is refused
// with errNotRegular. The file's own mode is returned in st: one others
// can write is the caller's to refuse.
func openInclude(path string, d Deliverer) (f *os.File, st *unix.Stat_t, why *Distrust, err error) {
	if !strings.HasPrefix(path, "/") {
		return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: syscall.EINVAL}
	}
	type dir struct {
		fd   int
		name string
		st   unix.Stat_t
	}
	var stack []dir
	defer func() {
		for _, x := range stack {
			unix.Close(x.fd)
		}
	}()
	push := func(fd int, name string) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "stat", Path: name, Err: err}
		}
		stack = append(stack, dir{fd, name, st})
		return nil
	}
	rfd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	if err := push(rfd, "/"); err != nil {
		return nil, nil, nil, err
	}
	var linkWhy *Distrust
	links := 0
	comps := strings.Split(path, "/")
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		if c == "" || c == "." {
			continue
		}
		cur := stack[len(stack)-1]
		if c == ".." {
			if len(stack) > 1 {
				unix.Close(cur.fd)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if !d.may(&cur.st, 1) {
			return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
		}
		name := strings.TrimSuffix(cur.name, "/") + "/" + c
		last := true
		for _, r := range comps {
			if r != "" && r != "." {
				last = false
			}
		}
		var lst unix.Stat_t
		if err := unix.Fstatat(cur.fd, c, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		switch lst.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if links++; links > maxLinks {
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
			}
			if linkWhy == nil && !d.trusts(lst.Uid) {
				linkWhy = &Distrust{kind: distrustLink, Path: name, UID: int(lst.Uid), GID: int(lst.Gid)}
			}
			target, err := readlinkat(cur.fd, c)
			if err != nil {
				return nil, nil, nil, &os.PathError{Op: "readlink", Path: name, Err: err}
			}
			if strings.HasPrefix(target, "/") {
				for _, x := range stack[1:] {
					unix.Close(x.fd)
				}
				stack = stack[:1]
			}
			comps = append(strings.Split(target, "/"), comps...)
		case unix.S_IFDIR:
			if last {
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
			}
			fd, err := unix.Openat(cur.fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
			}
			if err := push(fd, name); err != nil {
				return nil, nil, nil, err
			}
		default:
			if !last {
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOTDIR}
			}
			if !d.may(&lst, 4) {
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
			}
			// Non-blocking: a FIFO opens at once (and is refused below)
			// instead of holding the delivery until a writer comes.
			fd, err := unix.Openat(cur.fd, c, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
			}
			f := os.NewFile(uintptr(fd), path)
			var fst unix.Stat_t
			if err := unix.Fstat(fd, &fst); err != nil {
				f.Close()
				return nil, nil, nil, &os.PathError{Op: "stat", Path: path, Err: err}
			}
			if fst.Mode&unix.S_IFMT != unix.S_IFREG {
				f.Close()
				return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
			}
			return f, &fst, judge(d, &fst, linkWhy, &cur.st, cur.name, path), nil
		}
	}
	// The path ends at a directory ("/", or a name ending in "..").
	return nil, nil, nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
}

// judge applies the rules of openInclude to the file (st), the first
// untrusted link on its path and the directory that holds it.
func judge(d Deliverer, st *unix.Stat_t, link *Distrust, dst *unix.Stat_t, dirName, path string) *Distrust {
	switch {
	case !d.trusts(st.Uid):
		return &Distrust{kind: distrustOwner, Path: path, UID: int(st.Uid), GID: int(st.Gid)}
	case st.Mode&0o020 != 0:
		return &Distrust{kind: distrustGroup, Path: path, UID: int(st.Uid), GID: int(st.Gid)}
	case link != nil:
		return link
	case !d.trusts(dst.Uid):
		return &Distrust{kind: distrustDirOwner, Path: dirName, UID: int(dst.Uid), GID: int(dst.Gid)}
	case dst.Mode&0o022 != 0 && dst.Mode&unix.S_ISVTX == 0:
		return &Distrust{kind: distrustDirWritable, Path: dirName, UID: int(dst.Uid), GID: int(dst.Gid), others: dst.Mode&0o002 != 0}
	}
	return nil
}

// readlinkat reads the symbolic link name in the directory fd.
func readlinkat(fd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		k, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if k < n {
			return string(buf[:k]), nil
		}
		if n > 1<<16 {
			return "", syscall.ENAMETOOLONG
		}
	}
}
