package testutil

import (
	"sync"
	"testing"

	"github.com/hqmail/hqmail/pkg/threads"
	"golang.org/x/sys/unix"
)

// LingeringSocket returns a loopback TCP socket whose final close blocks
// unless its lingering is turned off: SO_LINGER is set (linger seconds)
// and its send queue is full towards a peer that never reads, so close(2)
// waits in the kernel for the linger time. Its local port names it in
// /proc/net/tcp. release closes the peer, which resets the connection and
// ends a close in progress; it is called at the end of the test too.
func LingeringSocket(t *testing.T, linger int32) (fd, port int, release func()) {
	t.Helper()
	lo := [4]byte{127, 0, 0, 1}
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ln)
	unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: lo}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatal(err)
	}
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: lo, Port: sa.(*unix.SockaddrInet4).Port}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	peer, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { unix.Close(peer) }) }
	t.Cleanup(release)
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: linger}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	unix.SetNonblock(fd, true)
	buf := make([]byte, 65536)
	for {
		if _, err := unix.Write(fd, buf); err == unix.EAGAIN {
			break
		} else if err != nil && err != unix.EINTR {
			unix.Close(fd)
			t.Fatal(err)
		}
	}
	unix.SetNonblock(fd, false)
	la, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd, la.(*unix.SockaddrInet4).Port, release
}

// CloseNoLinger closes fd, a socket that may linger (LingeringSocket), so
// that the close never waits for the linger time, even when it turns out
// to be the final one: a test that passed fd to the code under test cannot
// tell whether that code's close comes first (the code under test closing
// on a thread that exits, where the kernel never lingers, leaves the
// test's close the last, on an ordinary thread, waiting the whole linger
// time). It does as pkg/qq's closeSockets: a thread of its own takes a
// private copy of the descriptor table, fd is closed in the process's
// table, and the thread exits, dropping its copy; the kernel does not
// linger in the close of an exiting thread. fd's SO_LINGER is left as it
// is: it is set on the open file, which the code under test shares.
func CloseNoLinger(t testing.TB, fd int) {
	t.Helper()
	unshared := make(chan error, 1)
	closed := make(chan struct{})
	go threads.Exiting(func() {
		unshared <- unix.Unshare(unix.CLONE_FILES)
		<-closed
	})
	err := <-unshared
	if err == nil {
		unix.Close(fd)
	}
	close(closed)
	if err != nil {
		t.Fatalf("close of a lingering socket: unshare(CLONE_FILES): %v", err)
	}
}
