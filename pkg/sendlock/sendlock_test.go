package sendlock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
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
