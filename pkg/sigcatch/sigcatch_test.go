package sigcatch

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestBurstKeepsOther: a burst of HUPs sent before anyone reads does not
// make the runtime drop the TERM that follows it (with one shared channel
// of a small buffer it would).
func TestBurstKeepsOther(t *testing.T) {
	c := Catch(syscall.SIGHUP, syscall.SIGUSR1)
	for i := 0; i < 50; i++ {
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
	}
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-c:
			if s == syscall.SIGUSR1 {
				return
			}
		case <-deadline:
			t.Fatal("SIGUSR1 not delivered after a burst of HUPs")
		}
	}
}

// TestDrop: a dropped signal does not end the process, and a program it
// execs has the default action back (it dies of the signal), where
// signal.Ignore would have passed SIG_IGN on.
func TestDrop(t *testing.T) {
	Drop(syscall.SIGTERM)
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond) // were it not caught, the test binary would be gone
	out, err := exec.Command("/bin/sh", "-c", "kill -TERM $$; echo survived").CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || !ee.Sys().(syscall.WaitStatus).Signaled() || len(out) != 0 {
		t.Errorf("a child after Drop: %v, %q; want it killed by the TERM it sent itself", err, out)
	}
}
