package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/test/harness"
	"golang.org/x/sys/unix"
)

// rcRun runs scripts/rc/qmail with QMAILHOME set to the tree.
func rcRun(t *testing.T, tr *harness.Tree, action string) (string, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", scriptPath(t, "rc/qmail"), action)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + tr.Root}
	return combined(t, cmd)
}

// combined runs cmd and returns its combined output and exit code; a
// program that cannot be run fails the test.
func combined(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestRcScript: the rc script starts qmail (holding remote delivery, as at
// boot), its restart waits for a delivery in progress to finish instead of
// finding the old qmail-send still there and leaving none running, stop
// waits too, and a start that fails says so and why.
func TestRcScript(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if _, err := os.Stat("/etc/default/qmail"); err == nil {
		t.Skip("/etc/default/qmail exists and would change the script's settings")
	}
	tr := harness.Install(t)
	dir := filepath.Join(harness.TempRoot(t), "out")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	count := filepath.Join(dir, "count")
	aliasWrite(t, tr, ".qmail-slow", "|sleep 3; echo x >> "+count+"\n", 0o644)
	t.Cleanup(func() { rcRun(t, tr, "stop") })

	out, code := rcRun(t, tr, "start")
	if code != 0 || !strings.Contains(out, "hqmail started") {
		t.Fatalf("start: exit %d: %s", code, out)
	}
	if _, err := os.Stat(tr.Path("control", "holdremote")); err != nil {
		t.Errorf("start did not hold remote delivery as at boot: %v", err)
	}
	pid1 := sendstatus(tr)["pid"]
	if err := tr.Queue(t, "a@testhost.example", []string{"slow@testhost.example"}, []byte("Subject: slow\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, func() bool { return len(tr.QueueFiles("local")) == 1 })
	time.Sleep(500 * time.Millisecond) // the delivery is sleeping now
	if fileExists(count) {
		t.Fatalf("the slow delivery finished before the restart")
	}
	out, code = rcRun(t, tr, "restart")
	if code != 0 || !strings.Contains(out, "hqmail stopped") || !strings.Contains(out, "hqmail started") {
		t.Fatalf("restart: exit %d: %s", code, out)
	}
	if pid2 := sendstatus(tr)["pid"]; pid2 == pid1 {
		t.Errorf("restart: qmail-send pid still %s", pid1)
	}
	if out, code := tr.Run(t, nil, "qmailctl", "pid"); code != 0 {
		t.Fatalf("after restart qmail-send is not running: %s", out)
	}
	harness.WaitFor(t, 30*time.Second, func() bool { return fileExists(count) })
	out, code = rcRun(t, tr, "stop")
	if code != 0 || !strings.Contains(out, "hqmail stopped") {
		t.Fatalf("stop: exit %d: %s", code, out)
	}
	if b, _ := os.ReadFile(count); string(b) != "x\n" {
		t.Errorf("the slow delivery ran %d times, want once", strings.Count(string(b), "x"))
	}
	if out, code := rcRun(t, tr, "stop"); code != 0 || !strings.Contains(out, "not running") {
		t.Errorf("stop when stopped: exit %d: %s", code, out)
	}

	// A start that fails: the reason is shown, the exit is not 0.
	if err := os.Rename(tr.Bin("qmail-lspawn"), tr.Bin("qmail-lspawn.away")); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(tr.Bin("qmail-lspawn.away"), tr.Bin("qmail-lspawn"))
	if out, code := rcRun(t, tr, "start"); code == 0 || !strings.Contains(out, "did not start") || !strings.Contains(out, "qmail-lspawn") {
		t.Errorf("failed start: exit %d: %s", code, out)
	}
	os.Rename(tr.Bin("qmail-lspawn.away"), tr.Bin("qmail-lspawn"))

	// qmail-send refuses (its mutex is held by another process): its
	// alert goes to syslog, so the script says what it can see.
	mf, err := os.OpenFile(tr.Path("queue", "lock", "sendmutex"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	if err := unix.Flock(int(mf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if out, code := rcRun(t, tr, "start"); code == 0 || !strings.Contains(out, "did not start") || !strings.Contains(out, "sendmutex is locked") {
		t.Errorf("start with the mutex held: exit %d: %s", code, out)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestRcScriptAlertsToSyslog: qmail-start's alerts after the start (here:
// qmail-queued killed and started again) reach syslog, tagged qmail-start,
// where the rc script used to leave them in a temporary file it had
// deleted (upg3 QA).
func TestRcScriptAlertsToSyslog(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if _, err := os.Stat("/etc/default/qmail"); err == nil {
		t.Skip("/etc/default/qmail exists and would change the script's settings")
	}
	tr := harness.Install(t)
	sock := filepath.Join(harness.TempRoot(t), "log.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o666) // splogger runs as qmaill
	var got testutil.SyncBuffer
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ln.Read(b)
			if err != nil {
				return
			}
			got.Write(append(b[:n:n], '\n'))
		}
	}()
	run := func(action string) (string, int) {
		cmd := exec.Command("/bin/sh", scriptPath(t, "rc/qmail"), action)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + tr.Root, "SPLOGGER_SOCKET=" + sock}
		return combined(t, cmd)
	}
	t.Cleanup(func() { run("stop") })
	if out, code := run("start"); code != 0 {
		t.Fatalf("start: exit %d: %s", code, out)
	}
	var queued int
	harness.WaitFor(t, 30*time.Second, func() bool { queued = pidOf(tr.Bin("qmail-queued")); return queued > 0 })
	if err := syscall.Kill(queued, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, func() bool {
		return strings.Contains(got.String(), "qmail-start: alert: qmail-queued was killed by signal 9")
	})
}

// pidOf returns the pid of a process running the program at path, or 0.
func pidOf(path string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == path {
			return pid
		}
	}
	return 0
}
