package install

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeFS makes fsMagic give magic for the directories whose path ends
// with one of suffixes (every directory when there is none), and the type
// it gave before for the others.
func fakeFS(t *testing.T, magic uint32, suffixes ...string) {
	t.Helper()
	real := fsMagic
	t.Cleanup(func() { fsMagic = real })
	fsMagic = func(fd int) (uint32, error) {
		p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil {
			return 0, err
		}
		for _, s := range suffixes {
			if strings.HasSuffix(p, s) {
				return magic, nil
			}
		}
		if len(suffixes) == 0 {
			return magic, nil
		}
		return real(fd)
	}
}

// TestQueueNotOnDiskNote: a queue on tmpfs or ramfs, where every queued
// message is lost at a reboot, or on a network or FUSE file system, gets
// one note per kind; the install succeeds. A queue with only some of its
// directories there names the first with the count.
func TestQueueNotOnDiskNote(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "put the queue on a") || len(QueueNotOnDisk(root)) != 0 {
		t.Fatalf("a queue on a disk has a note:\n%s%q", log.String(), QueueNotOnDisk(root))
	}
	total := 0
	for _, e := range Tree("") {
		if queueDir(e) {
			total++
		}
	}
	memory := root + "/queue is on tmpfs, a file system kept in memory: every queued message is lost when the host reboots or loses power"

	for _, tc := range []struct {
		name string
		fake func(t *testing.T)
		want []string // the notes' beginnings, in order
	}{
		{"tmpfs", func(t *testing.T) { fakeFS(t, unix.TMPFS_MAGIC) }, []string{memory}},
		{"ramfs", func(t *testing.T) { fakeFS(t, unix.RAMFS_MAGIC) }, []string{root + "/queue is on ramfs, a file system kept in memory"}},
		{"bounce only", func(t *testing.T) { fakeFS(t, unix.TMPFS_MAGIC, "/queue/bounce") },
			[]string{fmt.Sprintf("%s/queue/bounce is on tmpfs (1 of the queue's %d directories), a file system kept in memory", root, total)}},
		{"nfs", func(t *testing.T) { fakeFS(t, unix.NFS_SUPER_MAGIC) },
			[]string{root + "/queue is on nfs, a network file system: queued mail is kept only as well as its server keeps what is flushed"}},
		{"cifs", func(t *testing.T) { fakeFS(t, cifsMagic) }, []string{root + "/queue is on smb, a network file system"}},
		{"fuse", func(t *testing.T) { fakeFS(t, unix.FUSE_SUPER_MAGIC) },
			[]string{root + "/queue is on fuse, a file system run by a program in user space: queued mail is kept only as well as that program keeps what is flushed"}},
		{"nfs with a tmpfs on bounce", func(t *testing.T) {
			fakeFS(t, unix.NFS_SUPER_MAGIC)
			fakeFS(t, unix.TMPFS_MAGIC, "/queue/bounce")
		}, []string{
			fmt.Sprintf("%s/queue/bounce is on tmpfs (1 of the queue's %d directories), a file system kept in memory", root, total),
			fmt.Sprintf("%s/queue is on nfs (%d of the queue's %d directories), a network file system", root, total-1, total),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fake(t)
			log.Reset()
			if err := Install(o); err != nil {
				t.Fatalf("install on %s: %v", tc.name, err)
			}
			var notes []string
			for _, l := range strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n") {
				if strings.Contains(l, "put the queue on a") {
					notes = append(notes, l)
				}
			}
			if len(notes) != len(tc.want) {
				t.Fatalf("%d notes of a queue not on a disk, want %d:\n%s", len(notes), len(tc.want), log.String())
			}
			got := QueueNotOnDisk(root)
			if len(got) != len(tc.want) {
				t.Fatalf("QueueNotOnDisk: %q, want %d notes", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(notes[i], "qmail-install: note: "+w) {
					t.Errorf("note %q, want it to start with %q", notes[i], "qmail-install: note: "+w)
				}
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("QueueNotOnDisk: %q, want it to start with %q", got[i], w)
				}
			}
		})
	}
}

// TestQueueOnRealTmpfs: the statfs magic numbers, on a tmpfs mounted for
// the test (root only).
func TestQueueOnRealTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if testing.Short() {
		t.Skip("mounts a tmpfs; skipped under -short")
	}
	dir := searchableDir(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "hqmail-test", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	root := filepath.Join(dir, "q")
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	want := "qmail-install: note: " + root + "/queue is on tmpfs, a file system kept in memory"
	if !strings.Contains(log.String(), want) {
		t.Errorf("install on a tmpfs said:\n%s\nwant a line starting %q", log.String(), want)
	}
}
