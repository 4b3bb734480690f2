package sigcatch

import (
	"os"
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
