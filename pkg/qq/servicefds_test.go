package qq

import (
	"errors"
	"fmt"
	"github.com/hqmail/hqmail/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// closeBound is how long a close the service makes may take before the
// test fails: far less than the linger time of lingeringTCP, far more
// than a close that does not linger takes.
const closeBound = 20 * time.Second

// lingeringTCP returns a loopback TCP socket whose last close waits in the
// kernel for its linger time (60 s); testutil.LingeringSocket.
func lingeringTCP(t *testing.T) int {
	fd, _, _ := testutil.LingeringSocket(t, 60)
	return fd
}

// svcConn returns both ends of a connection to a listener set up as the
// service's is (SO_PASSCRED): the caller's end, closed by hangUp or at the
// end of the test, and the service's.
func svcConn(t *testing.T) (caller, conn int, hangUp func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 4); err != nil {
		t.Fatal(err)
	}
	caller, err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	hangUp = func() { once.Do(func() { unix.Close(caller) }) }
	t.Cleanup(hangUp)
	if err := unix.Connect(caller, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	conn, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	return caller, conn, hangUp
}

// send sends one packet with descriptors on s.
func send(t *testing.T, s int, p string, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(s, []byte(p), oob, nil, unix.MSG_NOSIGNAL); err != nil {
		t.Fatal(err)
	}
}

// pipe returns a pipe's read end, both ends closed at the end of the test.
func pipe(t *testing.T) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return int(r.Fd())
}

// within runs f and fails the test when it has not returned after
// closeBound (it is then left to end with the test's cleanups).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeBound):
		t.Fatalf("%s: still closing after %v (a lingering close on the service's thread)", what, closeBound)
	}
}

// answer reads the service's answer on the caller's end s, waiting at most
// ten seconds.
func answer(t *testing.T, s int) string {
	t.Helper()
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	b := make([]byte, 16)
	n, _, _, _, err := unix.Recvmsg(s, b, nil, 0)
	if err != nil {
		return "error " + err.Error()
	}
	return string(b[:n])
}

func TestOOBCap(t *testing.T) {
	if need := unix.CmsgSpace(MaxRights*4) + unix.CmsgSpace(unix.SizeofUcred); oobCap < need {
		t.Errorf("oobCap %d, need %d", oobCap, need)
	}
}

// Whatever a caller leaves in its connection, CloseConn (a refused
// connection's close, and a job's at its end) returns at once: a passed
// socket with SO_LINGER and unsent data, or one in flight in a passed
// AF_UNIX socket, is not closed with its lingering on this thread, neither
// by CloseConn nor by the kernel.
func TestCloseConnLingering(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(t *testing.T, caller, tcp int)
	}{
		{"request", func(t *testing.T, caller, tcp int) {
			send(t, caller, "Q1", tcp, pipe(t))
		}},
		{"after an empty packet", func(t *testing.T, caller, tcp int) {
			send(t, caller, "")
			send(t, caller, "Q1", pipe(t), tcp)
		}},
		{"more than the request's two", func(t *testing.T, caller, tcp int) {
			p := pipe(t)
			send(t, caller, "Q1", p, p, p, p, tcp)
		}},
		{"in flight in a seqpacket socket", func(t *testing.T, caller, tcp int) {
			c := carrier(t, unix.SOCK_SEQPACKET, tcp, false)
			send(t, caller, "Q1", c, pipe(t))
			unix.Close(c)
		}},
		{"in flight in a seqpacket socket with an error pending", func(t *testing.T, caller, tcp int) {
			c := carrier(t, unix.SOCK_SEQPACKET, tcp, true)
			send(t, caller, "Q1", c, pipe(t))
			unix.Close(c)
		}},
		{"in flight in an out-of-band packet of a stream socket", func(t *testing.T, caller, tcp int) {
			// No receive gets an out-of-band packet's descriptors (unless
			// asked for it): the kernel drops the packet as it passes it.
			sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Sendmsg(sp[1], []byte("x"), unix.UnixRights(tcp), nil, unix.MSG_OOB); err != nil {
				t.Skipf("no out-of-band data on AF_UNIX stream sockets here: %v", err)
			}
			unix.Close(sp[1])
			send(t, caller, "Q1", pipe(t), sp[0])
			unix.Close(sp[0])
		}},
		{"in flight in a stream socket", func(t *testing.T, caller, tcp int) {
			c := carrier(t, unix.SOCK_STREAM, tcp, false)
			send(t, caller, "Q1", pipe(t), c)
			unix.Close(c)
		}},
		{"in flight in a datagram socket", func(t *testing.T, caller, tcp int) {
			c := carrier(t, unix.SOCK_DGRAM, tcp, false)
			send(t, caller, "Q1", pipe(t), c)
			unix.Close(c)
		}},
		{"waiting on a stream listener", func(t *testing.T, caller, tcp int) {
			l := listenerCarrier(t, unix.SOCK_STREAM, tcp)
			send(t, caller, "Q1", l, l)
			unix.Close(l)
		}},
		{"waiting on a seqpacket listener in flight", func(t *testing.T, caller, tcp int) {
			l := listenerCarrier(t, unix.SOCK_SEQPACKET, tcp)
			c := carrier(t, unix.SOCK_SEQPACKET, l, false)
			unix.Close(l)
			send(t, caller, "Q1", pipe(t), c)
			unix.Close(c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller, conn, _ := svcConn(t)
			tcp := lingeringTCP(t)
			tc.send(t, caller, tcp)
			unix.Close(tcp) // the service's close is the last one
			within(t, "CloseConn", func() { CloseConn(conn) })
		})
	}
}

// A caller that hangs up with an answer unread leaves an error on its
// connection (ECONNRESET), which the service's next receive reports in
// place of a packet. CloseConn still empties what is queued behind it:
// stopping at the error would leave the caller's socket in flight for
// the kernel to close, lingering, on the job's thread (a slot held for as
// long as the caller's SO_LINGER says).
func TestCloseConnAfterReset(t *testing.T) {
	caller, conn, hangUp := svcConn(t)
	tcp := lingeringTCP(t)
	send(t, caller, "Q1", pipe(t), pipe(t))
	send(t, caller, "")
	send(t, caller, "", tcp)
	unix.Close(tcp)
	if err := Answer(conn, false); err != nil {
		t.Fatal(err)
	}
	hangUp()
	within(t, "CloseConn", func() { CloseConn(conn) })
}

// A socket whose lingering is on when the service makes its last close
// (a caller can turn it on again between any setsockopt of the service's
// and its close) does not make closeSockets wait.
func TestCloseSocketsLingering(t *testing.T) {
	tcp := lingeringTCP(t)
	within(t, "closeSockets", func() { closeSockets([]int{tcp}) })
	var st unix.Stat_t
	if err := unix.Fstat(tcp, &st); err == nil {
		t.Errorf("descriptor %d still open after closeSockets", tcp)
	}
}

// mainThreadEnv makes the test binary TestCloseSocketsMainThread's child.
const mainThreadEnv = "HQMAIL_QQ_MAIN_THREAD"

// closeOnMainThread is the child's work: closeSockets called from many
// goroutines at once (some of which the Go scheduler runs on the main
// thread, as it does qmail-queued's) closes what it was given, and leaves
// the main thread's table (the one /proc/self/fd shows) the process's own.
// It returns the exit code.
func closeOnMainThread() int {
	const rounds, width = 50, 8
	for range rounds {
		var reads []int
		var wg sync.WaitGroup
		for range width {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				fmt.Println(err)
				return 2
			}
			reads = append(reads, p[0])
			wg.Add(1)
			go func() {
				defer wg.Done()
				closeSockets([]int{p[1]})
			}()
		}
		wg.Wait()
		// Each write end closed for good: its read end sees the end of
		// file (a copy left in a table of the main thread's keeps it
		// open).
		for _, r := range reads {
			pfd := []unix.PollFd{{Fd: int32(r), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, 10000); n != 1 {
				fmt.Println("a pipe's write end is still open somewhere")
				return 1
			}
			unix.Close(r)
		}
		f, err := os.CreateTemp("", "qq-main-thread-")
		if err != nil {
			fmt.Println(err)
			return 2
		}
		os.Remove(f.Name())
		_, err = os.Stat("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
		f.Close()
		if err != nil {
			fmt.Println("a descriptor opened since is not in /proc/self/fd:", err)
			return 1
		}
	}
	return 0
}

// closeSockets run by a goroutine on the process's main thread does not
// leave that thread with a private descriptor table: Go never ends the
// main thread.
func TestCloseSocketsMainThread(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), mainThreadEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// carrier returns an AF_UNIX socket of type typ holding fd in flight in
// its queue, behind a packet without descriptors; its peer is closed. With
// reset the peer is closed with a packet unread, which leaves an error
// pending on a seqpacket or stream carrier (ECONNRESET). The caller closes
// it once passed, so that the service's copy is the last.
func carrier(t *testing.T, typ, fd int, reset bool) int {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if reset {
		send(t, sp[0], "unread")
	}
	send(t, sp[1], "data")
	send(t, sp[1], "x", fd)
	unix.Close(sp[1])
	return sp[0]
}

// listenerCarrier returns a listening AF_UNIX socket of type typ with a
// connection waiting on it that holds fd in flight in its queue; the
// connecting end is closed. The caller closes the listener once passed.
func listenerCarrier(t *testing.T, typ, fd int) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "l")
	l, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 4); err != nil {
		t.Fatal(err)
	}
	c, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	send(t, c, "x", fd)
	unix.Close(c)
	return l
}

// A request passing an AF_UNIX socket is refused with "no": the caller's
// own end of its connection (which the job would hold, never seeing the
// caller hang up), or any other (it can carry that end in flight). The
// caller's own end is not emptied: the "no" stays there to be read.
func TestReceiveRequestRefusesUnixSockets(t *testing.T) {
	for _, tc := range []struct {
		name string
		fds  func(t *testing.T, caller int) []int
	}{
		{"own end as message", func(t *testing.T, caller int) []int { return []int{caller, pipe(t)} }},
		{"own end as envelope", func(t *testing.T, caller int) []int { return []int{pipe(t), caller} }},
		{"socketpair carrying the own end", func(t *testing.T, caller int) []int {
			sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(sp[0]) })
			send(t, sp[1], "x", caller, sp[1])
			unix.Close(sp[1])
			return []int{sp[0], pipe(t)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller, conn, _ := svcConn(t)
			defer unix.Close(conn)
			send(t, caller, "Q1", tc.fds(t, caller)...)
			req, err := ReceiveRequest(conn, 10*time.Second)
			if err == nil {
				req.Close()
				t.Fatal("request taken")
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ReceiveRequest: %v, want ErrBadRequest", err)
			}
			if a := answer(t, caller); a != svcNo {
				t.Errorf("answer %q, want %q", a, svcNo)
			}
		})
	}
}

// TestReceiveRequestRefusesProc (security QA): a file of /proc passed as
// the message or the envelope is refused with "no". Some of them check
// who reads at each read: read by the service, a process's stat showed
// the caller the memory layout of the qmail daemons, which its own read
// (or the set-uid qmail-queue's) does not. A plain pipe is still taken.
func TestReceiveRequestRefusesProc(t *testing.T) {
	open := func(t *testing.T, name string) int {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	for _, tc := range []struct {
		name string
		fds  func(t *testing.T) []int
		take bool
	}{
		{"proc stat as message", func(t *testing.T) []int { return []int{open(t, "/proc/self/stat"), pipe(t)} }, false},
		{"proc wchan as envelope", func(t *testing.T) []int { return []int{pipe(t), open(t, "/proc/self/wchan")} }, false},
		{"pipes", func(t *testing.T) []int { return []int{pipe(t), pipe(t)} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller, conn, _ := svcConn(t)
			defer unix.Close(conn)
			send(t, caller, "Q1", tc.fds(t)...)
			req, err := ReceiveRequest(conn, 10*time.Second)
			if tc.take {
				if err != nil {
					t.Fatalf("ReceiveRequest: %v", err)
				}
				req.Close()
				return
			}
			if err == nil {
				req.Close()
				t.Fatal("request taken")
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ReceiveRequest: %v, want ErrBadRequest", err)
			}
			if a := answer(t, caller); a != svcNo {
				t.Errorf("answer %q, want %q", a, svcNo)
			}
		})
	}
}

// A request the service does not take is closed by ReceiveRequest, on the
// job's thread, without lingering; so are the descriptors of one taken,
// by ServiceRequest.Close.
func TestReceiveRequestLingering(t *testing.T) {
	for _, n := range []int{3, 8} {
		// Eight: more than the four the request's buffer had room for, so
		// that the kernel closed the rest itself, on this thread.
		t.Run("refused with "+strconv.Itoa(n), func(t *testing.T) {
			caller, conn, _ := svcConn(t)
			defer unix.Close(conn)
			tcp := lingeringTCP(t)
			fds := []int{}
			for range n - 1 {
				fds = append(fds, pipe(t))
			}
			send(t, caller, "Q1", append(fds, tcp)...)
			unix.Close(tcp)
			var err error
			within(t, "ReceiveRequest", func() { _, err = ReceiveRequest(conn, 10*time.Second) })
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("ReceiveRequest: %v, want ErrBadRequest", err)
			}
		})
	}
	t.Run("taken", func(t *testing.T) {
		caller, conn, _ := svcConn(t)
		defer unix.Close(conn)
		tcp := lingeringTCP(t)
		send(t, caller, "Q1", tcp, pipe(t))
		unix.Close(tcp)
		req, err := ReceiveRequest(conn, 10*time.Second)
		if err != nil {
			t.Fatalf("ReceiveRequest: %v", err)
		}
		within(t, "ServiceRequest.Close", req.Close)
	})
}
