package test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// rcCopy writes a copy of scripts/rc/qmail with edit applied into a
// directory of the test's and returns its path: a test's own
// /etc/default/qmail, or a check changed to reach a later step.
func rcCopy(t *testing.T, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(scriptPath(t, "rc/qmail"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(harness.TempRoot(t), "qmail.rc")
	if err := os.WriteFile(p, []byte(edit(string(b))), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// rcWith runs the rc script at script with env (nothing else: no
// QMAILHOME unless env has it).
func rcWith(t *testing.T, script string, env []string, action string) (string, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", script, action)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	return combined(t, cmd)
}

// TestRcScriptLSB: the rc script's actions and exit codes as LSB has them
// (force-reload, 2 for a wrong action, 7 for reload when qmail is not
// running, 4 for a status qmailctl cannot tell); a start keeps neither
// the caller's descriptors above 2 nor its working directory (a debconf
// postinst's fd 3 waited for good); stop tells "not running" from
// "qmailctl cannot tell"; qmailctl boot with qmail-send running holds
// nothing (QA rc/systemd).
func TestRcScriptLSB(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if _, err := os.Stat("/etc/default/qmail"); err == nil {
		t.Skip("/etc/default/qmail exists and would change the script's settings")
	}
	tr := harness.Install(t)
	t.Cleanup(func() { rcRun(t, tr, "stop") })

	if out, code := rcRun(t, tr, "frobnicate"); code != 2 || !strings.Contains(out, "force-reload") {
		t.Errorf("unknown action: exit %d, want 2 and the usage: %s", code, out)
	}
	for action, want := range map[string]int{"status": 3, "reload": 7, "force-reload": 7} {
		if out, code := rcRun(t, tr, action); code != want {
			t.Errorf("%s when stopped: exit %d, want %d: %s", action, code, want, out)
		}
	}

	// Started with a pipe as descriptor 3 and a directory of the
	// caller's as its working directory.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cwd := filepath.Join(harness.TempRoot(t), "caller")
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", scriptPath(t, "rc/qmail"), "start")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + tr.Root}
	cmd.Dir = cwd
	cmd.ExtraFiles = []*os.File{w}
	out, code := combined(t, cmd)
	w.Close()
	if code != 0 || !strings.Contains(out, "hqmail started") {
		t.Fatalf("start: exit %d: %s", code, out)
	}
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(eof) }()
	select {
	case <-eof:
	case <-time.After(20 * time.Second):
		t.Errorf("the caller's descriptor 3 is still open 20s after the start: %s", holdersOf(t, r))
	}
	if pins := cwdIn(cwd); len(pins) > 0 {
		t.Errorf("processes left in the caller's working directory: %s", strings.Join(pins, ", "))
	}

	for action, want := range map[string]int{"status": 0, "reload": 0, "force-reload": 0} {
		if out, code := rcRun(t, tr, action); code != want {
			t.Errorf("%s when running: exit %d, want %d: %s", action, code, want, out)
		}
	}

	// qmail-send runs, its boot long past: boot adds no hold no link
	// event would lift.
	if out, code := tr.Run(t, nil, "qmailctl", "release", "remote"); code != 0 {
		t.Fatalf("release remote: exit %d: %s", code, out)
	}
	if out, code := tr.Run(t, nil, "qmailctl", "boot"); code != 0 || !strings.Contains(out, "already running") || fileExists(tr.Path("control", "holdremote")) {
		t.Errorf("qmailctl boot with qmail-send running: exit %d, holdremote there: %v: %s", code, fileExists(tr.Path("control", "holdremote")), out)
	}

	if out, code := rcRun(t, tr, "stop"); code != 0 || !strings.Contains(out, "hqmail stopped") {
		t.Fatalf("stop: exit %d: %s", code, out)
	}

	// sendmutex locked by a process that is no qmail-send: qmailctl
	// cannot tell, and stop must not say "not running".
	mf, err := os.OpenFile(tr.Path("queue", "lock", "sendmutex"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(mf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	out, code = rcRun(t, tr, "stop")
	mf.Close()
	if code != 1 || strings.Contains(out, "not running") || !strings.Contains(out, "cannot tell") {
		t.Errorf("stop with sendmutex locked by a stranger: exit %d: %s", code, out)
	}

	// No tree where QMAILHOME says (set in the defaults file): status
	// is unknown, stop an error, not "not running".
	script := rcCopy(t, func(s string) string {
		return strings.ReplaceAll(s, "/etc/default/qmail", filepath.Join(tr.Root, "no-defaults"))
	})
	env := []string{"QMAILHOME=" + filepath.Join(tr.Root, "nothing-here")}
	if out, code := rcWith(t, script, env, "status"); code != 4 {
		t.Errorf("status without qmailctl: exit %d, want 4: %s", code, out)
	}
	if out, code := rcWith(t, script, env, "stop"); code != 1 || strings.Contains(out, "not running") || !strings.Contains(out, "qmailctl not found") {
		t.Errorf("stop without qmailctl: exit %d, want 1: %s", code, out)
	}
}

// holdersOf names the processes that have the other end of the pipe r.
func holdersOf(t *testing.T, r *os.File) string {
	ino, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.Fd()))
	if err != nil {
		return err.Error()
	}
	var who []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); l == ino {
				cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				who = append(who, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
	return strings.Join(who, "; ")
}

// cwdIn returns the processes whose working directory is dir.
func cwdIn(dir string) []string {
	var who []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && l == dir {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			who = append(who, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return who
}

// TestRcScriptDefaults: a QMAILHOME set only in /etc/default/qmail is the
// tree the script starts and stops (its PATH and qmailctl are that
// tree's; it was built before the defaults were read, and stop said "not
// running" while qmail ran); a defaultdelivery one byte larger than an
// argument can be is refused by name; and an exec that fails all the same
// says why, not "did not start:" alone (QA rc/systemd).
func TestRcScriptDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	noDefaults := func(s string) string {
		return strings.ReplaceAll(s, "/etc/default/qmail", filepath.Join(tr.Root, "no-defaults"))
	}
	env := []string{"QMAILHOME=" + tr.Root}

	// 131072 bytes, no newline: with its NUL one more than exec takes.
	ddf := tr.Path("control", "defaultdelivery")
	if err := os.WriteFile(ddf, []byte(strings.Repeat("x", 128<<10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := rcWith(t, rcCopy(t, noDefaults), env, "start"); code != 1 || !strings.Contains(out, "larger than 131071 bytes") {
		t.Errorf("start with 131072 bytes of defaultdelivery: exit %d: %s", code, out)
	}
	// Past a check that let it through, the exec's own error is shown.
	loose := rcCopy(t, func(s string) string {
		return regexp.MustCompile(`-size \+[0-9]+[kc]`).ReplaceAllString(noDefaults(s), "-size +9999k")
	})
	if out, code := rcWith(t, loose, env, "start"); code != 1 || !strings.Contains(out, "too long") {
		t.Errorf("start whose exec fails: exit %d, want 1 and the exec's error: %s", code, out)
	}
	os.Remove(ddf)

	defaults := filepath.Join(harness.TempRoot(t), "default-qmail")
	if err := os.WriteFile(defaults, []byte("QMAILHOME="+tr.Root+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := rcCopy(t, func(s string) string { return strings.ReplaceAll(s, "/etc/default/qmail", defaults) })
	t.Cleanup(func() { rcWith(t, script, nil, "stop"); rcWith(t, rcCopy(t, noDefaults), env, "stop") })
	if out, code := rcWith(t, script, nil, "start"); code != 0 || !strings.Contains(out, "hqmail started") {
		t.Fatalf("start with QMAILHOME from the defaults file: exit %d: %s", code, out)
	}
	if out, code := rcWith(t, script, nil, "stop"); code != 0 || !strings.Contains(out, "hqmail stopped") {
		t.Errorf("stop with QMAILHOME from the defaults file: exit %d: %s", code, out)
	}
	if out, code := tr.Run(t, nil, "qmailctl", "pid"); code != 3 {
		t.Errorf("qmail-send still runs after stop: exit %d: %s", code, out)
	}
}

// TestSystemdUnitOrder: at shutdown qmail stops (waiting out its
// deliveries) before the network and remote file systems go: the unit is
// ordered after them, and the rc script's LSB header requires them for
// its start and stop (QA rc/systemd).
func TestSystemdUnitOrder(t *testing.T) {
	unit, err := os.ReadFile(scriptPath(t, "systemd/qmail.service"))
	if err != nil {
		t.Fatal(err)
	}
	after := map[string]bool{}
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "After="); ok {
			for _, u := range strings.Fields(v) {
				after[u] = true
			}
		}
	}
	for _, u := range []string{"local-fs.target", "network.target", "remote-fs.target"} {
		if !after[u] {
			t.Errorf("qmail.service is not ordered after %s", u)
		}
	}
	// Syslog tags as qmail's usual setup has them (splogger qmail), not
	// "sh", the program ExecStart runs (QA rmon: logwatch's qmail service
	// found nothing).
	for file, tag := range map[string]string{"systemd/qmail.service": "qmail", "systemd/qmail-smtpd@.service": "qmail-smtpd"} {
		u, err := os.ReadFile(scriptPath(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if s := string(u); !strings.Contains(s, "\nSyslogIdentifier="+tag+"\n") || !strings.Contains(s, "\nSyslogFacility=mail\n") {
			t.Errorf("%s: no SyslogIdentifier=%s and SyslogFacility=mail", file, tag)
		}
	}
	rc, err := os.ReadFile(scriptPath(t, "rc/qmail"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(rc), "\n") {
		for _, key := range []string{"# Required-Start:", "# Required-Stop:"} {
			if v, ok := strings.CutPrefix(l, key); ok {
				f := " " + strings.Join(strings.Fields(v), " ") + " "
				for _, fac := range []string{"$local_fs", "$remote_fs", "$network", "$syslog"} {
					if !strings.Contains(f, " "+fac+" ") {
						t.Errorf("rc script's %s lacks %s", key[2:], fac)
					}
				}
			}
		}
	}
}
