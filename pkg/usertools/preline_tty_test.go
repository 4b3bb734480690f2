package usertools

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestMain runs the tests, or, as a copy of the test binary that
// prelineInSession starts, preline itself: with the arguments in
// $PRELINE_HELPER_ARGS (separated by newlines) and the message in the
// file $PRELINE_HELPER_MSG.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("PRELINE_HELPER_ARGS"); ok {
		msg, err := os.Open(os.Getenv("PRELINE_HELPER_MSG"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(120)
		}
		os.Exit(PrelineMain(strings.Split(args, "\n"), msg, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// prelineInSession runs preline (the test binary, TestMain) with args in a
// session of its own: with tty (a pty's slave) as its controlling
// terminal and standard input, or with none if tty is nil. It returns
// the helper's pid, its exit code and what it wrote; ok is false if it
// had not ended in 20 seconds (it was killed).
func prelineInSession(t *testing.T, tty *os.File, args ...string) (pid, code int, out string, ok bool) {
	t.Helper()
	localEnv(t)
	dir := t.TempDir()
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("Subject: x\n\nhi\n"), 0o600)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "PRELINE_HELPER_ARGS="+strings.Join(args, "\n"), "PRELINE_HELPER_MSG="+msg)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if tty != nil {
		cmd.Stdin = tty
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		// The helper leads its session: killing it hangs up its
		// terminal, and a program stopped in another process group
		// is sent SIGHUP and SIGCONT as an orphan.
		cmd.Process.Kill()
		<-done
		return cmd.Process.Pid, -1, buf.String(), false
	}
	return cmd.Process.Pid, cmd.ProcessState.ExitCode(), buf.String(), true
}

// statPgrp returns the pid and the process group of the /proc/PID/stat
// line that ends out.
func statPgrp(t *testing.T, out string) (pid, pgrp int) {
	t.Helper()
	line := strings.TrimSuffix(out, "\n")
	line = line[strings.LastIndexByte(line, '\n')+1:]
	// pid (comm) state ppid pgrp ...
	i := strings.LastIndexByte(line, ')')
	j := strings.IndexByte(line, ' ')
	if i < 0 || j < 0 {
		t.Fatalf("no stat line in %q", out)
	}
	f := strings.Fields(line[i+1:])
	var err1, err2 error
	pid, err1 = strconv.Atoi(line[:j])
	if len(f) > 2 {
		pgrp, err2 = strconv.Atoi(f[2])
	}
	if err1 != nil || err2 != nil || pgrp == 0 {
		t.Fatalf("no pid and process group in %q", out)
	}
	return pid, pgrp
}

// TestPrelineTerminal: from a terminal, as a user tries it by hand,
// preline's program stays in preline's process group, the terminal's
// foreground one: it reads the terminal (and ^C reaches it with
// preline). In a process group of its own, the program that read the
// terminal was stopped by SIGTTIN and preline waited for ever.
func TestPrelineTerminal(t *testing.T) {
	master, slave := testutil.OpenPty(t)
	if _, err := master.Write([]byte("yes\n")); err != nil {
		t.Fatal(err)
	}
	pid, code, out, ok := prelineInSession(t, slave, "sh", "-c", "read x </dev/tty && echo got-$x && exec cat /proc/self/stat")
	if !ok {
		t.Fatalf("preline had not ended after 20 seconds (its program stopped, reading the terminal?): %q", out)
	}
	if code != 0 || !strings.HasPrefix(out, "got-yes\n") {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if _, pgrp := statPgrp(t, out); pgrp != pid {
		t.Errorf("the program is in process group %d, preline in %d", pgrp, pid)
	}
}

// TestPrelineNoTerminal: with no controlling terminal, as under
// qmail-local, preline's program runs in a process group of its own
// (which preline kills on a read error).
func TestPrelineNoTerminal(t *testing.T) {
	pid, code, out, ok := prelineInSession(t, nil, "cat", "/proc/self/stat")
	if !ok || code != 0 {
		t.Fatalf("exit %d, output %q", code, out)
	}
	prog, pgrp := statPgrp(t, out)
	if pgrp != prog || pgrp == pid {
		t.Errorf("the program (pid %d) is in process group %d, preline is %d", prog, pgrp, pid)
	}
}
