package sched

import (
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestNotifyKeepsTerm: many HUPs and ALRMs while nobody reads (qmail-send
// starting), then a TERM: the TERM is not lost (a shared buffer of eight
// dropped it once full).
func TestNotifyKeepsTerm(t *testing.T) {
	sigs := Notify()
	t.Cleanup(func() {
		signal.Reset(syscall.SIGTERM, syscall.SIGALRM, syscall.SIGHUP)
	})
	for i := 0; i < 20; i++ {
		sig := syscall.SIGHUP
		if i%2 == 1 {
			sig = syscall.SIGALRM
		}
		syscall.Kill(syscall.Getpid(), sig)
		time.Sleep(5 * time.Millisecond) // delivered one by one, not merged
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	// Let the runtime hand the TERM on before anything is read (else a
	// slot freed by the reads below could take it in time).
	time.Sleep(200 * time.Millisecond)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				return
			}
		case <-deadline:
			t.Fatal("TERM lost behind HUPs and ALRMs")
		}
	}
}
