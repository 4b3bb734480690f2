package install

// The queue on a file system that does not order its metadata.
//
// qmail's queue is crash-proof only where changes to directories reach the
// disk in the order they were made: BSD's synchronous metadata, or a
// journal. ext2, and ext3 or ext4 made without a journal, write a
// directory block back whenever it suits them. After a power cut a queue
// file removed before the cut can have its name back (the removal never
// reached the disk) while its inode was freed and given to a newer file:
// a name in local/ or info/ then shows another file's bytes, a message is
// stuck behind "unknown record type", or one is lost
// (test/fault_powercut_test.go found all three). fsck repairs the file
// system, not the queue. qmail's answer was `chattr +S` on such a queue;
// qmail-install sets the directory-sync flag instead (`chattr +D`,
// FS_DIRSYNC_FL) on every directory of queue/: each change of such a
// directory (a name made, linked, renamed or removed) is on the disk when
// the call returns, so a removed name stays removed. The programs already
// flush each file they need before they rely on it. A directory made
// later under a flagged one inherits the flag. On a file system with a
// journal nothing is changed: its journal orders the changes, and the
// flag would cost a journal commit per change.

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// fsDirsyncFL is FS_DIRSYNC_FL of <linux/fs.h>: synchronous updates of a
// directory.
const fsDirsyncFL = 0x00010000

// procJBD2 lists the journals jbd2 runs, one directory NAME-INODE each
// (NAME the journal's block device); a variable for the tests.
var procJBD2 = "/proc/fs/jbd2"

// sysDevBlock names block devices by major:minor; a variable for the tests.
var sysDevBlock = "/sys/dev/block"

// sysFSExt4 has a directory per mounted ext2/3/4 device, whose file
// journal_task holds the pid of its journal's thread or "<none>"; a
// variable for the tests.
var sysFSExt4 = "/sys/fs/ext4"

// unjournaled reports whether the directory fd is on an ext2, ext3 or ext4
// file system running without a journal, and names its device: from
// /sys/fs/ext4/DEV/journal_task, or where the kernel has no such file from
// jbd2's list of journals. Anything it cannot tell is taken for journaled:
// the flag is only ever set where the lack of a journal is known.
func unjournaled(fd int) (bool, string) {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil || uint32(sfs.Type) != unix.EXT4_SUPER_MAGIC {
		return false, ""
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false, ""
	}
	link, err := os.Readlink(fmt.Sprintf("%s/%d:%d", sysDevBlock, unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))))
	if err != nil {
		return false, ""
	}
	dev := filepath.Base(link)
	// journal_task says it whatever device the journal is on (an
	// external journal runs under that device's name in jbd2's list).
	if b, err := os.ReadFile(filepath.Join(sysFSExt4, dev, "journal_task")); err == nil {
		return strings.TrimSpace(string(b)) == "<none>", dev
	}
	ents, err := os.ReadDir(procJBD2)
	if err != nil && !os.IsNotExist(err) {
		return false, ""
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), dev+"-") {
			return false, dev
		}
	}
	return true, dev
}

// journals remembers unjournaled's answer per device: the directories of
// a queue may sit on more than one file system (one mounted on
// queue/bounce, say), and each is judged by its own.
type journals map[uint64]fsJournal

// fsJournal is unjournaled's answer for one device.
type fsJournal struct {
	bare bool
	dev  string
}

func (j journals) unjournaled(fd int) (bool, string) {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false, ""
	}
	r, ok := j[uint64(st.Dev)]
	if !ok {
		r.bare, r.dev = unjournaled(fd)
		j[uint64(st.Dev)] = r
	}
	return r.bare, r.dev
}

// queueDir reports whether e is queue/ or a directory below it.
func queueDir(e Entry) bool {
	return e.Kind == Dir && (e.Path == "queue" || strings.HasPrefix(e.Path, "queue/"))
}

// queueDirsync sets the directory-sync flag on every directory of queue/
// that is on a file system without a journal, and says so once (the
// first run that sets it). A directory that cannot take the flag is a
// problem of the run: the queue would not survive a power cut.
func (w *walker) queueDirsync(homeUser string) {
	j := journals{}
	set, devs := 0, map[string]bool{}
	w.eachQueueDir(homeUser, func(rel string, fd int) {
		bare, dev := j.unjournaled(fd)
		if !bare {
			return
		}
		changed, err := setDirsync(fd)
		if err != nil {
			w.problem("%s: unable to make its updates synchronous (chattr +D): %v; on %s, a file system without a journal, "+
				"the queue does not survive a power cut without it", w.path(rel), err, dev)
			return
		}
		if changed {
			set++
			devs[dev] = true
		}
	})
	if set > 0 && w.log != nil {
		names := slices.Sorted(maps.Keys(devs))
		dirs := "directories"
		if set == 1 {
			dirs = "directory"
		}
		fmt.Fprintf(w.log, "qmail-install: note: %s is on %s, an ext2/ext3/ext4 file system without a journal: "+
			"updates of %d of its %s made synchronous (chattr +D), so that a power cut cannot undo a removal\n",
			w.path("queue"), strings.Join(names, " and "), set, dirs)
	}
}

// eachQueueDir calls f with each directory of queue/ in the tree's table
// and the walker's descriptor of it; one the run could not open is left
// out (reported where the directory was made).
func (w *walker) eachQueueDir(homeUser string, f func(rel string, fd int)) {
	for _, e := range Tree(homeUser) {
		if !queueDir(e) {
			continue
		}
		if fd, err := w.dir(e.Path); err == nil {
			f(e.Path, fd)
		}
	}
}

// checkQueueDirs is -check's eachQueueDir: it calls f with each directory
// of queue/ among entries and a descriptor of it, reached as the repair
// reaches it: no link is followed in queue/ or on the way to it, except a
// link the repair follows (linkFollowed: the tree's queue pointing to a
// spool elsewhere). A directory that cannot be opened is left out (its
// own entry in -check names it).
func checkQueueDirs(root string, entries []Entry, f func(rel string, fd int)) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	for _, e := range entries {
		if !queueDir(e) || wayBlocked(root, e.Path) {
			continue
		}
		p, fl := filepath.Join(root, e.Path), flags
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 && linkFollowed(root, e.Path) {
			fl &^= unix.O_NOFOLLOW
		}
		fd, err := unix.Open(p, fl, 0)
		if err != nil {
			continue
		}
		f(e.Path, fd)
		unix.Close(fd)
	}
}

// setDirsync sets FS_DIRSYNC_FL on the directory fd; changed is false when
// it was set already.
func setDirsync(fd int) (changed bool, err error) {
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return false, err
	}
	if flags&fsDirsyncFL != 0 {
		return false, nil
	}
	return true, unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsDirsyncFL))
}

// unsyncedQueue is -check's line for a queue on a file system without a
// journal whose directories lack the directory-sync flag (a tree made by
// an older qmail-install, or a flag removed by hand), or nothing.
func unsyncedQueue(root string, entries []Entry) []string {
	j := journals{}
	var lacking []string
	devs := map[string]bool{}
	checkQueueDirs(root, entries, func(rel string, fd int) {
		bare, dev := j.unjournaled(fd)
		if !bare {
			return
		}
		if f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err != nil || f&fsDirsyncFL == 0 {
			lacking = append(lacking, rel)
			devs[dev] = true
		}
	})
	if len(lacking) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("queue: on %s, a file system without a journal, %d of its directories (%s first) lack synchronous updates (chattr +D): "+
		"a power cut can bring removed queue files back and lose mail; the repair sets the flag",
		strings.Join(slices.Sorted(maps.Keys(devs)), " and "), len(lacking), lacking[0])}
}
