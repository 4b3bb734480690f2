package start

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// fakeTree makes a tree whose bin/ holds the shell scripts progs maps
// names to (no qmail-queued: qmail-start runs without it), and etc/ids
// naming the caller, so that Main runs everything as the caller.
func fakeTree(t *testing.T, progs map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ids := qhome.SharedIDs(os.Getuid(), os.Getgid()).Format()
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, script := range progs {
		if err := os.WriteFile(filepath.Join(root, "bin", name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// runMain runs Main for root in a process of its own (the test binary,
// in its own process group, killed with everything it started at the
// end) with args, and returns its exit code, standard output and
// standard error.
func runMain(t *testing.T, root string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr testutil.SyncBuffer
	cmd := startMain(t, root, &stdout, &stderr, args...)
	ws, ok := waitMain(t, cmd)
	if !ok {
		t.Fatalf("qmail-start did not exit; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	return ws.ExitStatus(), stdout.String(), stderr.String()
}

// TestHelperCrashLogged: a helper that dies of a Go fatal error (here a
// fake qmail-rspawn writing the runtime's line and exiting 2, as under
// RLIMIT_NPROC) leaves that line, after its name, in the mail log, next to qmail-send's
// "lost spawn connection", with or without a logger, and qmail-start
// names it in an alert; so does a helper killed by a signal. A helper
// that exits 0 or 111 (qmail-lspawn here) gets no alert.
func TestHelperCrashLogged(t *testing.T) {
	const fatal = "fatal error: failed to create new OS thread (have 7 already; errno=11)"
	progs := map[string]string{
		"qmail-lspawn": "cat >/dev/null\nexit 111\n",
		"qmail-rspawn": "echo '" + fatal + "' >&2\nexit 2\n",
		"qmail-clean":  "kill -KILL $$\n",
		// fd 0 is the log; fd 4 the report pipe of qmail-rspawn, at end
		// of file once it has gone.
		"qmail-send": "echo 'status: local 0/10 remote 0/20' >&0\n" +
			"read x <&4\n" +
			"echo 'alert: oh no! lost spawn connection! dying...' >&0\n" +
			"exit 111\n",
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no logger", []string{"./Maildir/"}},
		{"logger", []string{"./Maildir/", "cat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeTree(t, progs)
			code, log, stderr := runMain(t, root, tc.args...)
			if code != 111 {
				t.Errorf("exit %d, want qmail-send's 111", code)
			}
			for _, want := range []string{"qmail-rspawn: " + fatal + "\n", "lost spawn connection"} {
				if !strings.Contains(log, want) {
					t.Errorf("no %q in the log:\n%s", want, log)
				}
			}
			for _, want := range []string{
				"qmail-start: alert: qmail-rspawn exited with status 2 (2: it crashed; the trace is in its log)\n",
				"qmail-start: alert: qmail-clean was killed by signal 9",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("no %q on stderr:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "qmail-lspawn") || strings.Contains(stderr, "qmail-send") {
				t.Errorf("alert for a helper or qmail-send that exited 111:\n%s", stderr)
			}
		})
	}
}

// TestHelperLog: what a helper writes reaches the log as whole lines
// after its name: a line longer than maxHelperLine in pieces, a last line
// without newline ended with one; copied is closed at end of file.
func TestHelperLog(t *testing.T) {
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	w, copied, err := helperLog("qmail-x", log)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", maxHelperLine+10)
	w.WriteString("one\n\n" + long + "\nlast")
	w.Close()
	select {
	case <-copied:
	case <-time.After(30 * time.Second):
		t.Fatal("copy not finished at end of file")
	}
	b, err := os.ReadFile(log.Name())
	if err != nil {
		t.Fatal(err)
	}
	want := "qmail-x: one\nqmail-x: \nqmail-x: " + long[:maxHelperLine] + "\nqmail-x: " + long[maxHelperLine:] + "\nqmail-x: last\n"
	if string(b) != want {
		t.Errorf("log:\n%q\nwant\n%q", b, want)
	}
}

// TestStopSignalsNoAlert: a TERM to the whole process group (a stop)
// kills the helpers with it: no alert for them (reg16 QA: three alert
// lines for a stop that was asked for). A qmail-queued that is killed is
// named when it is started again, so that one that keeps dying is seen.
func TestStopSignalsNoAlert(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\nkill -TERM $$\n",
		"qmail-rspawn": "cat >/dev/null\nkill -TERM $$\n",
		"qmail-clean":  "cat >/dev/null\nkill -TERM $$\n",
		// Killed the first time, then runs until its stop pipe closes.
		"qmail-queued": "m=\"$0.ran\"\nif [ ! -e \"$m\" ]; then : > \"$m\"; kill -KILL $$; fi\ncat >/dev/null\n",
		// Lives long enough for qmail-queued's death to be seen, then
		// stops as after TERM.
		"qmail-send": "sleep 1.5\nexit 0\n",
	})
	code, _, stderr := runMain(t, root, "./Maildir/")
	if code != 0 {
		t.Errorf("exit %d, want qmail-send's 0", code)
	}
	if strings.Contains(stderr, "qmail-lspawn") || strings.Contains(stderr, "qmail-rspawn") || strings.Contains(stderr, "qmail-clean") {
		t.Errorf("alert for a helper ended by TERM:\n%s", stderr)
	}
	if want := "qmail-start: alert: qmail-queued was killed by signal 9 (killed); starting it again\n"; !strings.Contains(stderr, want) {
		t.Errorf("no %q on stderr:\n%s", want, stderr)
	}
}

// TestQueuedExitSaid: a qmail-queued that exits on its own while
// qmail-send runs (a TERM sent to it alone: status 0) is not started
// again, and qmail-start says so (reg17 QA: the service stayed down
// without a word).
func TestQueuedExitSaid(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-queued": "exit 0\n",
		// qmail-send runs until the test has seen the warning (or 30 s),
		// so that the warning is not raced by qmail-send's exit.
		"qmail-send": "i=0; while [ ! -e \"$0.go\" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\nexit 0\n",
	})
	var stderr testutil.SyncBuffer
	cmd := startMain(t, root, nil, &stderr, "./Maildir/")
	want := "qmail-start: warning: qmail-queued exited with status 0; not started again (callers run qmail-queue)\n"
	for i := 0; i < 3000 && !strings.Contains(stderr.String(), want); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("no %q on stderr:\n%s", want, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "qmail-send.go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ws, ok := waitMain(t, cmd); !ok || ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("qmail-start: %v (ended: %v), want qmail-send's exit 0", ws, ok)
	}
}

// startMain starts Main for root with args in a process of its own (the
// test binary, in its own process group, killed with everything it
// started at the end of the test), its standard output and error going to
// stdout and stderr.
func startMain(t *testing.T, root string, stdout, stderr io.Writer, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), mainEnv+"="+root, argsEnv+"="+strings.Join(args, " "))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	return cmd
}

// waitMain waits, at most a minute, for cmd to end and returns its wait
// status; ok is false when it did not end (its group is killed then).
func waitMain(t *testing.T, cmd *exec.Cmd) (ws syscall.WaitStatus, ok bool) {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState.Sys().(syscall.WaitStatus), true
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return 0, false
	}
}

// TestGroupTermNoQueuedWarning: a TERM to the whole process group ends
// qmail-queued too (exit 0, its stop); that is a stop, not an exit of its
// own to warn about (review: the warning came with every such stop).
func TestGroupTermNoQueuedWarning(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-queued": "trap 'exit 0' TERM\n: > \"$0.up\"\nwhile :; do sleep 0.1; done\n",
		"qmail-send":   "trap 'exit 0' TERM\n: > \"$0.up\"\nwhile :; do sleep 0.1; done\n",
	})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := startMain(t, root, nil, w, "./Maildir/")
	w.Close()
	var stderr testutil.SyncBuffer
	copied := make(chan struct{})
	go func() { io.Copy(&stderr, r); close(copied) }()
	// Both traps set before the TERM: qmail-start starts qmail-queued
	// before qmail-send, so one .up file says nothing of the other.
	for _, name := range []string{"qmail-queued", "qmail-send"} {
		up := filepath.Join(root, "bin", name+".up")
		for i := 0; i < 1500 && !fileExistsT(up); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if !fileExistsT(up) {
			t.Fatalf("%s did not start within 30s", name)
		}
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	if ws, ok := waitMain(t, cmd); !ok || ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("qmail-start: %v (ended: %v), want exit 0", ws, ok)
	}
	// Everything that had the pipe is gone with the group: the copy ends
	// with all of qmail-start's standard error read.
	select {
	case <-copied:
	case <-time.After(30 * time.Second):
		t.Error("qmail-start's standard error still open 30s after its exit")
	}
	if strings.Contains(stderr.String(), "qmail-queued exited") {
		t.Errorf("warning for a qmail-queued stopped with everything:\n%s", stderr.String())
	}
}

// TestAlertToClosedStderr: qmail-start's standard error is a pipe whose
// reader has gone (the rc script's splogger killed): an alert written
// there must not kill qmail-start with SIGPIPE (review).
func TestAlertToClosedStderr(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		// Killed the first time: an alert; then runs until its stop.
		"qmail-queued": "m=\"$0.ran\"\nif [ ! -e \"$m\" ]; then : > \"$m\"; kill -KILL $$; fi\ncat >/dev/null\n",
		"qmail-send":   "sleep 2\nexit 0\n",
	})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := startMain(t, root, nil, w, "./Maildir/")
	w.Close()
	if ws, ok := waitMain(t, cmd); !ok || ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("qmail-start: %v (signal %v, ended: %v), want qmail-send's exit 0", ws, ws.Signal(), ok)
	}
}

func fileExistsT(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestSendStopsWithStart: qmail-start killed outright (daemontools' svc
// -k) takes qmail-send with it: qmail-send gets TERM, a stop. It went on
// running under init, outside the supervisor, and every restart of
// qmail-start failed beside it while the holds sent through svc went
// nowhere (QA djb).
func TestSendStopsWithStart(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-send":   "trap ': > \"$0.term\"; exit 0' TERM\n: > \"$0.up\"\nwhile :; do sleep 0.1; done\n",
	})
	cmd := startMain(t, root, nil, nil, "./Maildir/")
	up := filepath.Join(root, "bin", "qmail-send.up")
	for i := 0; i < 500 && !fileExistsT(up); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !fileExistsT(up) {
		t.Fatal("qmail-send did not start within 10s")
	}
	cmd.Process.Kill() // qmail-start only, not its group
	waitMain(t, cmd)
	term := filepath.Join(root, "bin", "qmail-send.term")
	for i := 0; i < 500 && !fileExistsT(term); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !fileExistsT(term) {
		t.Error("qmail-send got no TERM within 10s of qmail-start's death")
	}
}

// TestQueuedStartFailureNotFatal: a qmail-queued that cannot be started
// (here not executable; under a low descriptor limit the fork fails) is
// said, and the mail system starts without it: callers run qmail-queue.
// qmail-start gave up, and with it the whole mail system (QA limits).
func TestQueuedStartFailureNotFatal(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-queued": "exit 0\n",
		"qmail-send":   ": > \"$0.ran\"\nexit 0\n",
	})
	if err := os.Chmod(filepath.Join(root, "bin", "qmail-queued"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMain(t, root, "./Maildir/")
	if code != 0 || !fileExistsT(filepath.Join(root, "bin", "qmail-send.ran")) {
		t.Errorf("exit %d, qmail-send ran: %v; stderr:\n%s", code, fileExistsT(filepath.Join(root, "bin", "qmail-send.ran")), stderr)
	}
	if !strings.Contains(stderr, "qmail-start: warning: unable to start qmail-queued: ") ||
		!strings.Contains(stderr, "; running without it (callers run qmail-queue)") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestQueuedCrashBackoff: a qmail-queued that crashes again at once after
// each start (a process limit kills the runtime) is started again after a
// pause that doubles, and the alert says when: a restart every second
// wrote 400 KB of traces into the log in 40 s (QA reg25).
func TestQueuedCrashBackoff(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-queued": "exit 2\n",
		// Long enough for two crashes, and a pause of 1 s between.
		"qmail-send": "sleep 6\nexit 0\n",
	})
	code, _, stderr := runMain(t, root, "./Maildir/")
	if code != 0 {
		t.Errorf("exit %d, want qmail-send's 0", code)
	}
	for _, want := range []string{
		"qmail-start: alert: qmail-queued exited with status 2 (it crashed); starting it again\n",
		"qmail-start: alert: qmail-queued exited with status 2 (it crashed); starting it again in 2s\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %q on stderr:\n%s", want, stderr)
		}
	}
}

// TestLoggerEndAlert: a logger that ends while qmail-send runs costs every
// later log line, and qmail-start says so on its standard error; the
// logger's end of file after qmail-send has ended is no alert (QA logs:
// nothing was said, and the logger stayed a zombie).
func TestLoggerEndAlert(t *testing.T) {
	progs := map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		// Runs a moment after the logger has gone, then exits.
		"qmail-send": "sleep 3\nexit 0\n",
	}
	root := fakeTree(t, progs)
	if err := os.WriteFile(filepath.Join(root, "bin", "badlogger"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, stderr := runMain(t, root, "./Maildir/", filepath.Join(root, "bin", "badlogger"))
	if !strings.Contains(stderr, "qmail-start: alert: the logger "+filepath.Join(root, "bin", "badlogger")+" ended (exit status 1) while qmail-send runs") {
		t.Errorf("stderr:\n%s", stderr)
	}
	// A TERM to the logger alone (not to the process group with
	// qmail-start) loses the log as a kill does: said too (it was
	// taken for a stop and nothing was said).
	root = fakeTree(t, progs)
	if err := os.WriteFile(filepath.Join(root, "bin", "termlogger"), []byte("#!/bin/sh\nkill -TERM $$\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, stderr = runMain(t, root, "./Maildir/", filepath.Join(root, "bin", "termlogger"))
	if !strings.Contains(stderr, "qmail-start: alert: the logger "+filepath.Join(root, "bin", "termlogger")+" ended (killed by signal 15 (terminated)) while qmail-send runs") {
		t.Errorf("a logger ended by a TERM of its own: stderr:\n%s", stderr)
	}
	progs["qmail-send"] = "echo 'status: local 0/10 remote 0/20' >&0\nexit 0\n"
	root = fakeTree(t, progs)
	_, log, stderr := runMain(t, root, "./Maildir/", "cat")
	if strings.Contains(stderr, "logger") || !strings.Contains(log, "status: local 0/10") {
		t.Errorf("a logger ending after qmail-send: stderr %q, log %q", stderr, log)
	}
}
