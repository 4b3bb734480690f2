package qq

// The queue service: qmail-queued (docs/man/qmail-queued.8) is qmail-queue
// kept running under qmailq, so that a caller queues a message without
// starting the set-uid program. It speaks qmail-queue's own protocol, over
// descriptors the caller passes instead of descriptors it inherits:
//
//	socket  ROOT/public/qmail-queue, SOCK_SEQPACKET, mode 0666
//	1. caller:  "Q1" with two descriptors (SCM_RIGHTS): the message (what
//	            qmail-queue reads on fd 0) and the envelope (fd 1)
//	2. service: "go" (it reads them now) or "no" (not taken, nothing was
//	            read: busy, stopping, a request it does not know, or one
//	            passing an AF_UNIX socket (servicefds.go); the caller runs
//	            qmail-queue itself)
//	3. caller:  writes the message and the envelope, closes its ends; it
//	            sends nothing more on the connection (the job gives up if
//	            it does)
//	4. service: "<code> <id>" (the result line of qmail-queue -m without
//	            its newline): qmail-queue's exit code, and the queue id
//	            when the code is 0 (else 0), sent only after the message is committed
//	            (todo/ID linked and todo/ fsynced), exactly when qmail-queue
//	            would exit 0
//
// The service learns who queues from the kernel (SO_PEERCRED), not from the
// caller: the Received line and intd/ carry the caller's uid and pid, as
// they carry qmail-queue's real uid and its pid when it is executed.
//
// Both sides are here; the service's loop is pkg/queue (Serve). No net
// import: qmail-queue and qmail-local link this package and start fast.

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// ServiceSocket is the service's socket, relative to the root.
const ServiceSocket = "public/qmail-queue"

// Service messages.
const (
	svcRequest = "Q1"
	svcGo      = "go"
	svcNo      = "no"
)

// AnswerTimeout bounds the caller's wait for "go"/"no": a service that
// does not answer by then has read nothing, and the caller runs
// qmail-queue instead.
var AnswerTimeout = 10 * time.Second

// errNotTaken means the service did not take the message and read none
// of it: run qmail-queue.
var errNotTaken = errors.New("queue service did not take the message")

// dialService connects to root's queue service. Roots too long for a
// socket address are reached through /proc/self/fd. The connect does not
// wait: a service whose backlog is full (stopped, or swamped) makes it
// fail with EAGAIN, and one that does not complete within AnswerTimeout
// is given up; both are errNotTaken (run qmail-queue), so that the
// service is never needed for mail to be queued. A socket with more than
// one link is errNotTaken too: the service binds a new one at each start,
// so a second name is a copy's (cp -al of the tree), and the service on
// the other end would queue into the tree it was copied from. The
// descriptor returned is non-blocking.
func dialService(root string) (int, error) {
	path := filepath.Join(root, ServiceSocket)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err == nil && st.Nlink > 1 {
		return -1, errNotTaken
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	if len(path) >= 100 {
		dfd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(fd)
			return -1, err
		}
		defer unix.Close(dfd)
		path = "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + filepath.Base(path)
	}
	if err := connectWithin(fd, &unix.SockaddrUnix{Name: path}, AnswerTimeout); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// connectWithin connects the non-blocking socket fd to sa, waiting at
// most wait for a connect in progress. A full backlog (EAGAIN) or a
// connect not done in time is errNotTaken.
func connectWithin(fd int, sa unix.Sockaddr, wait time.Duration) error {
	err := unix.Connect(fd, sa)
	if err == unix.EINTR {
		// An interrupted connect goes on in the background; its end is
		// polled for below, as for EINPROGRESS.
		err = unix.EINPROGRESS
	}
	switch err {
	case nil:
		return nil
	case unix.EAGAIN:
		return errNotTaken
	case unix.EINPROGRESS, unix.EALREADY:
	default:
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errNotTaken
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, max(int(left/time.Millisecond), 1))
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return err
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
}

// setUID reports whether the process runs with an effective uid other
// than its real one; a variable for tests.
var setUID = func() bool { return os.Getuid() != os.Geteuid() }

// viaService queues msg through root's queue service. It returns
// errNotTaken when there is no service or it did not take the message
// (nothing of msg was read); any other failure is the result, as if
// qmail-queue had ended that way.
func viaService(root string, msg io.Reader, env *Envelope, started func(int)) (pid int, id uint64, err error) {
	if setUID() {
		// The service knows its caller by SO_PEERCRED, which holds the
		// effective uid; qmail records the real one. A set-uid caller
		// runs qmail-queue, which records its real uid.
		return 0, 0, errNotTaken
	}
	fd, err := dialService(root)
	if err != nil {
		return 0, 0, errNotTaken
	}
	// The caller waits for the answer and the result (the commit: about
	// two disk round trips) in the runtime's poller, not in a blocking
	// recvmsg(2) during which the runtime's monitor thread would wake every
	// 20 us (pkg/pollfd): sendmail and qmail-inject are short-lived
	// programs, one per message, and that polling was a tenth of their CPU.
	sock := pollfd.File(fd, "queue service")
	defer sock.Close()
	rc, err := sock.SyscallConn()
	if err != nil {
		return 0, 0, errNotTaken
	}
	envR, envW, err := os.Pipe()
	if err != nil {
		return 0, 0, errNotTaken
	}
	defer envW.Close()
	// The message always goes through a pipe of ours, even when it is a
	// file: a descriptor of the caller's file would share its offset, and
	// a service that says "go" only after we gave up waiting (and ran
	// qmail-queue on the same file) would read from under qmail-queue. A
	// late "go" finds our pipes closed and gives up (54).
	msgR, msgW, err := os.Pipe()
	if err != nil {
		envR.Close()
		return 0, 0, errNotTaken
	}
	defer msgW.Close()
	// The request is one small packet on a new connection, which always
	// has room; the deadline only makes sure nothing can hold us here.
	sock.SetDeadline(time.Now().Add(AnswerTimeout))
	err = pollfd.Sendmsg(rc, []byte(svcRequest), unix.UnixRights(int(msgR.Fd()), int(envR.Fd())))
	envR.Close()
	msgR.Close()
	if err != nil {
		return 0, 0, errNotTaken
	}
	sock.SetReadDeadline(time.Now().Add(AnswerTimeout))
	var b [64]byte
	n, _, _, err := pollfd.Recvmsg(rc, b[:], nil, 0)
	if err != nil || string(b[:n]) != svcGo {
		return 0, 0, errNotTaken
	}
	sock.SetDeadline(time.Time{}) // the result comes when the message is committed
	pid = os.Getpid()
	if started != nil {
		started(pid)
	}

	writeFailed := feed(msgW, msg, envW, env) // as for qmail-queue
	n, _, _, err = pollfd.Recvmsg(rc, b[:len(b)-1], nil, 0)
	if err != nil || n == 0 {
		return pid, 0, qerr.Temp("qq crashed (#4.3.0)")
	}
	code, id, ok := parseResult(append(b[:n], '\n'))
	if !ok {
		return pid, 0, qerr.Temp("qq crashed (#4.3.0)")
	}
	if code == 0 && writeFailed {
		return pid, 0, ExitError(ExitRead)
	}
	if code != 0 {
		return pid, 0, ExitError(code)
	}
	return pid, id, nil
}

func sendPacket(fd int, p, oob []byte) error {
	for {
		err := unix.Sendmsg(fd, p, oob, nil, unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return err
		}
	}
}

// ServiceRequest is one caller's request as the service receives it.
type ServiceRequest struct {
	Message  int // descriptor: the message (qmail-queue's fd 0)
	Envelope int // descriptor: the envelope (qmail-queue's fd 1)
	UID, PID int // the caller, from SO_PEERCRED

	msgKind, envKind fdKind // how to close them (Close)
}

// ErrBadRequest is a request the service does not take: another protocol
// version, no or too many descriptors, or an AF_UNIX socket or a file of
// /proc among them (servicefds.go). ReceiveRequest has answered "no" to it.
var ErrBadRequest = errors.New("bad queue service request")

// ReceiveRequest reads the request on an accepted connection, waiting at
// most wait. A request it does not take is answered "no" (ErrBadRequest);
// on any error the descriptors that arrived are closed, as closePassed
// closes them. Each descriptor of a request taken is looked at once
// (fstat), so that Close knows how to close it.
func ReceiveRequest(conn int, wait time.Duration) (*ServiceRequest, error) {
	tv := unix.NsecToTimeval(wait.Nanoseconds())
	unix.SetsockoptTimeval(conn, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var b [16]byte
	// Room for every descriptor a packet can carry: those that did not
	// fit would be closed by the kernel on this thread, lingering or not.
	var oob [oobCap]byte
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(conn, b[:], oob[:], unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	var fds []int
	if err == nil {
		fds = rights(oob[:oobn])
	}
	fail := func(e error) (*ServiceRequest, error) {
		if e == ErrBadRequest {
			Refuse(conn)
		}
		closePassed(fds...)
		return nil, e
	}
	if err != nil {
		return fail(err)
	}
	if n == 0 && len(fds) == 0 {
		return fail(io.EOF)
	}
	if string(b[:n]) != svcRequest || len(fds) != 2 || flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		return fail(ErrBadRequest)
	}
	req := &ServiceRequest{Message: fds[0], Envelope: fds[1], msgKind: passedKind(fds[0]), envKind: passedKind(fds[1])}
	if req.msgKind == kindUnix || req.envKind == kindUnix || onProc(fds[0]) || onProc(fds[1]) {
		return fail(ErrBadRequest)
	}
	cred, err := unix.GetsockoptUcred(conn, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fail(err)
	}
	req.UID, req.PID = int(cred.Uid), int(cred.Pid)
	return req, nil
}

// Refuse answers "no" without waiting (the answer is one small packet on
// a new connection, which always has room): the service is not taking
// the message. The connection and any request on it are left to the
// caller of Refuse (CloseConn).
func Refuse(conn int) error {
	for {
		err := unix.Sendmsg(conn, []byte(svcNo), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			return err
		}
	}
}

// rights returns the descriptors that arrived in the control data oob.
func rights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

// Answer tells the caller whether the service takes its message.
func Answer(conn int, take bool) error {
	a := svcNo
	if take {
		a = svcGo
	}
	return sendPacket(conn, []byte(a), nil)
}

// SendResult sends the result of a taken message.
func SendResult(conn, code int, id uint64) error {
	b := strconv.AppendInt(nil, int64(code), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, id, 10)
	return sendPacket(conn, b, nil)
}
