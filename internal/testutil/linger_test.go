package testutil

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CloseNoLinger's close of a lingering socket (SO_LINGER {1, 60}, full
// send queue), the final one, does not wait for the linger time, and the
// socket is closed: its descriptor is gone and the connection is being
// shut in order (FIN_WAIT1, its queue still to send: the lingering was
// not turned off, which would have reset it).
func TestCloseNoLinger(t *testing.T) {
	fd, port, _ := LingeringSocket(t, 60)
	done := make(chan struct{})
	go func() {
		defer close(done)
		CloseNoLinger(t, fd)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the close still waits after 20 s (lingering)")
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("descriptor %d after CloseNoLinger: %v, want EBADF", fd, err)
	}
	// The exiting thread's close comes a little later.
	local := fmt.Sprintf(":%04X ", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skip(err)
		}
		state := ""
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 3 && strings.HasSuffix(f[1]+" ", local) {
				state = f[3]
			}
		}
		if state == "04" { // FIN_WAIT1
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket on port %d in state %q after 10 s, want 04 (FIN_WAIT1)", port, state)
		}
	}
}
