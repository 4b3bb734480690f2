package install

// The queue on a file system kept in memory.
//
// tmpfs and ramfs hold their files in memory (and swap): what qmail-queue
// and qmail-send flush there is gone when the host reboots or loses
// power, so the queue's promise, that mail accepted is kept until it is
// delivered or bounced, cannot hold. Unlike a file system without a
// journal (dirsync.go) nothing can be set to mend it: the install goes on
// and says so, at each run, on one line.

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

// memoryFS names the file system of the directory fd when it is kept in
// memory ("tmpfs", "ramfs"), else "".
func memoryFS(fd int) string {
	m, err := fsMagic(fd)
	if err != nil {
		return ""
	}
	switch m {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.RAMFS_MAGIC:
		return "ramfs"
	}
	return ""
}

// memQueue gathers the directories of queue/ found on a file system kept
// in memory.
type memQueue struct {
	first, fs string // the first such directory, and its file system
	n, total  int    // how many are, of how many looked at
}

func (m *memQueue) add(rel string, fd int) {
	m.total++
	if fs := memoryFS(fd); fs != "" {
		if m.n == 0 {
			m.first, m.fs = rel, fs
		}
		m.n++
	}
}

// note is the line for what add found, or "". path gives the name of a
// directory of the tree as the line shows it.
func (m *memQueue) note(path func(rel string) string) string {
	if m.n == 0 {
		return ""
	}
	where := fmt.Sprintf("%s is on %s", path(m.first), m.fs)
	if m.first != "queue" || m.n < m.total {
		where += fmt.Sprintf(" (%d of the queue's %d directories)", m.n, m.total)
	}
	return where + ", a file system kept in memory: every queued message is lost when the host reboots or loses power; " +
		"put the queue on a disk for mail to outlast a reboot"
}

// queueInMemory says, through the run's log, when directories of queue/
// are on tmpfs or ramfs. It changes nothing, and the run succeeds.
func (w *walker) queueInMemory(homeUser string) {
	var m memQueue
	w.eachQueueDir(homeUser, m.add)
	if l := m.note(w.path); l != "" && w.log != nil {
		fmt.Fprintf(w.log, "qmail-install: note: %s\n", l)
	}
}

// QueueInMemory is the note (without its "qmail-install: note: ") for a
// tree at root whose queue is on tmpfs or ramfs, or "": for -check,
// which reads the tree as the repair does (checkQueueDirs).
func QueueInMemory(root string) string {
	var m memQueue
	checkQueueDirs(root, Tree(""), m.add)
	return m.note(func(rel string) string { return filepath.Join(root, rel) })
}
