package queue

// The tree of a set-id qmail-queue.
//
// qmail-queue takes its tree from where it was started (qhome.Root: the
// parent of the bin/ holding it), and from that tree's etc/ids the uids
// that make the Received line say "from network", "by alias" or "for
// bounce". Installed set-uid qmailq, it can be started from a directory
// its caller chose: a hard link to it there (which Linux allows where
// fs.protected_hardlinks is off), next to a queue link to the real queue
// and an etc/ids of the caller's making, queued into the real queue with
// a Received line the caller chose. qmail's qmail-queue, with its
// compiled-in /var/qmail, has no such way in.
//
// So when qmail-queue runs set-uid (a real uid that is not the effective
// one) it opens the root once and uses only a tree its caller
// cannot have made or changed: the root, etc/, etc/ids and queue/ must
// each be owned by root or by the user qmail-queue runs as (its set-uid
// owner: qmailq in a tree installed by root, the installing user in one
// installed by an ordinary user) and writable by neither group nor
// others. qmail-install gives them root:qmail 0755, root 0644 and qmailq
// 0750 (every one the installing user's in a tree of an ordinary user),
// so every installed tree passes; its own root's links (etc or queue to
// somewhere else) are followed, and what they lead to is what is checked.
// The root is then used only through the descriptor that was checked and
// etc/ids read through the one checked, so a directory renamed or
// replaced on the way to the root after the check changes nothing. The
// directories above the root are not looked at: the root's own owner and
// mode are what a caller cannot fake.
//
// Run by a user who is its owner (a tree of an ordinary user, or root
// running a root-owned program), qmail-queue gains nothing its caller
// did not have, and nothing is checked. Its group is not what decides:
// qmail-install never makes it set-gid, so an effective gid that is not
// the real one is the caller's own doing (setpriv --egid, a set-gid
// program above it) and gives qmail-queue nothing the caller lacks; the
// queue's directories (qmailq, group qmail, 0750) are not writable by
// group in any case. Checked on the gid, a tree's own owner calling it
// with another effective gid was refused.

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

// tree is the root of the tree of a set-id qmail-queue, opened and
// checked by openTree. Its descriptors stay open for the process's life;
// jobs use them and never close them.
type tree struct {
	root string     // its name, for messages
	fd   int        // the root (O_PATH)
	qfd  int        // its queue/ (O_PATH), or -1 when qerr says why it could not be opened
	qerr error      // the error of queue/'s open (nil when qfd is open)
	ids  *qhome.IDs // etc/ids; nil when there is none that can be read (every caller is then "by uid N")
}

// untrustedError is openTree's refusal of a tree.
type untrustedError struct {
	root  string // the tree
	path  string // what in it is refused
	why   string // "is owned by uid N", "is writable by group or others (mode M)"
	owner int    // the uid trusted besides root (-1: none)
}

func (e *untrustedError) Error() string {
	whose := "root"
	if e.owner > 0 {
		whose = fmt.Sprintf("root or uid %d (the user qmail-queue runs as)", e.owner)
	}
	return fmt.Sprintf("refusing the tree %s: %s %s: a set-uid qmail-queue uses only a tree "+
		"whose root, etc/, etc/ids and queue/ are owned by %s and writable by no group or others, "+
		"one its caller cannot have made (a link to the program elsewhere names another tree)",
		e.root, e.path, e.why, whose)
}

// checkOwnerMode refuses, as an *untrustedError, the status st of path
// (in the tree root) when its owner is neither root nor owner (-1: root
// only), or when group or others may write it.
func checkOwnerMode(root, path string, st *unix.Stat_t, owner int) error {
	switch {
	case st.Uid != 0 && int(st.Uid) != owner:
		return &untrustedError{root, path, fmt.Sprintf("is owned by uid %d", st.Uid), owner}
	case st.Mode&0o022 != 0:
		return &untrustedError{root, path, fmt.Sprintf("is writable by group or others (mode %04o)", st.Mode&0o7777), owner}
	}
	return nil
}

// openTree opens the tree root for a set-id qmail-queue whose files may
// belong to root or to the uid owner (-1: root only), and checks it: the
// root itself, then etc/ and etc/ids and queue/, each as far as it
// exists (a missing or unreadable etc/ids makes every caller "by uid
// N", as it always did; a missing queue/ is the job's 62). The error is
// an *untrustedError for a tree refused, else that of the root's open.
// On success the caller keeps the tree's descriptors open.
func openTree(root string, owner int) (_ *tree, err error) {
	fd, err := openat(unix.AT_FDCWD, root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, pathErr("open", root, err)
	}
	t := &tree{root: root, fd: fd, qfd: -1}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr("stat", root, err)
	}
	if err := checkOwnerMode(root, root, &st, owner); err != nil {
		return nil, err
	}
	if t.ids, err = treeIDs(root, fd, owner); err != nil {
		return nil, err
	}
	t.qfd, t.qerr = openat(fd, "queue", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if t.qerr != nil {
		t.qfd = -1
		return t, nil
	}
	if err := unix.Fstat(t.qfd, &st); err != nil {
		return nil, pathErr("stat", filepath.Join(root, "queue"), err)
	}
	if err := checkOwnerMode(root, filepath.Join(root, "queue"), &st, owner); err != nil {
		return nil, err
	}
	return t, nil
}

// treeIDs reads etc/ids below the root open on fd, refusing (an
// *untrustedError) an etc/ or etc/ids that fails checkOwnerMode. One that
// cannot be opened or parsed gives nil ids and no error.
func treeIDs(root string, fd, owner int) (*qhome.IDs, error) {
	etc := filepath.Join(root, "etc")
	efd, err := openat(fd, "etc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, nil
	}
	defer unix.Close(efd)
	var st unix.Stat_t
	if err := unix.Fstat(efd, &st); err != nil {
		return nil, pathErr("stat", etc, err)
	}
	if err := checkOwnerMode(root, etc, &st, owner); err != nil {
		return nil, err
	}
	name := filepath.Join(root, qhome.IDsFile)
	ifd, err := openat(efd, filepath.Base(qhome.IDsFile), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return nil, nil
	}
	f := os.NewFile(uintptr(ifd), name)
	defer f.Close()
	if err := unix.Fstat(ifd, &st); err != nil {
		return nil, pathErr("stat", name, err)
	}
	if err := checkOwnerMode(root, name, &st, owner); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil
	}
	b, err := qhome.ReadCapped(f)
	if err != nil {
		return nil, nil
	}
	ids, err := qhome.ParseIDs(string(b))
	if err != nil {
		return nil, nil
	}
	return ids, nil
}

// close closes the tree's descriptors.
func (t *tree) close() {
	if t.qfd >= 0 {
		unix.Close(t.qfd)
	}
	unix.Close(t.fd)
}

// openat is openat(2) without a mode, retried when interrupted.
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// setIDTree is what Main and MainMulti do first: for a qmail-queue that
// runs set-uid, the tree root opened and checked (openTree), trusting
// files of root and of its effective uid. Run by its owner (the real uid
// the effective one) it returns nil and 0: nothing is checked. A tree refused is said on fd 2 and gives 61,
// trouble in the home directory (qq trouble in home directory, a
// temporary failure: the caller's own doing, or an installed tree
// damaged); a root that cannot be opened gives 61 silently, as it does
// in the job.
func setIDTree(root string) (*tree, int) {
	euid := unix.Geteuid()
	if unix.Getuid() == euid {
		return nil, 0
	}
	t, err := openTree(root, euid)
	if err != nil {
		if _, ok := err.(*untrustedError); ok {
			fmt.Fprintf(os.Stderr, "qmail-queue: fatal: %v\n", err)
		}
		return nil, qq.ExitHome
	}
	return t, 0
}
