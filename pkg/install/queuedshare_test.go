package install

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/queue"
)

// listenAt binds a listening socket at p, as qmail-queued does, and
// returns its descriptor (closed at the end of the test).
func listenAt(t *testing.T, p string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	return fd
}

// reaches reports whether a connection to the socket at p is accepted
// by the listener lfd.
func reaches(t *testing.T, p string, lfd int) bool {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if unix.Connect(fd, &unix.SockaddrUnix{Name: p}) != nil {
		return false
	}
	unix.SetNonblock(lfd, true)
	defer unix.SetNonblock(lfd, false)
	c, _, err := unix.Accept(lfd)
	if err != nil {
		return false
	}
	unix.Close(c)
	return true
}

// flocked reports whether the file at p, by its name now, is locked.
func flocked(t *testing.T, p string) bool {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == unix.EWOULDBLOCK
}

func ino(t *testing.T, p string) (uint64, uint64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino, uint64(st.Nlink)
}

// copyOfLive makes the tree at root a cp -al copy of a live tree as far
// as qmail-queued goes: a tree live whose queue/lock/queued and
// public/qmail-queue are hard links to root's, its socket listening, its
// qmail-queued (this test binary, as live/bin/qmail-queued) holding the
// lock. It returns live and the listener.
func copyOfLive(t *testing.T, root string) (live string, lfd int) {
	t.Helper()
	live = searchableDir(t)
	for _, d := range []string{"queue/lock", "public", "bin"} {
		if err := os.MkdirAll(filepath.Join(live, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lfd = listenAt(t, filepath.Join(live, queuedSocket))
	if err := os.WriteFile(filepath.Join(live, queuedLock), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// qmailq's, as the service makes it: nothing but the sharing is wrong.
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(live, queuedLock), ids.Qmailq.UID, ids.Qmail)
	os.Remove(filepath.Join(root, queuedLock))
	for _, rel := range []string{queuedLock, queuedSocket} {
		if err := os.Link(filepath.Join(live, rel), filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	svc := filepath.Join(live, "bin", "qmail-queued")
	testutil.CopyTestBinary(t, svc)
	testutil.StartLocker(t, svc, filepath.Join(live, queuedLock))
	return live, lfd
}

// TestRepairCopySharesQueued: a tree copied with cp -al from a running
// one shares qmail-queued's lock and socket with it (QA: the copy's
// sendmail queued into the original tree through the shared socket, and
// the copy's qmail-queued never listened, its lock held by the
// original's; the repair left both alone and -check said nothing).
// -check names both; the repair of the copy, whose own qmail-queued does
// not run, gives it a lock of its own and removes its name of the
// socket, saying whose lock it saw; the live tree keeps its lock, held,
// and its socket, still reaching its service. -check is clean after.
func TestRepairCopySharesQueued(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	live, lfd := copyOfLive(t, root)

	dev, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		queuedLock + ": 2 hard links, want 1: shared with another tree (a copy made with cp -al): each tree's qmail-queued needs a lock of its own",
		queuedSocket + ": 2 hard links, want 1: a socket shared with another tree (a copy made with cp -al): the programs of both trees that queue mail",
	} {
		if !slices.ContainsFunc(dev, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("check %q lacks %q...", dev, want)
		}
	}
	liveLock, _ := ino(t, filepath.Join(live, queuedLock))
	if err := Install(o); err != nil {
		t.Fatalf("repair of the copy: %v\n%s", err, log.String())
	}
	for _, want := range []string{
		"qmail-install: warning: " + queuedLock + ": 2 hard links: shared with the tree " + live + ", whose qmail-queued (pid ",
		"qmail-install: warning: " + queuedSocket + ": 2 hard links: a socket shared with another tree",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if i, n := ino(t, filepath.Join(root, queuedLock)); i == liveLock || n != 1 {
		t.Errorf("the copy's lock: inode %d (the live one's %d), %d links", i, liveLock, n)
	}
	var st syscall.Stat_t
	syscall.Lstat(filepath.Join(root, queuedLock), &st)
	if ids := o.UIDBase; st.Mode&0o7777 != 0o600 || int(st.Uid) != ids+4 || int(st.Gid) != ids {
		t.Errorf("the copy's new lock: uid %d gid %d mode %04o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if flocked(t, filepath.Join(root, queuedLock)) {
		t.Error("the copy's new lock is still locked after the repair")
	}
	if i, n := ino(t, filepath.Join(live, queuedLock)); i != liveLock || n != 1 || !flocked(t, filepath.Join(live, queuedLock)) {
		t.Errorf("the live tree's lock: inode %d (was %d), %d links, or no longer locked", i, liveLock, n)
	}
	if _, err := os.Lstat(filepath.Join(root, queuedSocket)); err == nil {
		t.Error("the copy still has the live tree's socket")
	}
	if !reaches(t, filepath.Join(live, queuedSocket), lfd) {
		t.Error("the live tree's socket no longer reaches its service")
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the repair: %q %v", dev, err)
	}
}

// TestRepairOwnQueuedShared: the same sharing, repaired in the tree whose
// own qmail-queued runs (the original): its lock and its socket are left
// as they are (replaced, the lock would let a second qmail-queued of the
// tree start; removed, the socket would leave the running service
// unreachable), the run says so and succeeds; the copy's repair is
// what ends the sharing. With no qmail-queued running anywhere, both are
// the tree's to renew: the lock is replaced, the socket removed; with
// the lock missing, one is made (held while the socket goes).
func TestRepairOwnQueuedShared(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	copyTree := searchableDir(t)
	for _, d := range []string{"queue/lock", "public"} {
		os.MkdirAll(filepath.Join(copyTree, d), 0o755)
	}
	lfd := listenAt(t, filepath.Join(root, queuedSocket))
	lock := filepath.Join(root, queuedLock)
	os.WriteFile(lock, nil, 0o600)
	os.Chown(lock, o.UIDBase+4, o.UIDBase)
	for _, rel := range []string{queuedLock, queuedSocket} {
		if err := os.Link(filepath.Join(root, rel), filepath.Join(copyTree, rel)); err != nil {
			t.Fatal(err)
		}
	}
	// This tree's qmail-queued: the test binary as root/bin/qmail-queued
	// (which the repair replaces with the program: it runs on as
	// "(deleted)").
	svc := filepath.Join(root, "bin", "qmail-queued")
	testutil.CopyTestBinary(t, svc)
	locker := testutil.StartLocker(t, svc, lock)
	lockIno, _ := ino(t, lock)
	sockIno, _ := ino(t, filepath.Join(root, queuedSocket))
	if err := Install(o); err != nil {
		t.Fatalf("repair of the tree whose qmail-queued runs: %v\n%s", err, log.String())
	}
	for _, rel := range []string{queuedLock, queuedSocket} {
		want := "qmail-install: warning: " + rel + ": 2 hard links: shared with another tree"
		if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "left as it is, as this tree's qmail-queued (pid ") {
			t.Errorf("log lacks %q ... left as it is:\n%s", want, log.String())
		}
	}
	if i, n := ino(t, lock); i != lockIno || n != 2 || !flocked(t, lock) {
		t.Errorf("the running service's lock: inode %d (was %d), %d links, or no longer locked", i, lockIno, n)
	}
	if i, _ := ino(t, filepath.Join(root, queuedSocket)); i != sockIno || !reaches(t, filepath.Join(root, queuedSocket), lfd) {
		t.Errorf("the running service's socket was changed")
	}

	// Stopped: the tree's names are renewed, the copy keeps the old ones.
	locker.Process.Kill()
	locker.Wait()
	log.Reset()
	if err := Install(o); err != nil {
		t.Fatalf("repair once stopped: %v\n%s", err, log.String())
	}
	if i, n := ino(t, lock); i == lockIno || n != 1 {
		t.Errorf("lock once stopped: inode %d (was %d), %d links", i, lockIno, n)
	}
	if _, err := os.Lstat(filepath.Join(root, queuedSocket)); err == nil {
		t.Error("the shared socket is still there once stopped")
	}
	if _, n := ino(t, filepath.Join(copyTree, queuedSocket)); n != 1 {
		t.Errorf("the copy's socket: %d links", n)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the repair: %q %v", dev, err)
	}

	// No lock, a shared socket: a lock is made (qmailq's, 0600), the
	// socket removed.
	os.Remove(lock)
	if err := os.Link(filepath.Join(copyTree, queuedSocket), filepath.Join(root, queuedSocket)); err != nil {
		t.Fatal(err)
	}
	if err := Install(o); err != nil {
		t.Fatalf("repair without a lock: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, queuedSocket)); err == nil {
		t.Error("the shared socket is still there")
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(lock, &st); err != nil || st.Mode&0o7777 != 0o600 || int(st.Uid) != o.UIDBase+4 || flocked(t, lock) {
		t.Errorf("the lock made: %v uid %d mode %04o", err, st.Uid, st.Mode&0o7777)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the repair: %q %v", dev, err)
	}

	// A lone socket (the service's own, or a stale one) and a lone lock
	// are left as they are.
	os.Remove(filepath.Join(copyTree, queuedSocket))
	lfd2 := listenAt(t, filepath.Join(root, queuedSocket))
	lockIno, _ = ino(t, lock)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if i, _ := ino(t, lock); i != lockIno || !reaches(t, filepath.Join(root, queuedSocket), lfd2) {
		t.Error("a lone lock or socket was changed")
	}
}

// TestServiceTakesOwnLock: qmail-queued itself (pkg/queue Listen), at its
// start in a tree whose lock is a hard link shared with another tree
// whose service holds it, replaces its tree's name of the lock by a file
// of its own and makes its own socket (it found the lock taken and never
// listened, and the copy's callers reached the other tree's service). A
// second service of the tree whose service holds the shared lock still
// finds it running. A shared lock nobody holds is replaced too.
func TestServiceTakesOwnLock(t *testing.T) {
	mk := func() string {
		root := t.TempDir()
		for _, d := range []string{"queue/lock", "public"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	a, b, c := mk(), mk(), mk()
	sa, la, err := queue.Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sa); unix.Close(la) })
	for _, rel := range []string{queuedLock, queuedSocket} {
		if err := os.Link(filepath.Join(a, rel), filepath.Join(b, rel)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := queue.Listen(a); !errors.Is(err, queue.ErrRunning) {
		t.Errorf("a second service of the tree holding the shared lock: %v, want ErrRunning", err)
	}
	aLock, _ := ino(t, filepath.Join(a, queuedLock))
	aSock, _ := ino(t, filepath.Join(a, queuedSocket))
	sb, lb, err := queue.Listen(b)
	if err != nil {
		t.Fatalf("the copy's service: %v", err)
	}
	if i, n := ino(t, filepath.Join(b, queuedLock)); i == aLock || n != 1 {
		t.Errorf("the copy's lock: inode %d (the other's %d), %d links", i, aLock, n)
	}
	if i, n := ino(t, filepath.Join(a, queuedLock)); i != aLock || n != 1 || !flocked(t, filepath.Join(a, queuedLock)) {
		t.Errorf("the other tree's lock: inode %d (was %d), %d links, or not locked", i, aLock, n)
	}
	if i, _ := ino(t, filepath.Join(b, queuedSocket)); i == aSock || !reaches(t, filepath.Join(b, queuedSocket), sb) {
		t.Errorf("the copy's socket is not its service's own")
	}
	if i, n := ino(t, filepath.Join(a, queuedSocket)); i != aSock || n != 1 || !reaches(t, filepath.Join(a, queuedSocket), sa) {
		t.Errorf("the other tree's socket changed")
	}
	unix.Close(sb)
	unix.Close(lb)

	// Shared, held by nobody.
	if err := os.Link(filepath.Join(b, queuedLock), filepath.Join(c, queuedLock)); err != nil {
		t.Fatal(err)
	}
	bLock, _ := ino(t, filepath.Join(b, queuedLock))
	sb, lb, err = queue.Listen(b)
	if err != nil {
		t.Fatalf("a free shared lock: %v", err)
	}
	unix.Close(sb)
	unix.Close(lb)
	if i, n := ino(t, filepath.Join(b, queuedLock)); i == bLock || n != 1 {
		t.Errorf("a free shared lock: inode %d (was %d), %d links", i, bLock, n)
	}

	// A tree moved while its service ran, then copied (regression QA):
	// the lock, held, names a path that no longer exists. That is no
	// proof of another tree's: the service holding it may be this tree's
	// own, under its old name, and a second one must not start.
	d := mk()
	sd, ld, err := queue.Listen(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sd); unix.Close(ld) })
	moved := d + ".moved"
	if err := os.Rename(d, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })
	e := mk()
	if err := os.Link(filepath.Join(moved, queuedLock), filepath.Join(e, queuedLock)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := queue.Listen(moved); !errors.Is(err, queue.ErrRunning) {
		t.Errorf("the moved tree's second service, its lock naming the old path: %v, want ErrRunning", err)
	}
}
