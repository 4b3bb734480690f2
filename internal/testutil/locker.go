package testutil

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
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

// LockerCommand is the program exe (a test binary whose package calls
// ActAsLocker, or a copy of it) set up to lock sendmutex; read "locked\n"
// from its standard output before counting on the lock.
func LockerCommand(exe, sendmutex string) *exec.Cmd {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), lockerEnv+"="+sendmutex)
	return cmd
}
