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
//     caller asked, and so does closing an AF_UNIX socket that holds such
//     a socket in flight in its queue (the close releases what is
//     queued, on the closing thread). Turning the lingering off first is
//     not enough: the socket is shared with the caller, who can turn it on
//     again between the service's setsockopt and its close, and a passed
//     AF_UNIX socket can hold descriptors where no receive gets them (an
//     out-of-band packet) or be refilled by a caller keeping a copy. But
//     the kernel never lingers in the closes a thread makes as it exits.
//     So every socket the service closes for a caller is closed by a
//     thread that exits (closeSockets): it takes a private copy of the
//     descriptor table, the service's own copies are closed (never the
//     last), and the thread then exits with the last ones. The service's
//     connection itself is emptied before it is closed: shut for
//     reading, so that nothing more can be queued, then every packet is
//     received and its descriptors closed as above. There is room in the
//     control buffer for as many as a packet can carry, so that the
//     kernel closes none itself for want of room.
//
// A file of /proc is refused as well: some of them (a process's stat,
// wchan, ...) check who reads at each read, not at the open, so read by
// the service (qmailq, group qmail, not set-uid) they would show the
// caller what its own read, or the set-uid qmail-queue's, does not (the
// memory layout of the qmail daemons). The caller runs qmail-queue.
//
// What is left: a file whose last close waits for someone else (a FUSE
// mount's daemon, a network file system, a device that flushes), and
// descriptors the kernel closes itself when the service is out of
// descriptors while receiving them. The service bounds those by its job
// slots and its closers (pkg/queue, serve.go).

import (
	"github.com/hqmail/hqmail/pkg/threads"
	"golang.org/x/sys/unix"
)

// MaxRights is the most descriptors one packet can carry (the kernel's
// SCM_MAX_FD).
const MaxRights = 253

// oobCap is the room for the control data of one packet: MaxRights
// descriptors and the sender's credentials (SO_PASSCRED is set on the
// service's listener, and so on each connection), with room to spare.
// Checked against unix.CmsgSpace in the tests.
const oobCap = 1280

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

// onProc reports whether fd is a file of a proc file system.
func onProc(fd int) bool {
	var fs unix.Statfs_t
	return unix.Fstatfs(fd, &fs) == nil && fs.Type == unix.PROC_SUPER_MAGIC
}

// closePassed closes the descriptors a caller passed, or that arrived in
// the service's connection: each socket among them with closeSockets, the
// rest (pipes and files) with close(2).
func closePassed(fds ...int) { closeByKind(fds, nil) }

// closeByKind closes fds, whose kinds are kinds (nil: looked up), each
// socket with closeSockets and the rest with close(2).
func closeByKind(fds []int, kinds []fdKind) {
	var socks []int
	for i, fd := range fds {
		var k fdKind
		if kinds != nil {
			k = kinds[i]
		} else {
			k = passedKind(fd)
		}
		if k == kindOther {
			unix.Close(fd)
		} else {
			socks = append(socks, fd)
		}
	}
	closeSockets(socks)
}

// closeSockets closes fds so that nothing the caller set up can make the
// closes wait on this thread: they are last closed by a thread that
// exits, which the kernel never lets linger, and which is alone in waiting
// when a close waits for something else. That thread takes a private copy
// of the descriptor table (unshare CLONE_FILES), then this one closes its
// copies (never the last) and lets the thread exit with the last ones.
// Where the copy cannot be had (a seccomp filter), the sockets are closed
// here with their lingering turned off, as well as that can be done.
func closeSockets(fds []int) {
	if len(fds) == 0 {
		return
	}
	unshared := make(chan error, 1)
	closed := make(chan struct{})
	go threads.Exiting(func() {
		unshared <- unix.Unshare(unix.CLONE_FILES)
		<-closed
	})
	err := <-unshared
	for _, fd := range fds {
		if err != nil {
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{})
		}
		unix.Close(fd)
	}
	close(closed)
}

// empty receives everything queued in the service's connection fd after
// shutting it for reading (nothing more can be sent to it then), closing
// the descriptors that arrive with closePassed. fd must have SO_PASSCRED
// set: every packet then comes with the sender's credentials, so that an
// empty packet is told from the end of the queue (which comes with none).
func empty(fd int) {
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
			return // nothing left
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
		closePassed(fds...)
		if n == 0 && len(fds) == 0 && oobn == 0 {
			return
		}
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
	empty(conn)
	unix.Close(conn)
}

// Close closes the descriptors of a request taken, sockets with
// closeSockets (a request passing an AF_UNIX socket is never taken). A
// pipe or file costs close(2) only.
func (r *ServiceRequest) Close() {
	closeByKind([]int{r.Message, r.Envelope}, []fdKind{r.msgKind, r.envKind})
}
