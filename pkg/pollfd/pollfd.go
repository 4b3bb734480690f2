// Package pollfd makes an inherited pipe or socket wait in the Go runtime's
// poller instead of in a blocking system call.
//
// Why it matters (docs/performance.md, "Removing without waiting, waiting
// without spinning"): a goroutine blocked in read(2) or recvmsg(2) keeps
// its P in the "in a system call" state, and while any P is in that state
// the runtime's monitor thread (sysmon) does not sleep deeply: it wakes
// every 20 µs to 10 ms to see whether to take the P back, and it starts
// over at 20 µs each time the call returns. The long-running programs of
// this project wait on their pipes most of the time, so during a hold
// release they woke about 50 times per delivery for nothing. A descriptor
// in non-blocking mode that the poller watches parks the goroutine instead
// and frees the P; with every P idle, sysmon sleeps until there is work.
//
// Only private descriptors may be switched: O_NONBLOCK belongs to the open
// file description, which every process holding a copy shares. qmail-start
// makes one pipe per pair of programs, so the pipes between qmail-send, the
// spawners and qmail-clean, and the sockets of kept programs, are private;
// a log descriptor or a terminal is not, and is left alone (File only
// switches pipes and sockets, and callers pass only their private ones).
package pollfd

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// File returns an *os.File for fd. When fd is a pipe or a socket it is
// first put in non-blocking mode, so that the File's reads and writes wait
// in the poller (they still behave as blocking ones for the caller). Any
// other kind of descriptor, or one whose mode cannot be changed, is
// returned as os.NewFile would.
func File(fd int, name string) *os.File {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO, unix.S_IFSOCK:
			unix.SetNonblock(fd, true)
		}
	}
	return os.NewFile(uintptr(fd), name)
}

// Recvmsg receives one packet (and its control data into oob) on the
// non-blocking socket of rc, waiting in the poller (and so honouring the
// File's read deadline). flags are added to MSG_DONTWAIT, e.g.
// MSG_CMSG_CLOEXEC.
func Recvmsg(rc syscall.RawConn, p, oob []byte, flags int) (n, oobn, recvflags int, err error) {
	if rerr := rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, recvflags, _, err = unix.Recvmsg(int(fd), p, oob, flags|unix.MSG_DONTWAIT)
			if err != unix.EINTR {
				return err != unix.EAGAIN
			}
		}
	}); rerr != nil {
		return 0, 0, 0, rerr
	}
	return n, oobn, recvflags, err
}

// Sendmsg sends one packet (with oob, e.g. SCM_RIGHTS) on the
// non-blocking socket of rc, waiting in the poller while the socket is
// full. A peer that is gone is an error (EPIPE), not a signal.
func Sendmsg(rc syscall.RawConn, p, oob []byte) error {
	var err error
	if werr := rc.Write(func(fd uintptr) bool {
		for {
			err = unix.Sendmsg(int(fd), p, oob, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
			if err != unix.EINTR {
				return err != unix.EAGAIN
			}
		}
	}); werr != nil {
		return werr
	}
	return err
}

// Wait waits for a started command to end, parked in the poller on a
// pidfd (Linux 5.10 and later), and then reaps it with cmd.Wait. A spawner
// with hundreds of children at once (a hold release at concurrencyremote
// 500) would otherwise hold one OS thread per child blocked in wait4(2):
// hundreds of threads, kept by the runtime after the release, and under a
// per-user process limit (which counts threads) the runtime dies when it
// cannot make one more. Where no pidfd can be had, it is cmd.Wait.
func Wait(cmd *exec.Cmd) error {
	if fd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK); err == nil {
		f := os.NewFile(uintptr(fd), "pidfd")
		if rc, err := f.SyscallConn(); err == nil {
			// As a read that would block: ask whether the child has
			// ended (without reaping it, cmd.Wait does that) and let the
			// poller wait for the pidfd to become readable if not. The
			// question must be asked each time, never assumed: readiness
			// that arrived before the wait began is not signalled again.
			rc.Read(func(pfd uintptr) bool {
				var info unix.Siginfo
				err := unix.Waitid(unix.P_PIDFD, int(pfd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
				// Linux writes si_signo = SIGCHLD for a child that has
				// changed state and 0 when there is none (WNOHANG).
				return err != nil || info.Signo != 0
			})
		}
		f.Close()
	}
	return cmd.Wait()
}
