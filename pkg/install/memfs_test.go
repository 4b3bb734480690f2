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

// fakeMemoryFS makes fsMagic give magic for the directories whose path
// ends with one of suffixes (every directory when there is none), and the
// real type for the others.
func fakeMemoryFS(t *testing.T, magic uint32, suffixes ...string) {
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

// TestQueueInMemoryNote: a queue on tmpfs or ramfs, where every queued
// message is lost at a reboot, gets one note; the install succeeds. A
// queue with only one directory there names it with the count.
func TestQueueInMemoryNote(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "kept in memory") || QueueInMemory(root) != "" {
		t.Fatalf("a queue on a disk has a note:\n%s%s", log.String(), QueueInMemory(root))
	}
	total := 0
	for _, e := range Tree("") {
		if queueDir(e) {
			total++
		}
	}

	for _, tc := range []struct {
		name     string
		magic    uint32
		suffixes []string
		want     string
	}{
		{"tmpfs", unix.TMPFS_MAGIC, nil, root + "/queue is on tmpfs, a file system kept in memory: every queued message is lost when the host reboots or loses power"},
		{"ramfs", unix.RAMFS_MAGIC, nil, root + "/queue is on ramfs, a file system kept in memory"},
		{"bounce only", unix.TMPFS_MAGIC, []string{"/queue/bounce"}, fmt.Sprintf("%s/queue/bounce is on tmpfs (1 of the queue's %d directories), a file system kept in memory", root, total)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeMemoryFS(t, tc.magic, tc.suffixes...)
			log.Reset()
			if err := Install(o); err != nil {
				t.Fatalf("install on %s: %v", tc.name, err)
			}
			lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
			n := 0
			for _, l := range lines {
				if strings.Contains(l, "kept in memory") {
					n++
					if !strings.HasPrefix(l, "qmail-install: note: "+tc.want) {
						t.Errorf("note %q, want it to start with %q", l, "qmail-install: note: "+tc.want)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d notes of a queue in memory, want 1:\n%s", n, log.String())
			}
			if got := QueueInMemory(root); !strings.HasPrefix(got, tc.want) {
				t.Errorf("QueueInMemory: %q, want it to start with %q", got, tc.want)
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
