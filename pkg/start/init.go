package start

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hqmail/hqmail/pkg/sigcatch"
	"github.com/hqmail/hqmail/pkg/spawn"
)

// As PID 1 (a container's entrypoint, a PID namespace), qmail-start would
// be every orphan's parent: a .qmail program that leaves a process behind
// left a zombie per delivery there, until the pids limit stopped all
// forks, since qmail-start waits only for its own children (os/exec). When
// it exited, the kernel killed every delivery still running in the
// namespace; and a PID 1 without a handler ignores INT, QUIT and the like.
//
// So PID 1 runs none of qmail-start's work. It starts the same program
// again as its only child (same argv, environment and descriptors 0-2; the
// child's pid is not 1, so it runs as qmail-start always does) and then
// only forwards signals to it and reaps every process that ends, as an
// init such as tini does. wait4(-1) here cannot steal a status os/exec
// waits for: this process waits for nothing through os/exec.

// initSignals are the signals PID 1 passes on to its child: what a
// container runtime or an administrator sends (docker stop's TERM, docker
// kill -s, a terminal's INT and QUIT).
var initSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
	syscall.SIGALRM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// initChild is the program PID 1 starts: this one, the very binary
// running (not whatever the path names by now).
const initChild = "/proc/self/exe"

// runInit is PID 1's whole work: it starts the child and returns the exit
// code PID 1 exits with, the child's (111 if it was killed by a signal),
// once the child and every other process in the namespace have ended, or
// when a signal comes after the child has ended (a stop must not wait for
// a process a .qmail program left running for good). ok is false when the
// child could not be started; the caller then runs qmail-start in PID 1
// itself, as before, rather than not at all.
func runInit(stderr *os.File) (code int, ok bool) {
	// Caught before the child exists, so that none is lost; from then
	// on PID 1 ignores nothing a runtime sends.
	sigs := sigcatch.Catch(initSignals...)
	// PID 1 writes only its own complaints: a reader gone must not
	// matter (see Main).
	sigcatch.Drop(syscall.SIGPIPE)
	// Descriptors beyond 2 that PID 1 inherited are not passed on (the
	// child would not pass them on either); PID 1 itself opens no pipe,
	// so no program waits for an end of file it holds back.
	spawn.CloseOnExecAll()
	p, err := os.StartProcess(initChild, os.Args, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		signal.Reset(initSignals...) // Main catches its own
		fmt.Fprintf(stderr, "qmail-start: warning: running as process 1, unable to start qmail-start as its child: %v; "+
			"orphaned processes will not be reaped\n", err)
		return 0, false
	}
	os.Chdir("/") // hold no directory of the caller's

	// The reaper: any thread of the process may wait for its children
	// (Linux waits for the whole thread group's), so this goroutine
	// needs no thread of its own. childEnd gets the child's status;
	// allEnd is closed at ECHILD, when nothing is left to reap.
	childEnd := make(chan syscall.WaitStatus, 1)
	allEnd := make(chan struct{})
	go func() {
		defer close(allEnd)
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				return // ECHILD: every process has ended
			}
			if pid == p.Pid {
				childEnd <- ws
			}
		}
	}()

	var ws syscall.WaitStatus
	ended := false
	for !ended {
		select {
		case s := <-sigs:
			p.Signal(s) // through a pidfd: never a stranger with the pid
		case ws = <-childEnd:
			ended = true
		}
	}
	code = ws.ExitStatus()
	if ws.Signaled() {
		code = 111 // as qmail-start reports a killed qmail-send
	}
	// Orphans (a spawner finishing its deliveries after qmail-send died,
	// what a .qmail program left in the background) end on their own
	// unless PID 1 exits, which kills them all.
	select {
	case <-allEnd:
	case <-sigs:
	}
	return code, true
}
