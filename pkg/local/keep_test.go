package local

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// keepAsk runs Serve on one end of a socket pair, sends it req with the
// descriptor of /dev/null, and returns its answer.
func keepAsk(t *testing.T, req []byte) []byte {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := fds[0]
	defer unix.Close(ours)
	// Bounded waits: no answer within a minute fails the test.
	tv := unix.NsecToTimeval(int64(time.Minute))
	unix.SetsockoptTimeval(ours, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(ours, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(fds[1], Config{Environ: []string{"PATH=/bin:/usr/bin"}, Root: "/nonexistent"})
	}()
	buf := make([]byte, MaxKeepOutput+1)
	n, _, _, _, err := unix.Recvmsg(ours, buf, nil, 0)
	if err != nil || string(buf[:n]) != KeepHello {
		t.Fatalf("hello: %q %v", buf[:max(n, 0)], err)
	}
	m, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := unix.Sendmsg(ours, req, unix.UnixRights(int(m.Fd())), nil, 0); err != nil {
		t.Fatalf("send %d bytes: %v", len(req), err)
	}
	n, _, _, _, err = unix.Recvmsg(ours, buf, nil, 0)
	if err != nil || n == 0 {
		t.Fatalf("answer: %d %v", n, err)
	}
	unix.Shutdown(ours, unix.SHUT_WR) // end of file: Serve returns
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return at end of file")
	}
	return append([]byte(nil), buf[:n]...)
}

// TestKeepCutRequest: a request longer than MaxKeepRequest, which arrives
// cut short, is a temporary failure naming the cause, never the usage
// line's bounce (exit 100); a request of exactly MaxKeepRequest bytes is
// read whole (here: too few arguments, the usage line).
func TestKeepCutRequest(t *testing.T) {
	long := append(bytes.Repeat([]byte("x"), MaxKeepRequest), 0)
	got := keepAsk(t, long)
	if got[0] != qerr.ExitTemp || string(got[1:]) != cutText {
		t.Errorf("cut request: got %d %q, want %d %q", got[0], got[1:], qerr.ExitTemp, cutText)
	}
	if !strings.Contains(cutText, strconv.Itoa(MaxKeepRequest)+" bytes") {
		t.Errorf("cutText %q does not name the limit %d", cutText, MaxKeepRequest)
	}
	whole := append(bytes.Repeat([]byte("x"), MaxKeepRequest-1), 0)
	got = keepAsk(t, whole)
	if got[0] != qerr.ExitPerm || string(got[1:]) != usageText+"\n" {
		t.Errorf("request of %d bytes: got %d %q, want %d %q", len(whole), got[0], got[1:], qerr.ExitPerm, usageText+"\n")
	}
}
