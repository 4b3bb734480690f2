package keep

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// serveWith runs ServeWith on one end of a fresh socket pair and returns
// the other end (the spawner's) and a channel closed when ServeWith
// returns. handle answers "ok:" and the request's first field.
func serveWith(t *testing.T, handle func(*Request) []byte, h Hooks) (int, chan struct{}) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		ServeWith(fds[1], "hello", 1024, handle, h)
		close(done)
	}()
	buf := make([]byte, 64)
	if n, err := unix.Read(fds[0], buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("greeting: %q, %v", buf[:n], err)
	}
	return fds[0], done
}

// TestHangupDuringRequest: the spawner closing its end while a request
// is handled calls Hangup (the handler is still running), and the loop
// then ends.
func TestHangupDuringRequest(t *testing.T) {
	hung := make(chan struct{})
	entered := make(chan struct{})
	handle := func(r *Request) []byte {
		close(entered)
		select {
		case <-hung:
		case <-time.After(20 * time.Second):
			t.Error("Hangup was not called while the request ran")
		}
		return []byte("late")
	}
	sock, done := serveWith(t, handle, Hooks{Hangup: func() { close(hung) }})
	if _, err := unix.Write(sock, []byte("a\x00")); err != nil {
		t.Fatal(err)
	}
	<-entered
	unix.Close(sock)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("ServeWith did not end")
	}
}

// TestWatchEndsWithRequest: with a spawner that stays, Hangup is never
// called, and each request after the first is served as usual (the wait
// that watched the first has ended, and its deadline with it).
func TestWatchEndsWithRequest(t *testing.T) {
	hangups := 0
	handle := func(r *Request) []byte { return []byte("ok:" + r.Args[0]) }
	sock, done := serveWith(t, handle, Hooks{Hangup: func() { hangups++ }})
	buf := make([]byte, 64)
	for _, a := range []string{"a", "b", "c"} {
		if _, err := unix.Write(sock, []byte(a+"\x00")); err != nil {
			t.Fatal(err)
		}
		n, err := unix.Read(sock, buf)
		if err != nil || string(buf[:n]) != "ok:"+a {
			t.Fatalf("request %s: answer %q, %v", a, buf[:n], err)
		}
	}
	unix.Close(sock)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("ServeWith did not end")
	}
	if hangups != 0 {
		t.Errorf("Hangup called %d times by a spawner that stayed", hangups)
	}
}
