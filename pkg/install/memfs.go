package install

// The queue on a file system this host's kernel does not keep on a disk.
//
// tmpfs and ramfs hold their files in memory (and swap): what qmail-queue
// and qmail-send flush there is gone when the host reboots or loses
// power, so the queue's promise, that mail accepted is kept until it is
// delivered or bounced, cannot hold. A network file system (NFS, SMB, 9P,
// Ceph, AFS, Coda) keeps what is flushed only as well as its server does,
// and a link or rename whose reply is lost can be sent again and fail
// although it was done; a FUSE file system keeps it only as well as the
// program behind it. Unlike a file system without a journal (dirsync.go)
// nothing can be set to mend these: the install goes on and says so, at
// each run, on one line per kind.

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// fsMagic is the f_type statfs(2) gives for the file system of the open
// directory fd; a variable for the tests.
var fsMagic = func(fd int) (uint32, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return 0, err
	}
	return uint32(sfs.Type), nil
}

// fsKind sorts file systems by who keeps what the queue flushes.
type fsKind int

const (
	fsDisk    fsKind = iota // this kernel, on a disk
	fsMemory                // nobody: memory, gone at a reboot
	fsNetwork               // a server across the network
	fsUser                  // a program in user space (FUSE)
)

// The f_type of SMB2 and CIFS mounts, which x/sys/unix does not name.
const (
	cifsMagic = 0xff534d42
	smb2Magic = 0xfe534d42
)

// queueFS names the file system of the directory fd and gives its kind;
// "" and fsDisk for any other, or when statfs fails.
func queueFS(fd int) (string, fsKind) {
	m, err := fsMagic(fd)
	if err != nil {
		return "", fsDisk
	}
	switch m {
	case unix.TMPFS_MAGIC:
		return "tmpfs", fsMemory
	case unix.RAMFS_MAGIC:
		return "ramfs", fsMemory
	case unix.NFS_SUPER_MAGIC:
		return "nfs", fsNetwork
	case unix.SMB_SUPER_MAGIC, cifsMagic, smb2Magic:
		return "smb", fsNetwork
	case unix.V9FS_MAGIC:
		return "9p", fsNetwork
	case unix.CEPH_SUPER_MAGIC:
		return "ceph", fsNetwork
	case unix.AFS_SUPER_MAGIC, unix.AFS_FS_MAGIC:
		return "afs", fsNetwork
	case unix.CODA_SUPER_MAGIC:
		return "coda", fsNetwork
	case unix.FUSE_SUPER_MAGIC:
		return "fuse", fsUser
	}
	return "", fsDisk
}

// fsQueue gathers the directories of queue/ found on file systems of one
// kind.
type fsQueue struct {
	kind      fsKind
	first, fs string // the first such directory, and its file system
	n, total  int    // how many are, of how many looked at
}

func (q *fsQueue) add(rel, fs string, kind fsKind) {
	q.total++
	if kind == q.kind {
		if q.n == 0 {
			q.first, q.fs = rel, fs
		}
		q.n++
	}
}

// what each kind means for the queue, after "DIR is on FS".
var fsRisk = map[fsKind]string{
	fsMemory: ", a file system kept in memory: every queued message is lost when the host reboots or loses power; " +
		"put the queue on a disk for mail to outlast a reboot",
	fsNetwork: ", a network file system: queued mail is kept only as well as its server keeps what is flushed, " +
		"and a link or rename whose reply is lost can be repeated and fail although it was done; put the queue on a local disk",
	fsUser: ", a file system run by a program in user space: queued mail is kept only as well as that program keeps what is flushed; " +
		"put the queue on a local disk",
}

// note is the line for what add found, or "". path gives the name of a
// directory of the tree as the line shows it.
func (q *fsQueue) note(path func(rel string) string) string {
	if q.n == 0 {
		return ""
	}
	where := fmt.Sprintf("%s is on %s", path(q.first), q.fs)
	if q.first != "queue" || q.n < q.total {
		where += fmt.Sprintf(" (%d of the queue's %d directories)", q.n, q.total)
	}
	return where + fsRisk[q.kind]
}

// queueFSNotes gives the notes for the directories of queue/ that walk
// shows it, one per kind found, memory first.
func queueFSNotes(walk func(func(rel string, fd int)), path func(rel string) string) []string {
	qs := []*fsQueue{{kind: fsMemory}, {kind: fsNetwork}, {kind: fsUser}}
	walk(func(rel string, fd int) {
		fs, kind := queueFS(fd)
		for _, q := range qs {
			q.add(rel, fs, kind)
		}
	})
	var notes []string
	for _, q := range qs {
		if l := q.note(path); l != "" {
			notes = append(notes, l)
		}
	}
	return notes
}

// queueNotOnDisk says, through the run's log, when directories of queue/
// are on tmpfs or ramfs, or on a network or FUSE file system. It changes
// nothing, and the run succeeds.
func (w *walker) queueNotOnDisk(homeUser string) {
	if w.log == nil {
		return
	}
	walk := func(f func(rel string, fd int)) { w.eachQueueDir(homeUser, f) }
	for _, l := range queueFSNotes(walk, w.path) {
		fmt.Fprintf(w.log, "qmail-install: note: %s\n", l)
	}
}

// QueueNotOnDisk gives the notes (without their "qmail-install: note: ")
// for a tree at root whose queue is on tmpfs or ramfs, or on a network or
// FUSE file system: for -check, which reads the tree as the repair does
// (checkQueueDirs).
func QueueNotOnDisk(root string) []string {
	walk := func(f func(rel string, fd int)) { checkQueueDirs(root, Tree(""), f) }
	return queueFSNotes(walk, func(rel string) string { return filepath.Join(root, rel) })
}
