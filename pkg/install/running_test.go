package install

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

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
// and the trigger one no one read. Each is named, neither replaced nor
// chowned, and the run exits 111; tcpto, a cache, is replaced. Once
// qmail-send is stopped, a run replaces them.
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
	// Something to chown: the repair must not, through this name.
	os.Chown(lock("sendstatus"), 0, 0)
	stop := fakeSend(t, root)

	err := Install(o)
	if err == nil || qerr.ExitCode(err) != 111 {
		t.Fatalf("repair while qmail-send runs: %v (exit %d), want exit 111", err, qerr.ExitCode(err))
	}
	for _, n := range held {
		want := lock(n) + ": 2 hard links; qmail-send is running, stop it and run qmail-install again to replace it"
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
	if !strings.Contains(log.String(), "queue/lock/tcpto: 2 hard links; replaced") {
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

// TestRepairKeepsRecordWrittenMeanwhile: holdperiods and heldmsgs are
// replaced while qmail-send runs (every writer renames a new file into
// place, none writes in place); one qmail-send renamed in while the
// repair made its replacement is kept, not overwritten with the older
// contents the repair read, and the run asks for another.
func TestRepairKeepsRecordWrittenMeanwhile(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	t.Cleanup(func() { testHook = nil })
	hp := filepath.Join(root, "queue", "bounce", "holdperiods")
	os.WriteFile(hp, []byte("remote 1 2\n"), 0o600)
	os.Chown(hp, ids.Qmails.UID, ids.Qmail)
	if err := os.Link(hp, filepath.Join(searchableDir(t), "holdperiods")); err != nil {
		t.Fatal(err)
	}
	fakeSend(t, root)
	testHook = func(step, rel string) {
		if step == "rename" && rel == "queue/bounce/holdperiods" {
			testHook = nil
			// qmail-send records a new period (qhome.ReplaceFile).
			os.WriteFile(hp+".qmail-send", []byte("remote 1 2\nlocal 3 0\n"), 0o600)
			os.Chown(hp+".qmail-send", ids.Qmails.UID, ids.Qmail)
			os.Rename(hp+".qmail-send", hp)
		}
	}
	err := Install(o)
	want := hp + ": 2 hard links; it was replaced by another meanwhile, which was left as it is: run qmail-install again"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
	if b, _ := os.ReadFile(hp); string(b) != "remote 1 2\nlocal 3 0\n" {
		t.Errorf("holdperiods now holds %q, not what qmail-send wrote", b)
	}
	if err := Install(o); err != nil {
		t.Errorf("the run again: %v", err)
	}
}
