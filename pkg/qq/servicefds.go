package qq

// Descriptors a caller passes to the queue service, and the service's
// connections: which descriptors the service refuses, and how it closes
// what a caller gave it.
//
// A caller may pass any descriptor it holds. Beyond the bytes they carry,
// two kinds put the service itself at risk:
//
//   - An AF_UNIX socket. It can be the caller's own end of its connection
//     to the service, or hold that end (and the write end of the message
//     pipe) in flight in its queue. The job would then keep alive, through
//     the descriptor it reads, the very socket whose hang-up tells it that
//     the caller has gone: after the caller exits it waits for the 24-hour
//     alarm, holding a slot and leaving an empty mess/S/ID behind. Any
//     AF_UNIX socket can do this (a socketpair end carries the caller's
//     end in its queue as well as the caller's end itself does), so a
//     request that passes one is refused. The service's own client
//     (viaService) always passes pipes. The same loop through the
//     connection itself (a second packet carrying the caller's end) is
//     cut by the job, which gives up when anything arrives on the
//     connection after the request (pkg/queue, pollReader).
//   - A descriptor whose last close waits. A socket with SO_LINGER set and
//     unsent data (TCP, SCTP, vsock) waits in close(2) for as long as the
//     caller asked. Every socket the service closes for a caller first has
//     lingering turned off. Closing an AF_UNIX socket also closes, on the
//     closing thread, every descriptor still in flight in its queue, so
//     such a socket (the service's connection with a request or more
//     still in it, or a socket the caller passed) is emptied first: shut
//     for reading, so that nothing more can be queued, then every packet
//     is received and its descriptors closed the same way. So is a
//     descriptor the kernel would have closed itself for want of room in
//     the control buffer: there is room for as many as a packet can carry.
//     A listening AF_UNIX socket holds descriptors in the queues of the
//     connections waiting on it, which its close closes: those
//     connections are accepted and emptied first.
//
// What is left: a file whose last close waits for someone else (a FUSE
// mount's daemon, a network file system, a device that flushes), and
// descriptors the kernel closes itself when the service is out of
// descriptors while receiving them. The service bounds those by its job
// slots and its closers (pkg/queue, serve.go).

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// maxRights is the most descriptors one packet can carry (the kernel's
// SCM_MAX_FD).
const maxRights = 253

// oobCap is the room for the control data of one packet: maxRights
// descriptors and the sender's credentials (SO_PASSCRED is set on the
// service's listener, and so on each connection), with room to spare.
// Checked against unix.CmsgSpace in the tests.
const oobCap = 1280

// maxDepth bounds how deep sockets in flight within sockets are emptied
// (the kernel refuses to nest them more than a few levels).
const maxDepth = 8

// maxErrors bounds the errors in a row that a socket being emptied may
// report before the emptying gives up: a pending error is reported once.
const maxErrors = 3

// maxPackets bounds the packets received from one socket being emptied.
// Nothing can be queued after its shutdown, so this only guards against
// the unforeseen.
const maxPackets = 1 << 16

// fdKind is what a passed descriptor is, as far as closing it goes.
type fdKind uint8

const (
	kindOther  fdKind = iota // not a socket: closed as it is
	kindSocket               // a socket of another family than AF_UNIX
	kindUnix                 // an AF_UNIX socket
)

// passedKind tells what fd is: one fstat for a pipe or a file, and the
// socket's family for a socket.
func passedKind(fd int) fdKind {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return kindOther
	}
	d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err == nil && d != unix.AF_UNIX {
		return kindSocket
	}
	return kindUnix // or a socket that does not say: treated with the most care
}

// closePassed closes fd, of kind k, a descriptor a caller passed or one
// that arrived in flight in a socket being emptied, so that the close does
// not wait on anything the caller set up: a socket loses its lingering, an
// AF_UNIX socket is emptied first (unless depth is too deep). conn is the
// connection it came on (its local address names the service).
func closePassed(fd int, k fdKind, depth, conn int) {
	switch k {
	case kindSocket:
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{})
	case kindUnix:
		if depth < maxDepth && !connectedToService(fd, conn) {
			// The caller's own end of a connection to the service is
			// left alone: only the service sends to it, and never a
			// descriptor; emptying it would take away the "no" the
			// caller is waiting for.
			if l, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); l == 1 {
				emptyListener(fd, depth, conn)
			} else {
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
				t, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
				empty(fd, t == unix.SOCK_STREAM, depth, conn)
			}
		}
	}
	unix.Close(fd)
}

// connectedToService reports whether the AF_UNIX socket fd is connected
// to this process's listener with the address of conn (a caller's end of
// a connection to the service): its peer is this process (SO_PEERCRED, as
// a listener's connections report it) and its peer address is conn's.
// The address alone could be copied: a caller can bind its own socket
// under the same /proc/self/fd/N/... name.
func connectedToService(fd, conn int) bool {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || int(cred.Pid) != os.Getpid() {
		return false
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return false
	}
	local, err := unix.Getsockname(conn)
	if err != nil {
		return false
	}
	p, ok1 := peer.(*unix.SockaddrUnix)
	l, ok2 := local.(*unix.SockaddrUnix)
	return ok1 && ok2 && p.Name != "" && p.Name == l.Name
}

// empty receives everything queued in the AF_UNIX socket fd after shutting
// it for reading (nothing more can be sent to it then), closing the
// descriptors that arrive with closePassed. fd must have SO_PASSCRED set:
// every packet then comes with the sender's credentials, so that an empty
// packet is told from the end of the queue (which comes with none, except
// on a stream socket, where nothing read is the end).
func empty(fd int, stream bool, depth, conn int) {
	unix.Shutdown(fd, unix.SHUT_RD)
	var b [512]byte
	var oob [oobCap]byte
	errs := 0
	for range maxPackets {
		n, oobn, _, _, err := unix.Recvmsg(fd, b[:], oob[:], unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return // nothing left (a datagram socket says so)
		}
		if err != nil {
			// A socket's pending error (ECONNRESET: its peer went away
			// with packets unread) comes once, in place of a packet, and
			// is cleared; what is queued is still there. An error that
			// comes back every time ends the emptying.
			if errs++; errs > maxErrors {
				return
			}
			continue
		}
		errs = 0
		fds := rights(oob[:oobn])
		for _, r := range fds {
			closePassed(r, passedKind(r), depth+1, conn)
		}
		if n == 0 && len(fds) == 0 && (oobn == 0 || stream) {
			return
		}
	}
}

// emptyListener takes the connections waiting on the listening AF_UNIX
// socket fd and empties and closes each (closePassed): closing a listener
// closes the connections still waiting on it, and with them the
// descriptors in flight in their queues, on the closing thread. Shut for
// reading, the listener refuses new connections. accept(2) has no flag
// for not waiting, so the listener is made non-blocking and given a short
// receive timeout (accept keeps to it), in case whoever else holds it
// takes the non-blocking mode away again.
func emptyListener(fd, depth, conn int) {
	unix.Shutdown(fd, unix.SHUT_RD)
	unix.SetNonblock(fd, true)
	tv := unix.NsecToTimeval(int64(time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for range maxPackets {
		c, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			return // EAGAIN: none left
		}
		closePassed(c, kindUnix, depth+1, conn)
	}
}

// CloseConn closes a connection accepted on the service's listener. What
// is still queued in it (a refused request, packets a caller sent after
// its request) is received first and the descriptors in it closed as a
// refused request's are, so that closing the connection closes nothing of
// the caller's on this thread. The listener must have SO_PASSCRED set
// (pkg/queue Listen does), which each connection inherits: without it an
// empty packet would end the emptying early. For a connection that holds
// nothing this is two system calls more than close(2).
func CloseConn(conn int) {
	empty(conn, false, 0, conn)
	unix.Close(conn)
}

// Close closes the descriptors of a request taken, each socket with its
// lingering turned off first (a request passing an AF_UNIX socket is never
// taken). A pipe or file costs close(2) only.
func (r *ServiceRequest) Close() {
	closePassed(r.Message, r.msgKind, 0, -1)
	closePassed(r.Envelope, r.envKind, 0, -1)
}
