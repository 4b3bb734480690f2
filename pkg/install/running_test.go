package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// fakeSend takes the flock on queue/lock/sendmutex as a running
// qmail-send holds it, until the returned function (also run at cleanup)
// gives it back.
func fakeSend(t *testing.T, root string) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, "queue", "lock", "sendmutex"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	stop := func() { f.Close() }
	t.Cleanup(stop)
	return stop
}

// sendLocked reports whether queue/lock/sendmutex, by its name now, is
// locked (as qmailctl and a starting qmail-send ask).
func sendLocked(t *testing.T, root string) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "queue", "lock", "sendmutex"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return err == unix.EWOULDBLOCK
}

// TestRepairLeavesLocksOfRunningSend: a repair while qmail-send runs (a
// "cp -al" snapshot gave every file of queue/lock a second link) leaves
// the files qmail-send holds open: replaced, sendmutex was a file no one
// locked (qmailctl said "not running", a start ran a second qmail-send),
// and the trigger one no one read. Those whose owner and mode are right
// are left as they are, and the run succeeds; those that must change are
// named, neither replaced nor chowned, and the run exits 111; tcpto, a
// cache, is replaced. Once qmail-send is stopped, a run replaces them.
func TestRepairLeavesLocksOfRunningSend(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	lock := func(n string) string { return filepath.Join(root, "queue", "lock", n) }
	stat := func(p string) syscall.Stat_t {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	held := []string{"sendmutex", "sendstatus", "trigger", "sendctl"}
	snap := searchableDir(t)
	ino := map[string]uint64{}
	for _, n := range append(held, "tcpto") {
		if err := os.Link(lock(n), filepath.Join(snap, n)); err != nil {
			t.Fatal(err)
		}
		ino[n] = stat(lock(n)).Ino
	}
	stop := fakeSend(t, root)
	// All right: nothing to change, nothing said.
	if err := Install(o); err != nil {
		t.Fatalf("repair of right files while qmail-send runs: %v", err)
	}
	for _, n := range append(held, "tcpto") {
		if st := stat(lock(n)); st.Ino != ino[n] || st.Nlink != 2 {
			t.Errorf("%s: changed (inode %d, was %d; %d links)", n, st.Ino, ino[n], st.Nlink)
		}
	}
	if strings.Contains(log.String(), "hard links") {
		t.Errorf("log %q", log.String())
	}
	// Something to change in each: the repair must not, through these
	// names.
	wrong := map[string]string{
		"sendmutex":  "mode 0644, want 0600",
		"sendstatus": "owner root, want qmails and group root, want qmail",
		"trigger":    "mode 0666, want 0622",
		"sendctl":    "mode 0644, want 0600",
	}
	os.Chmod(lock("sendmutex"), 0o644)
	os.Chown(lock("sendstatus"), 0, 0)
	os.Chmod(lock("trigger"), 0o666)
	os.Chmod(lock("sendctl"), 0o644)
	os.Chmod(lock("tcpto"), 0o644)

	err := Install(o)
	if err == nil || qerr.ExitCode(err) != 111 {
		t.Fatalf("repair while qmail-send runs: %v (exit %d), want exit 111", err, qerr.ExitCode(err))
	}
	for _, n := range held {
		want := lock(n) + ": 2 hard links and " + wrong[n] + "; qmail-send is running, stop it and run qmail-install again to replace it"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
		if st := stat(lock(n)); st.Ino != ino[n] || st.Nlink != 2 {
			t.Errorf("%s: replaced while qmail-send runs (inode %d, was %d; %d links)", n, st.Ino, ino[n], st.Nlink)
		}
		if strings.Contains(log.String(), n+": 2 hard links; replaced") {
			t.Errorf("log says %s was replaced: %q", n, log.String())
		}
	}
	if st := stat(lock("sendstatus")); st.Uid != 0 {
		t.Errorf("sendstatus chowned to %d through a name with another link", st.Uid)
	}
	if st := stat(lock("tcpto")); st.Ino == ino["tcpto"] || st.Nlink != 1 || int(st.Uid) != ids.Qmailr.UID {
		t.Errorf("tcpto: inode %d (was %d), %d links, uid %d", st.Ino, ino["tcpto"], st.Nlink, st.Uid)
	}
	if !strings.Contains(log.String(), "queue/lock/tcpto: 2 hard links and mode 0644, want 0664; replaced") {
		t.Errorf("log %q says nothing of tcpto", log.String())
	}
	if !sendLocked(t, root) {
		t.Errorf("sendmutex is no longer the locked one")
	}

	// A regular file where a FIFO belongs is left too while qmail-send
	// runs (it reads the one it opened).
	log.Reset()
	for _, n := range held {
		os.Remove(filepath.Join(snap, n))
	}
	os.Remove(lock("trigger"))
	os.WriteFile(lock("trigger"), nil, 0o600)
	err = Install(o)
	want := lock("trigger") + ": is a regular file, want a fifo; qmail-send is running, stop it and run qmail-install again to replace it"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("trigger a file while qmail-send runs: %v, want %q", err, want)
	}
	if st := stat(lock("trigger")); st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Errorf("trigger replaced while qmail-send runs")
	}

	// Stopped, it is repaired.
	stop()
	for _, n := range held {
		os.Link(lock(n), filepath.Join(snap, n))
	}
	os.Chmod(lock("sendmutex"), 0o644)
	os.Chown(lock("sendstatus"), 0, 0)
	os.Chmod(lock("trigger"), 0o666)
	os.Chmod(lock("sendctl"), 0o644)
	log.Reset()
	if err := Install(o); err != nil {
		t.Fatalf("repair once qmail-send stopped: %v", err)
	}
	for _, n := range held {
		if st := stat(lock(n)); st.Nlink != 1 {
			t.Errorf("%s: %d links after the repair", n, st.Nlink)
		}
	}
	if st := stat(lock("trigger")); st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		t.Errorf("trigger is no fifo after the repair")
	}
	if sendLocked(t, root) {
		t.Errorf("sendmutex still locked after the repair")
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check: %q %v", dev, err)
	}
}

// TestRepairLocksNewSendmutex: with no qmail-send running, a sendmutex
// with another link is replaced, but the repair holds the lock (the old
// file's, then the new one's, taken before its rename) until the files
// of queue/lock are done: a qmail-send starting meanwhile waits, and
// never runs on a file the repair replaces afterwards.
func TestRepairLocksNewSendmutex(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	t.Cleanup(func() { testHook = nil })
	lock := func(n string) string { return filepath.Join(root, "queue", "lock", n) }
	snap := searchableDir(t)
	for _, n := range []string{"sendmutex", "trigger"} {
		if err := os.Link(lock(n), filepath.Join(snap, n)); err != nil {
			t.Fatal(err)
		}
	}
	// Modes to repair, so that both are replaced.
	os.Chmod(lock("sendmutex"), 0o640)
	os.Chmod(lock("trigger"), 0o600)
	var old syscall.Stat_t
	syscall.Stat(lock("sendmutex"), &old)
	seen, locked := false, false
	testHook = func(step, rel string) {
		if step == "open" && rel == "queue/lock/trigger" && !seen {
			// sendmutex is done (replaced), trigger not yet.
			seen = true
			var st syscall.Stat_t
			syscall.Stat(lock("sendmutex"), &st)
			locked = st.Ino != old.Ino && sendLocked(t, root)
		}
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	testHook = nil
	if !seen || !locked {
		t.Errorf("the new sendmutex was not locked while trigger was repaired (hook ran %v)", seen)
	}
	if sendLocked(t, root) {
		t.Errorf("sendmutex still locked after the repair")
	}
	var st syscall.Stat_t
	if syscall.Stat(lock("sendmutex"), &st); st.Nlink != 1 || st.Ino == old.Ino {
		t.Errorf("sendmutex: %d links, inode %d (was %d)", st.Nlink, st.Ino, old.Ino)
	}

	// Only the trigger to replace: the lock of the sendmutex there is
	// held while the new trigger is renamed into place, and given back.
	os.Remove(filepath.Join(snap, "trigger"))
	if err := os.Link(lock("trigger"), filepath.Join(snap, "trigger")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(lock("trigger"), 0o600)
	seen, locked = false, false
	testHook = func(step, rel string) {
		if step == "rename" && rel == "queue/lock/trigger" && !seen {
			seen = true
			locked = sendLocked(t, root)
		}
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	testHook = nil
	if !seen || !locked {
		t.Errorf("sendmutex was not locked while the trigger was replaced (hook ran %v)", seen)
	}
	if sendLocked(t, root) {
		t.Errorf("sendmutex still locked after the second repair")
	}
}

// TestRepairKeepsCacheReplacedMeanwhile: a cache replaced by a rename
// between the repair's look at it and its own rename (another repair) is
// kept as that one made it, not overwritten, and the run asks for
// another. (A file with data is never replaced: TestRepairKeepsLinkedData.)
func TestRepairKeepsCacheReplacedMeanwhile(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	t.Cleanup(func() { testHook = nil })
	tcpto := filepath.Join(root, "queue", "lock", "tcpto")
	os.Chmod(tcpto, 0o644)
	if err := os.Link(tcpto, filepath.Join(searchableDir(t), "tcpto")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, TcptoSize)
	b[0] = 1
	testHook = func(step, rel string) {
		if step == "rename" && rel == "queue/lock/tcpto" {
			testHook = nil
			os.WriteFile(tcpto+".other", b, 0o664)
			os.Chown(tcpto+".other", ids.Qmailr.UID, ids.Qmail)
			os.Chmod(tcpto+".other", 0o664)
			os.Rename(tcpto+".other", tcpto)
		}
	}
	err := Install(o)
	want := tcpto + ": 2 hard links; it was replaced by another meanwhile, which was left as it is: run qmail-install again"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
	if got, _ := os.ReadFile(tcpto); !bytes.Equal(got, b) {
		t.Errorf("tcpto is not the one renamed in meanwhile")
	}
	if err := Install(o); err != nil {
		t.Errorf("the run again: %v", err)
	}
}

func init() { testutil.ActAsLocker() }

// TestRepairCopyOfRunningTree: a tree made with cp -al from a running one
// shares its lock files, and the other tree's qmail-send holds sendmutex.
// The copy's qmail-send does not run: its lock files are replaced (they
// are each tree's own; shared, the two qmail-sends exclude each other),
// the run says whose lock it saw, and the live tree keeps its files and
// its lock (reg14 QA: the repair said "qmail-send is running, stop it",
// meaning the other tree's).
func TestRepairCopyOfRunningTree(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	var log bytes.Buffer
	o.Log = &log
	live := searchableDir(t)
	liveLock := filepath.Join(live, "queue", "lock")
	if err := os.MkdirAll(liveLock, 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(live, "bin"), 0o755)
	held := []string{"sendmutex", "sendstatus", "trigger", "sendctl"}
	lock := func(n string) string { return filepath.Join(root, "queue", "lock", n) }
	for _, n := range held {
		if err := os.Link(lock(n), filepath.Join(liveLock, n)); err != nil {
			t.Fatal(err)
		}
	}
	// The live tree's qmail-send: this test binary, as its bin/qmail-send.
	send := filepath.Join(live, "bin", "qmail-send")
	testutil.CopyTestBinary(t, send)
	testutil.StartLocker(t, send, filepath.Join(liveLock, "sendmutex"))
	if err := Install(o); err != nil {
		t.Fatalf("repair of the copy: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "is a hard link shared with the tree "+live) {
		t.Errorf("log does not name the other tree:\n%s", log.String())
	}
	for _, n := range held {
		var a, b syscall.Stat_t
		syscall.Lstat(lock(n), &a)
		syscall.Lstat(filepath.Join(liveLock, n), &b)
		if a.Ino == b.Ino {
			t.Errorf("%s still shared with the live tree", n)
		}
	}
	if !sendLocked(t, live) {
		t.Error("the live tree's sendmutex is no longer locked")
	}
	if sendLocked(t, root) {
		t.Error("the copy's sendmutex is locked")
	}
}

// TestReplacedUnderSend: after an install over a running system the
// admin is told which daemons still run replaced programs (the QA upgrade
// run saw make install print only its usual text while the old qmail-send
// ran on; reg25 saw a replaced qmail-rspawn go unnamed); nothing is said
// while they run the installed files, or files of the same bytes (the
// same build installed again), or when none runs.
func TestReplacedUnderSend(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	if err := Install(opts(t, root)); err != nil {
		t.Fatal(err)
	}
	mutex := filepath.Join(root, "queue", "lock", "sendmutex")
	prog := filepath.Join(root, "bin", "qmail-rspawn")
	testutil.CopyTestBinary(t, prog)
	if note := ReplacedUnderSend(root); note != "" {
		t.Errorf("nothing running: %q", note)
	}
	cur := testutil.StartLocker(t, prog, mutex)
	if note := ReplacedUnderSend(root); note != "" {
		t.Errorf("the installed program running: %q", note)
	}
	// replace puts a new file of the given bytes in place by rename, as
	// an install does.
	replace := func(b []byte) {
		tmp := prog + ".new"
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, prog); err != nil {
			t.Fatal(err)
		}
	}
	same, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	replace(same)
	if note := ReplacedUnderSend(root); note != "" {
		t.Errorf("the same build installed again: %q", note)
	}
	replace([]byte("#!/bin/sh\n"))
	note := ReplacedUnderSend(root)
	want := fmt.Sprintf("qmail-rspawn (pid %d) still runs a program that an install has since replaced in %s: restart hqmail",
		cur.Process.Pid, filepath.Join(root, "bin"))
	if !strings.HasPrefix(note, want) {
		t.Errorf("a replaced program running: %q, want %q...", note, want)
	}
	cur.Process.Kill()
	cur.Wait()
}
