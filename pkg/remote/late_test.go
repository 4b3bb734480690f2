package remote

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client *net.TCPConn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s
}

// waitReadable waits (10 s at most) until c's socket has bytes or an end
// to read, without reading them.
func waitReadable(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) {
		n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10000)
	})
	if err != nil || n != 1 {
		t.Fatalf("socket not readable within 10s: %d %v", n, err)
	}
}

// TestLateConnReadsWhatArrived: a read whose deadline passed while the
// reply was already in the socket (a qmail-remote stopped past
// timeoutremote, woken with its timer expired) returns the reply. A plain
// TCP connection reports the timeout without looking at the socket, and
// the delivery was deferred as "connection died. Possible duplicate!",
// then made again (QA flap: duplicates after SIGSTOP of the tree).
func TestLateConnReadsWhatArrived(t *testing.T) {
	c, s := tcpPair(t)
	if _, err := s.Write([]byte("250 ok\r\n")); err != nil {
		t.Fatal(err)
	}
	waitReadable(t, c)
	buf := make([]byte, 64)

	// What the runtime does for a deadline already passed.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if n, err := c.Read(buf); n != 0 || !isTimeout(err) {
		t.Fatalf("plain read past the deadline: %d %v (the test's premise)", n, err)
	}
	n, err := lateConn{c}.Read(buf)
	if err != nil || string(buf[:n]) != "250 ok\r\n" {
		t.Fatalf("lateConn read past the deadline: %q %v", buf[:n], err)
	}
	// The deadline stays passed: with nothing more there, the next read
	// times out at once.
	if n, err := (lateConn{c}).Read(buf); n != 0 || !isTimeout(err) {
		t.Errorf("second read: %d %v, want a timeout", n, err)
	}

	// The peer's end of the stream, arrived meanwhile, is read as such.
	s.Close()
	waitReadable(t, c)
	if n, err := (lateConn{c}).Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read past the deadline after the peer closed: %d %v, want EOF", n, err)
	}
}

// TestLateConnTimesOut: with nothing in the socket the timeout stands,
// and a read with time left waits for the data as usual.
func TestLateConnTimesOut(t *testing.T) {
	c, s := tcpPair(t)
	lc := lateConn{c}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if n, err := lc.Read(buf); n != 0 || !isTimeout(err) {
		t.Fatalf("empty socket past the deadline: %d %v, want a timeout", n, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	go s.Write([]byte("220 hi\r\n"))
	if n, err := lc.Read(buf); err != nil || string(buf[:n]) != "220 hi\r\n" {
		t.Fatalf("read with time left: %q %v", buf[:n], err)
	}
}

// TestDialIsLate: qmail-remote's connections read as lateConn does.
func TestDialIsLate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &delivery{cfg: &Config{TimeoutConnect: 10 * time.Second}}
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := d.dial(net.IPv4(127, 0, 0, 1), port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(lateConn); !ok {
		t.Errorf("dial gives a %T, not a lateConn", c)
	}
}
