package keep

import (
	"bytes"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/pollfd"
)

// Request is one request as a kept program receives it.
type Request struct {
	Args []string // the packet's NUL-ended fields
	File *os.File // the descriptor passed with it, or nil
	Cut  bool     // the packet or its descriptor list was cut short
}

// Serve is the program side: it greets with hello on sock, then calls
// handle for each request and sends its answer, until end of file or a
// failure of the socket. Extra descriptors are closed; File is closed
// after handle returns. Serve takes sock over (it waits on it in the
// poller, package pollfd) and closes it when it returns.
func Serve(sock int, hello string, maxRequest int, handle func(*Request) []byte) {
	ServeWith(sock, hello, maxRequest, handle, Hooks{})
}

// Hooks are a kept program's optional ways into Serve's loop.
type Hooks struct {
	// Done, asked after each reply, ends the loop when it reports true.
	Done func() bool
	// Hangup is called, from another goroutine, when the spawner hangs
	// up its end of the socket while handle runs: nobody is left to read
	// the answer. It may still be called just after handle returns.
	Hangup func()
}

// ServeWith is Serve with hooks.
//
// The hang-up watch costs no thread: a goroutine waits in the runtime's
// poller, which reports the peer's end of the socket as readable, and a
// read deadline in the past ends the wait when handle returns. (A thread
// blocked in poll(2) for each request cost a kept qmail-remote about a
// quarter of its deliveries per second in a release of held mail:
// docs/performance.md.)
func ServeWith(sock int, hello string, maxRequest int, handle func(*Request) []byte, h Hooks) {
	f := pollfd.File(sock, "keep socket")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	if err := send(rc, []byte(hello), nil); err != nil {
		return
	}
	buf := make([]byte, maxRequest)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, flags, err := recvmsg(rc, buf, oob)
		if err != nil || n == 0 {
			return
		}
		req := &Request{Args: split(buf[:n]), File: received(oob[:oobn]),
			Cut: flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0}
		var reply []byte
		if h.Hangup != nil {
			reply = watched(f, rc, func() []byte { return handle(req) }, h.Hangup)
		} else {
			reply = handle(req)
		}
		if req.File != nil {
			req.File.Close()
		}
		if send(rc, reply, nil) != nil || h.Done != nil && h.Done() {
			return
		}
	}
}

// watched runs do while another goroutine waits in the poller for the
// peer of f (whose raw form is rc) to hang up, and calls hangup if it
// does. A socket the poller cannot wait on (the runtime does not take
// it) is not watched.
func watched(f *os.File, rc syscall.RawConn, do func() []byte, hangup func()) []byte {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if rc.Read(func(fd uintptr) bool { return hungUp(int(fd)) }) == nil {
			hangup()
		}
	}()
	reply := do()
	f.SetReadDeadline(time.Unix(1, 0)) // ends the wait at once
	<-done
	f.SetReadDeadline(time.Time{})
	return reply
}

// hungUp reports, without waiting, whether the peer of the socket fd has
// closed or shut down its end. A request that arrived meanwhile is not
// a hang-up and is left where it is.
func hungUp(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR|unix.POLLNVAL) != 0
	}
}

// recvmsg reads one packet (and its control data into oob, descriptors
// close-on-exec) from the socket of rc, waiting in the poller.
func recvmsg(rc syscall.RawConn, p, oob []byte) (n, oobn, flags int, err error) {
	return pollfd.Recvmsg(rc, p, oob, unix.MSG_CMSG_CLOEXEC)
}

// send writes one packet (with oob, e.g. SCM_RIGHTS) on the socket of rc,
// waiting in the poller while the socket is full.
func send(rc syscall.RawConn, p, oob []byte) error { return pollfd.Sendmsg(rc, p, oob) }

// received is the first descriptor passed with a request (extra ones are
// closed), or nil.
func received(oob []byte) *os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var f *os.File
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if f == nil {
				f = os.NewFile(uintptr(fd), "passed")
			} else {
				unix.Close(fd)
			}
		}
	}
	return f
}

// split splits "a\0b\0c\0" into its NUL-ended fields (a last field without
// its NUL counts too).
func split(p []byte) []string {
	var args []string
	for len(p) > 0 {
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			args = append(args, string(p))
			break
		}
		args = append(args, string(p[:i]))
		p = p[i+1:]
	}
	return args
}

// Join is the request packet of args: each one NUL-ended.
func Join(args ...string) []byte {
	n := 0
	for _, a := range args {
		n += len(a) + 1
	}
	b := make([]byte, 0, n)
	for _, a := range args {
		b = append(append(b, a...), 0)
	}
	return b
}

// IsSocket reports whether fd is a SOCK_SEQPACKET socket, as a kept
// program's fd 0 is: for a program whose one-shot argument could itself be
// "-k" (qmail-getpw's local part), that is what tells the two apart.
func IsSocket(fd int) bool {
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil && t == unix.SOCK_SEQPACKET
}
