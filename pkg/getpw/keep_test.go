package getpw

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKeepCutRequest: a request longer than MaxKeepRequest, which arrives
// cut short, is answered ExitSys (qmail-lspawn's "Temporary failure"),
// never ExitUsage (a bounce): the lookup was never made.
func TestKeepCutRequest(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := fds[0]
	defer unix.Close(ours)
	tv := unix.NsecToTimeval(int64(time.Minute)) // bounded waits
	unix.SetsockoptTimeval(ours, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(ours, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(fds[1], "")
	}()
	buf := make([]byte, 256)
	n, _, _, _, err := unix.Recvmsg(ours, buf, nil, 0)
	if err != nil || string(buf[:n]) != KeepHello {
		t.Fatalf("hello: %q %v", buf[:max(n, 0)], err)
	}
	req := append(bytes.Repeat([]byte("x"), MaxKeepRequest), 0)
	if err := unix.Sendmsg(ours, req, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	n, _, _, _, err = unix.Recvmsg(ours, buf, nil, 0)
	if err != nil || n != 1 || buf[0] != ExitSys {
		t.Errorf("cut request: got %v %v, want [%d]", buf[:max(n, 0)], err, ExitSys)
	}
	unix.Shutdown(ours, unix.SHUT_WR)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return at end of file")
	}
}
