package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/test/harness"
)

// TestInstallWhileSendRuns: an administrator takes a "cp -al" snapshot
// of a running tree (every file of queue/lock gets a second link) and
// runs qmail-install -root over it, as migrating.md allows. The repair
// replaced sendmutex, trigger, sendctl and sendstatus: qmailctl then said
// "not running", the trigger no longer reached qmail-send, and a start
// ran a second qmail-send on the same queue. Now those whose owner and
// mode are right are left as they are (exit 0); those that must change
// are left while qmail-send runs (same file), with a word to stop it,
// and the run exits 111; qmail-send goes on as before. Stopped, a re-run
// replaces them.
func TestInstallWhileSendRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("a repair as root needs root")
	}
	tr := harness.Install(t)
	// A local part that lands in the alias Maildir.
	var st syscall.Stat_t
	if err := syscall.Stat(tr.Path("alias"), &st); err != nil {
		t.Fatal(err)
	}
	dq := tr.Path("alias", ".qmail-qa")
	if err := os.WriteFile(dq, []byte("./Maildir/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(dq, int(st.Uid), int(st.Gid))
	sys := tr.Start(t, "./Maildir/")
	pid := sys.Pid()

	held := []string{"sendmutex", "sendstatus", "trigger", "sendctl"}
	lock := func(n string) string { return tr.Path("queue", "lock", n) }
	ino := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	snap := harness.TempRoot(t)
	before := map[string]uint64{}
	for _, n := range held {
		if err := os.Link(lock(n), filepath.Join(snap, n)); err != nil {
			t.Fatal(err)
		}
		before[n] = ino(lock(n))
	}

	out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root)
	if code != 0 || strings.Contains(out, "hard links") {
		t.Errorf("repair of right files while qmail-send runs: exit %d, want 0\n%s", code, out)
	}
	for _, n := range held {
		if got := ino(lock(n)); got != before[n] {
			t.Errorf("%s replaced while qmail-send runs", n)
		}
	}
	// Modes to repair.
	for _, n := range []string{"sendmutex", "sendctl"} {
		os.Chmod(lock(n), 0o640)
	}
	os.Chmod(lock("sendstatus"), 0o600)
	os.Chmod(lock("trigger"), 0o662)
	wrong := map[string]string{"sendmutex": "mode 0640, want 0600", "sendctl": "mode 0640, want 0600",
		"sendstatus": "mode 0600, want 0644", "trigger": "mode 0662, want 0622"}
	out, code = tr.Run(t, nil, "qmail-install", "-root", tr.Root)
	if code != 111 {
		t.Errorf("repair while qmail-send runs: exit %d, want 111\n%s", code, out)
	}
	for _, n := range held {
		want := "queue/lock/" + n + ": 2 hard links and " + wrong[n] + "; qmail-send is running, stop it and run qmail-install again to replace it"
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
		if got := ino(lock(n)); got != before[n] {
			t.Errorf("%s replaced while qmail-send runs", n)
		}
	}
	// qmail-send is still found, and holds the lock by the name.
	if cout, code := tr.Run(t, nil, "qmailctl", "status"); code != 0 || !strings.Contains(cout, fmt.Sprintf("qmail-send: running, pid %d,", pid)) {
		t.Errorf("qmailctl status after the repair: exit %d\n%s", code, cout)
	}
	f, err := os.Open(lock("sendmutex"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("flock -n sendmutex: %v, want it held by qmail-send", err)
	}
	f.Close()
	// The trigger still wakes it (else the mail would wait for the scan
	// of the queue, 25 minutes).
	if err := tr.Queue(t, "a@example.org", []string{"qa@testhost.example"}, []byte("Subject: x\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	harness.WaitMaildir(t, 60*time.Second, tr.AliasMaildir(), 1)

	// Stopped, the repair replaces them.
	sys.Stop(t)
	out, code = tr.Run(t, nil, "qmail-install", "-root", tr.Root)
	if code != 0 || !strings.Contains(out, "queue/lock/sendmutex: 2 hard links and mode 0640, want 0600; replaced") {
		t.Errorf("repair of a stopped qmail: exit %d\n%s", code, out)
	}
	for _, n := range held {
		if got := ino(lock(n)); got == before[n] {
			t.Errorf("%s not replaced once qmail-send stopped", n)
		}
	}
	if cout, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check"); code != 0 {
		t.Errorf("-check: exit %d\n%s", code, cout)
	}
}
