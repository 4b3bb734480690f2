package remote

import (
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A process stopped past a read deadline (SIGSTOP, a frozen cgroup, a
// paused virtual machine; a laptop's suspend does not count, the timers
// run on the monotonic clock) wakes with the deadline's timer expired, and
// the runtime's poller can report the timeout before it looks at the
// socket, where the peer's reply may have arrived meanwhile. After the
// final dot that reply is the receipt for the message: taken for silence,
// the delivery is deferred with "connection died. Possible duplicate!"
// and the message goes out twice. qmail's wait (select, then read) finds
// the reply. So a read on a lateConn that times out with nothing read
// looks at the socket once more, without waiting, and returns what is
// there.

// lateConn is a TCP connection whose reads that time out look at the
// socket once more before they say so.
type lateConn struct{ *net.TCPConn }

func (c lateConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 || len(p) == 0 || !isTimeout(err) {
		return n, err
	}
	if m, rerr := c.readNow(p); m > 0 || rerr != nil {
		return m, rerr
	}
	return n, err
}

// readNow reads what the socket holds without waiting: the bytes, the
// end of the stream (io.EOF) or the socket's error, and 0 and nil when it
// holds nothing or cannot be looked at (the timeout stands). The read
// deadline, which had passed, is left passed for the caller.
func (c lateConn) readNow(p []byte) (int, error) {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return 0, nil
	}
	// A raw read is refused at once while the deadline has passed.
	c.TCPConn.SetReadDeadline(time.Time{})
	defer c.TCPConn.SetReadDeadline(time.Now())
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), p)
		return true // never wait
	}); err != nil {
		return 0, nil
	}
	switch {
	case rerr == unix.EAGAIN || rerr == unix.EINTR:
		return 0, nil
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n <= 0:
		return 0, io.EOF
	}
	return n, nil
}
