package sendlock

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestLocateOtherNamespace: qmail-send runs in a pid namespace of its own
// (qmail-start under unshare -p -f --mount-proc, a container) and writes
// the pid it sees there (13), while /proc/locks shows the holder as the
// caller sees it (4935). The holder counts only when it runs in another
// pid namespace and is 13 in its own; then 4935 is the pid to signal
// (ctr QA: qmailctl on the host said "stale pid file" and signalled
// nobody). /proc is a fake one here: ns/pid files whose inodes stand for
// the namespaces, status files with the NSpid line.
func TestLocateOtherNamespace(t *testing.T) {
	savedLocks, savedProc, savedWait := procLocks, procDir, pidWait
	t.Cleanup(func() { procLocks, procDir, pidWait = savedLocks, savedProc, savedWait })
	pidWait = 0 // a refusal is not waited on here

	root := tree(t, t.TempDir())
	mutex := filepath.Join(root, MutexFile)
	if err := os.WriteFile(mutex, []byte("13\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(mutex)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Held by this process on its own open of the file: Locate's shared
	// lock conflicts with it; who holds it is what the fake /proc says.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	fake := t.TempDir()
	procLocks = filepath.Join(fake, "locks")
	procDir = fake
	// The lock on this file's device (as /proc/locks prints it: hex),
	// and one on another device with the same inode number, whose holder
	// (4936) must never be taken (rinst QA).
	locks := fmt.Sprintf("1: FLOCK  ADVISORY  WRITE 4936 %02x:%02x:%d 0 EOF\n2: FLOCK  ADVISORY  WRITE 4935 %02x:%02x:%d 0 EOF\n",
		unix.Major(uint64(st.Dev))+1, unix.Minor(uint64(st.Dev)), st.Ino, unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	if err := os.WriteFile(procLocks, []byte(locks), 0o444); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(fake, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	write("self/ns/pid", "")
	// 4935 runs as the tree's user (a tree without etc/ids: the owner of
	// its root, this process's uid), unless a case says otherwise.
	me := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d\n", os.Geteuid(), os.Geteuid(), os.Geteuid(), os.Geteuid())
	other := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d\n", os.Geteuid()+1, os.Geteuid()+1, os.Geteuid()+1, os.Geteuid()+1)
	half := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d\n", os.Geteuid(), os.Geteuid()+1, os.Geteuid(), os.Geteuid())
	// 4936, on the other device, names itself 13 in its namespace and runs
	// as the tree's user: only the device tells it apart.
	write("4936/ns/pid", "")
	write("4936/status", "NSpid:\t4936\t13\n"+me)

	for _, c := range []struct {
		name   string
		ns     string // "same", "other" or "" (unreadable)
		status string // 4935's status file; "" for none
		want   int    // 0: refused
		uid    bool   // refused for its uid, not its pid
	}{
		{"same namespace", "same", "Name:\tqmail-send\nNSpid:\t4935\n" + me, 0, false},
		{"same namespace, NSpid names the file's pid", "same", "NSpid:\t4935\t13\n" + me, 0, false},
		{"other namespace, NSpid matches", "other", "Name:\tqmail-send\nNSpid:\t4935\t13\nNSpgid:\t4935\t13\n" + me, 4935, false},
		{"other namespace, nested, NSpid matches", "other", "NSpid:\t4935\t77\t13\n" + me, 4935, false},
		{"other namespace, NSpid matches, another uid", "other", "NSpid:\t4935\t13\n" + other, 0, true},
		{"other namespace, NSpid matches, another effective uid", "other", "NSpid:\t4935\t13\n" + half, 0, true},
		{"other namespace, NSpid matches, no Uid line", "other", "NSpid:\t4935\t13\n", 0, true},
		{"other namespace, NSpid differs", "other", "NSpid:\t4935\t14\n", 0, false},
		{"other namespace, NSpid outer field matches only", "other", "NSpid:\t4935\t13\t2\n", 0, false},
		{"other namespace, no NSpid line", "other", "Name:\tqmail-send\n", 0, false},
		{"other namespace, no status", "other", "", 0, false},
		{"namespace unreadable", "", "NSpid:\t4935\t13\n", 0, false},
	} {
		os.RemoveAll(filepath.Join(fake, "4935"))
		switch c.ns {
		case "same":
			os.MkdirAll(filepath.Join(fake, "4935/ns"), 0o755)
			if err := os.Link(filepath.Join(fake, "self/ns/pid"), filepath.Join(fake, "4935/ns/pid")); err != nil {
				t.Fatal(err)
			}
		case "other":
			write("4935/ns/pid", "")
		}
		if c.status != "" {
			write("4935/status", c.status)
		}
		p, err := Find(root)
		if c.want != 0 {
			if err != nil || p.PID != c.want || p.Named != 13 {
				t.Errorf("%s: %+v, %v; want pid %d named 13", c.name, p, err, c.want)
			}
			if pid, err := Locate(root); err != nil || pid != c.want {
				t.Errorf("%s: Locate = %d, %v; want %d", c.name, pid, err, c.want)
			}
			continue
		}
		want := "names pid 13 but the lock is held by pid 4935; stale pid file, not signalling anyone"
		if c.uid {
			want = "is locked by pid 4935, which "
		}
		if err == nil || !strings.Contains(err.Error(), want) || p.PID != 0 {
			t.Errorf("%s: %+v, %v; want the refusal %q", c.name, p, err, want)
		}
	}
}

// TestLocateInPidNamespace: the qmail-send stand-in run, as in the
// finding, under unshare -p -f --mount-proc, not as the namespace's pid 1
// (qmail-start is): Locate finds it by its pid as this process sees it,
// and a signal there reaches it. Needs root (a pid namespace).
func TestLocateInPidNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pid namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	root := tree(t, t.TempDir())
	mutex := filepath.Join(root, MutexFile)
	if err := os.WriteFile(mutex, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	send := filepath.Join(root, "bin", "qmail-send")
	testutil.CopyTestBinary(t, send)
	// sh is the namespace's pid 1 and stays (the command is not its
	// last word); --kill-child takes the namespace down with unshare
	// when the test kills it.
	wrapper := filepath.Join(t.TempDir(), "in-namespace")
	script := "#!/bin/sh\nexec " + unshare + ` --kill-child -p -f --mount-proc sh -c '"$@"; exit $?' sh ` + send + ` "$@"` + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	probe := exec.Command(unshare, "-p", "-f", "--mount-proc", "true")
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("no pid namespace here: %v %s", err, out)
	}
	cmd := testutil.StartLocker(t, wrapper, mutex)
	b, err := os.ReadFile(mutex)
	if err != nil {
		t.Fatal(err)
	}
	named := strings.TrimSpace(string(b))
	p, err := Find(root)
	if err != nil {
		t.Fatalf("Find: %v (the file names %s)", err, named)
	}
	if fmt.Sprint(p.Named) != named || p.PID == p.Named || p.PID <= 1 {
		t.Fatalf("Find = %+v; want the file's %s as Named and the pid seen here as PID", p, named)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
	if err != nil || exe != send {
		t.Fatalf("pid %d runs %q (%v), not %s", p.PID, exe, err, send)
	}
	if err := unix.Kill(p.PID, unix.SIGALRM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).ExitStatus() != 42 {
			t.Errorf("the stand-in after SIGALRM: %v; want exit 42", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the stand-in did not exit on SIGALRM within 10 s")
	}
}

// TestRunsAsSendStatus: a status file that cannot be read (/proc mounted
// hidepid) lets an ordinary user's check pass, as it cannot signal
// another user's process anyway, and refuses root's; one read with no
// uid in it is refused for everyone (an ordinary user let it pass).
func TestRunsAsSendStatus(t *testing.T) {
	savedProc := procDir
	t.Cleanup(func() { procDir = savedProc })
	procDir = t.TempDir()
	root := tree(t, t.TempDir())
	me := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d\n", os.Geteuid(), os.Geteuid(), os.Geteuid(), os.Geteuid())
	unreadable := "" // an ordinary user's pass
	if os.Geteuid() == 0 {
		unreadable = "unreadable"
	}
	for _, c := range []struct {
		name   string
		status string // "" for none
		want   string // "" for nil
	}{
		{"its uid", "Name:\tqmail-send\n" + me, ""},
		{"no Uid line", "Name:\tqmail-send\nNSpid:\t4935\n", "shows none"},
		{"a Uid line without ids", "Uid:\t\n", "shows none"},
		{"unreadable", "", unreadable},
	} {
		dir := filepath.Join(procDir, "4935")
		os.RemoveAll(dir)
		if c.status != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "status"), []byte(c.status), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		err := runsAsSend(root, 4935)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s (euid %d): %v; want %q", c.name, os.Geteuid(), err, c.want)
		}
	}
}
