package install

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/queue"
)

// The lock -check and the repair look at is the one qmail-queued takes.
func TestQueuedLockIsTheService(t *testing.T) {
	if queuedLock != queue.LockFile {
		t.Errorf("install checks %s, qmail-queued locks %s", queuedLock, queue.LockFile)
	}
}

// TestQueuedLockOfRoot: a queue/lock/queued left to root by a
// qmail-queued run by hand as root (mode 0600), which the service
// started as qmailq cannot open, is named by -check (it said nothing),
// with what it costs, and the repair gives it to qmailq, group qmail,
// mode 0600 (it left it to root), after which -check is clean.
func TestQueuedLockOfRoot(t *testing.T) {
	root, ids := rootTree(t)
	p := filepath.Join(root, queuedLock)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, 0, 0)
	want := []string{
		queuedLock + ": owner 0, want " + strconv.Itoa(ids.Qmailq.UID) + " (qmailq)",
		queuedLock + ": group 0, want " + strconv.Itoa(ids.Qmail) + " (qmail)",
		queuedLock + ": not readable and writable by qmailq (qmail-queued): mode 0600, owner root, group root " +
			"(chown qmailq; chmod 600): qmail-queued does not start, and every caller runs qmail-queue",
	}
	if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
		t.Errorf("check of root's lock:\n got %q %v\nwant %q", dev, err, want)
	}
	if err := Install(opts(t, root)); err != nil {
		t.Fatalf("repair: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil || int(st.Uid) != ids.Qmailq.UID || int(st.Gid) != ids.Qmail || st.Mode&0o7777 != 0o600 {
		t.Errorf("after the repair: uid %d gid %d mode %04o %v; want %d %d 0600", st.Uid, st.Gid, st.Mode&0o7777, err, ids.Qmailq.UID, ids.Qmail)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the repair: %q %v", dev, err)
	}
	// qmailq's, but group-readable: named and repaired as well.
	os.Chmod(p, 0o640)
	if dev, _ := Check(root); !slices.Equal(dev, []string{queuedLock + ": mode 0640, want 0600"}) {
		t.Errorf("check of mode 0640: %q", dev)
	}
}

// TestQueuedLockKind: a queue/lock/queued that is no regular file (a
// directory, a symbolic link), which qmail-queued cannot open either, is
// named by -check, to be removed (a lock has no contents to keep), and
// left alone by the repair, which says so and exits 111. A regular file
// of the wrong mode is repaired. In any tree.
func TestQueuedLockKind(t *testing.T) {
	root, o := installed(t)
	p := filepath.Join(root, queuedLock)
	const effect = "qmail-queued does not start, and every caller runs qmail-queue"
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := ids.Qmailq.UID, ids.Qmail
	if ids.Shared {
		uid, gid = os.Getuid(), os.Getgid()
	}
	os.WriteFile(p, nil, 0o644)
	os.Chmod(p, 0o644)
	os.Chown(p, uid, gid)
	if dev, _ := Check(root); !slices.Equal(dev, []string{queuedLock + ": mode 0644, want 0600"}) {
		t.Errorf("check of mode 0644: %q", dev)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil || int(st.Uid) != uid || int(st.Gid) != gid || st.Mode&0o7777 != 0o600 {
		t.Errorf("after the repair: uid %d gid %d mode %04o %v; want %d %d 0600", st.Uid, st.Gid, st.Mode&0o7777, err, uid, gid)
	}
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check after the repair: %q", dev)
	}
	os.Remove(p)
	for _, tc := range []struct {
		kind string
		make func() error
		msg  string // after the path in the repair's message
	}{
		{"directory", func() error { return os.Mkdir(p, 0o700) }, ": is a directory, want a regular file: " + effect},
		{"symbolic link", func() error { return os.Symlink("elsewhere", p) }, ": is a symbolic link, want a regular file: not followed, as "},
	} {
		if err := tc.make(); err != nil {
			t.Fatal(err)
		}
		want := []string{queuedLock + ": is a " + tc.kind + ", want a regular file: " + effect + " (remove it)"}
		if dev, _ := Check(root); !slices.Equal(dev, want) {
			t.Errorf("check of a %s:\n got %q\nwant %q", tc.kind, dev, want)
		}
		err := Install(o)
		tail := effect + "; left alone (remove it, and run qmail-install again)"
		if err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), p+tc.msg) || !strings.Contains(err.Error(), tail) {
			t.Errorf("repair of a %s: %v, want exit 111 and %q...%q", tc.kind, err, p+tc.msg, tail)
		}
		if fi, err := os.Lstat(p); err != nil || kindName(fi) != tc.kind {
			t.Errorf("the %s was changed: %v %v", tc.kind, fi, err)
		}
		os.Remove(p)
	}
	if err := Install(o); err != nil {
		t.Errorf("repair once it is gone: %v", err)
	}
}
