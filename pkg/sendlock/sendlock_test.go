package sendlock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func init() { testutil.ActAsLocker() }

// tree makes ROOT/queue/lock and ROOT/bin under dir.
func tree(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range []string{"queue/lock", "bin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLocateOtherTree: two trees whose sendmutex is one file (hard
// links, as cp -al makes): the qmail-send of the first holds its lock;
// the second does not take that qmail-send for its own (reg14 QA:
// qmailctl status on the copy reported the other tree's qmail-send as
// running, and a hold there would have signalled it).
func TestLocateOtherTree(t *testing.T) {
	dir := t.TempDir()
	a, b := tree(t, filepath.Join(dir, "a")), tree(t, filepath.Join(dir, "b"))
	mutex := filepath.Join(a, MutexFile)
	if err := os.WriteFile(mutex, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(mutex, filepath.Join(b, MutexFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Locate(a); err != ErrNotRunning {
		t.Fatalf("nothing locked: %v", err)
	}
	send := filepath.Join(a, "bin", "qmail-send")
	testutil.CopyTestBinary(t, send)
	cmd := testutil.StartLocker(t, send, mutex)
	if pid, err := Locate(a); err != nil || pid != cmd.Process.Pid {
		t.Errorf("its own tree: %d, %v; want %d", pid, err, cmd.Process.Pid)
	}
	if pid, err := Locate(b); err == nil || !strings.Contains(err.Error(), "of the tree "+a) {
		t.Errorf("the other tree: %d, %v; want an error naming %s", pid, err, a)
	}
	// The program replaced under the running one (make install over a
	// running system: /proc/PID/exe reads "... (deleted)"): still known
	// as the first tree's (docs2 QA: taken for the copy's own).
	if err := os.WriteFile(send+".new", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(send+".new", send); err != nil {
		t.Fatal(err)
	}
	if pid, err := Locate(b); err == nil || !strings.Contains(err.Error(), "of the tree "+a) {
		t.Errorf("the other tree, its qmail-send replaced: %d, %v; want an error naming %s", pid, err, a)
	}
}

// TestLocateWhileStarting: a qmail-send has taken the lock but not yet
// written its pid (the file is empty, or names the last one): Locate
// waits for the pid rather than failing (a qmailctl run by a link hook
// while qmail-send starts exited 111 "stale pid file" although the
// flag it changed was applied). A lock whose holder never names itself
// is still an error once the wait is over.
func TestLocateWhileStarting(t *testing.T) {
	for _, old := range []string{"", "1234567\n"} {
		root := tree(t, t.TempDir())
		mutex := filepath.Join(root, MutexFile)
		if err := os.WriteFile(mutex, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(mutex, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A lock of this process's own, on its own open file: Locate's
		// shared lock on another open of the file conflicts with it.
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		written := make(chan struct{})
		go func() {
			defer close(written)
			time.Sleep(100 * time.Millisecond)
			f.Truncate(0)
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}()
		pid, err := Locate(root)
		<-written
		if err != nil || pid != os.Getpid() {
			t.Errorf("old contents %q: Locate = %d, %v; want %d", old, pid, err, os.Getpid())
		}
		f.Close()
	}

	saved := pidWait
	t.Cleanup(func() { pidWait = saved })
	pidWait = 100 * time.Millisecond
	root := tree(t, t.TempDir())
	mutex := filepath.Join(root, MutexFile)
	if err := os.WriteFile(mutex, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(mutex, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if pid, err := Locate(root); err == nil || !strings.Contains(err.Error(), "holds no valid pid") {
		t.Errorf("a holder that never names itself: %d, %v; want the no-valid-pid error", pid, err)
	}
}

// TestLocateHolderUID: the holder of the lock counts as qmail-send only
// when it runs as qmails of the tree's etc/ids. qmailq owns queue/lock: it
// can put its own pid into sendmutex and lock the file itself, and was
// then taken for qmail-send (rinst QA: qmailctl pid named it, flush
// signalled it). The stand-in runs under setpriv as the uid the case
// gives; needs root.
func TestLocateHolderUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the qmail-send stand-in as another uid")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv(1)")
	}
	const qmails, qmailq, gid = 64231, 64232, 64230
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := tree(t, filepath.Join(dir, "q"))
	ids := qhome.SharedIDs(qmails, gid)
	ids.Shared = false
	ids.Qmailq = qhome.User{UID: qmailq, GID: gid}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "bin", "qmail-send")
	testutil.CopyTestBinary(t, prog)
	mutex := filepath.Join(root, MutexFile)
	for _, c := range []struct {
		name string
		uid  int
		ok   bool
	}{
		{"qmails", qmails, true},
		{"qmailq", qmailq, false},
		{"root", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(mutex)
			if err := os.WriteFile(mutex, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(mutex, c.uid, gid); err != nil {
				t.Fatal(err)
			}
			wrapper := filepath.Join(t.TempDir(), "as-"+c.name)
			script := fmt.Sprintf("#!/bin/sh\nexec %s --reuid=%d --regid=%d --clear-groups %s \"$@\"\n", setpriv, c.uid, gid, prog)
			if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := testutil.StartLocker(t, wrapper, mutex)
			pid, err := Locate(root)
			if c.ok {
				if err != nil || pid != cmd.Process.Pid {
					t.Errorf("Locate = %d, %v; want %d", pid, err, cmd.Process.Pid)
				}
				return
			}
			want := fmt.Sprintf("is locked by pid %d, which runs as uid %d (effective %d), not as qmail-send's uid %d; not qmail-send",
				cmd.Process.Pid, c.uid, c.uid, qmails)
			if err == nil || !strings.Contains(err.Error(), want) || pid != 0 {
				t.Errorf("Locate = %d, %v; want the refusal %q", pid, err, want)
			}
		})
	}
}
