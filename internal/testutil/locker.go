package testutil

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// lockerEnv names the sendmutex a test binary started by StartLocker
// locks.
const lockerEnv = "HQMAIL_TEST_SENDMUTEX_LOCKER"

// ActAsLocker turns the test binary into a stand-in for qmail-send when
// StartLocker started it: it locks the sendmutex named in its
// environment, writes its pid there, prints "locked", and waits a minute
// for SIGALRM (exit 42, qmail-send's "retry now") before it exits 0.
// Call it from an init function of the test package; it returns at once
// in an ordinary test run.
func ActAsLocker() {
	p := os.Getenv(lockerEnv)
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		os.Exit(3)
	}
	alarm := make(chan os.Signal, 1)
	signal.Notify(alarm, syscall.SIGALRM)
	os.Stdout.WriteString("locked\n")
	select {
	case <-alarm:
		os.Exit(42)
	case <-time.After(time.Minute):
		os.Exit(0)
	}
}

// StartLocker starts prog (a test binary whose package calls
// ActAsLocker from an init function, or a copy of it made by
// CopyTestBinary) holding sendmutex, and returns it once it holds the
// lock. It is killed at the end of the test.
func StartLocker(t testing.TB, prog, sendmutex string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(prog, "-test.run=^$")
	cmd.Env = append(os.Environ(), lockerEnv+"="+sendmutex)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, len("locked\n"))
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "locked\n" {
		t.Fatalf("qmail-send stand-in: %q %v", line, err)
	}
	return cmd
}

// CopyTestBinary copies the running test binary to dst (mode 0755), so
// that a StartLocker of dst is a process whose /proc/PID/exe names dst
// (a tree's bin/qmail-send).
func CopyTestBinary(t testing.TB, dst string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, prog, 0o755); err != nil {
		t.Fatal(err)
	}
}
