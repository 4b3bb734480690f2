package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeJournals points procJBD2 and sysDevBlock at a fake /proc/fs/jbd2
// and /sys/dev/block for the device dir is on: its block device is named
// "fakedev", and it runs a journal when journal is true.
func fakeJournals(t *testing.T, dir string, journal bool) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	jbd2 := filepath.Join(base, "jbd2")
	devs := filepath.Join(base, "block")
	os.MkdirAll(jbd2, 0o755)
	os.MkdirAll(devs, 0o755)
	os.Symlink("../devices/virtual/block/fakedev",
		filepath.Join(devs, fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))))
	os.Mkdir(filepath.Join(jbd2, "otherdev-8"), 0o755)
	if journal {
		os.Mkdir(filepath.Join(jbd2, "fakedev-8"), 0o755)
	}
	oldJ, oldB, oldE := procJBD2, sysDevBlock, sysFSExt4
	procJBD2, sysDevBlock, sysFSExt4 = jbd2, devs, filepath.Join(base, "ext4")
	t.Cleanup(func() { procJBD2, sysDevBlock, sysFSExt4 = oldJ, oldB, oldE })
}

// fakeJournalTask gives fakedev a /sys/fs/ext4 entry whose journal_task
// says task (after fakeJournals).
func fakeJournalTask(t *testing.T, task string) {
	t.Helper()
	d := filepath.Join(sysFSExt4, "fakedev")
	os.MkdirAll(d, 0o755)
	if err := os.WriteFile(filepath.Join(d, "journal_task"), []byte(task+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// onExt skips the test unless dir is on ext2/ext3/ext4 and takes the
// directory-sync flag.
func onExt(t *testing.T, dir string) {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil || uint32(sfs.Type) != unix.EXT4_SUPER_MAGIC {
		t.Skipf("%s is not on ext2/ext3/ext4 (statfs type %#x)", dir, sfs.Type)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err != nil {
		t.Skipf("FS_IOC_GETFLAGS on %s: %v", dir, err)
	}
}

func inodeFlags(t *testing.T, dir string) uint32 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUnjournaled(t *testing.T) {
	dir := t.TempDir()
	onExt(t, dir)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fakeJournals(t, dir, false)
	if bare, dev := unjournaled(fd); !bare || dev != "fakedev" {
		t.Errorf("no journal of fakedev: unjournaled = %v %q", bare, dev)
	}
	fakeJournals(t, dir, true)
	if bare, _ := unjournaled(fd); bare {
		t.Error("fakedev runs a journal: taken for one without")
	}
	// journal_task decides over jbd2's list: an external journal runs
	// under its own device's name there.
	fakeJournals(t, dir, false)
	fakeJournalTask(t, "4242")
	if bare, _ := unjournaled(fd); bare {
		t.Error("journal_task names a thread: taken for no journal")
	}
	fakeJournals(t, dir, true)
	fakeJournalTask(t, "<none>")
	if bare, _ := unjournaled(fd); !bare {
		t.Error("journal_task <none>: taken for a journal")
	}
	// A device sysfs does not name is taken for journaled.
	sysDevBlock = t.TempDir()
	if bare, _ := unjournaled(fd); bare {
		t.Error("unknown device: taken for one without a journal")
	}
}

// TestInstallQueueDirsync: on ext without a journal every directory of
// queue/ gets the flag (and the log says so once); other directories do
// not; with a journal nothing is flagged.
func TestInstallQueueDirsync(t *testing.T) {
	base := searchableDir(t)
	onExt(t, base)

	root := filepath.Join(base, "bare")
	fakeJournals(t, base, false)
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	queueDirs := 0
	for _, e := range Tree("") {
		if e.Kind != Dir {
			continue
		}
		inQueue := e.Path == "queue" || strings.HasPrefix(e.Path, "queue/")
		if inQueue {
			queueDirs++
		}
		if got := inodeFlags(t, filepath.Join(root, e.Path))&fsDirsyncFL != 0; got != inQueue {
			t.Errorf("%s: directory-sync flag %v, want %v", e.Path, got, inQueue)
		}
	}
	if want := fmt.Sprintf("updates of %d of its directories made synchronous", queueDirs); !strings.Contains(log.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, log.String())
	}
	log.Reset()
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "synchronous") {
		t.Errorf("a re-install says it again:\n%s", log.String())
	}
	// -check finds nothing to say of it, until a flag is taken away.
	if lines, err := Check(root); err != nil || slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "chattr +D") }) {
		t.Errorf("-check of a flagged queue: %v %q", err, lines)
	}
	clearDirsync(t, filepath.Join(root, "queue", "todo"))
	lines, err := Check(root)
	want := "lack synchronous updates (chattr +D)"
	if err != nil || !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) && strings.Contains(l, "queue/todo") }) {
		t.Errorf("-check with queue/todo unflagged: %v %q, want a line with %q", err, lines, want)
	}

	root = filepath.Join(base, "journaled")
	fakeJournals(t, base, true)
	o = opts(t, root)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if inodeFlags(t, filepath.Join(root, "queue", "todo"))&fsDirsyncFL != 0 {
		t.Error("queue/todo flagged on a file system with a journal")
	}
}

// TestQueueDirsyncPerFileSystem: a directory of the queue on a file system
// of its own (a tmpfs mounted on queue/bounce) is judged by that one: left
// alone, no problem reported, while the rest get the flag.
func TestQueueDirsyncPerFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	base := searchableDir(t)
	onExt(t, base)
	fakeJournals(t, base, false)
	root := filepath.Join(base, "q")
	o := opts(t, root)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	bounce := filepath.Join(root, "queue", "bounce")
	if err := unix.Mount("tmpfs", bounce, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bounce, unix.MNT_DETACH) })
	if err := Install(o); err != nil {
		t.Fatalf("install with a tmpfs on queue/bounce: %v", err)
	}
	if lines, err := Check(root); err != nil || slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "chattr +D") }) {
		t.Errorf("-check: %v %q", err, lines)
	}
	if inodeFlags(t, filepath.Join(root, "queue", "todo"))&fsDirsyncFL == 0 {
		t.Error("queue/todo lost its flag")
	}
}

// TestCheckDirsyncQueueLink: the tree's queue may be a link to a spool
// elsewhere, which the repair follows; -check reads the queue as the
// repair does, so the link's target lacking the flag is named too (the
// tmpfs note already followed it).
func TestCheckDirsyncQueueLink(t *testing.T) {
	base := searchableDir(t)
	onExt(t, base)
	fakeJournals(t, base, false)
	root := filepath.Join(base, "q")
	if err := Install(opts(t, root)); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(base, "spool")
	if err := os.Rename(filepath.Join(root, "queue"), spool); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(spool, filepath.Join(root, "queue")); err != nil {
		t.Fatal(err)
	}
	if !linkFollowed(root, "queue") {
		t.Fatal("the queue link is not one the repair follows")
	}
	if lines, err := Check(root); err != nil || slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "chattr +D") }) {
		t.Fatalf("-check of a flagged queue behind a link: %v %q", err, lines)
	}
	clearDirsync(t, spool)
	lines, err := Check(root)
	want := "1 of its directories (queue first) lack synchronous updates"
	if err != nil || !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
		t.Errorf("-check with the linked queue itself unflagged: %v %q, want a line with %q", err, lines, want)
	}
}

// clearDirsync takes the directory-sync flag off dir.
func clearDirsync(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	f, _ := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(f&^fsDirsyncFL)); err != nil {
		t.Fatal(err)
	}
}
