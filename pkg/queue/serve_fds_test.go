package queue

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qq"
)

// serveSoon has a message queued through the service, asking again for
// at most 20 s while the service answers "no" (no slot free). It speaks
// the protocol itself rather than through qq.Queue, whose fallback forks
// a qmail-queue: the child's SIGCHLD, delivered to the thread blocked in a
// lingering close, would end that close early and hide the slot held.
func serveSoon(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mr, mw, _ := os.Pipe()
		er, ew, _ := os.Pipe()
		s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(er.Fd()))
		mr.Close()
		er.Close()
		if a == "go" {
			mw.WriteString("Subject: next\n\n")
			mw.Close()
			ew.Write((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode())
			ew.Close()
			r := readAnswer(t, s)
			unix.Close(s)
			if !strings.HasPrefix(r, "0 ") {
				t.Fatalf("the next caller's result %q, want 0 and an id", r)
			}
			return
		}
		mw.Close()
		ew.Close()
		unix.Close(s)
		if time.Now().After(deadline) {
			t.Fatalf("the next caller still answered %q after 20 s (a slot still held)", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendPipes sends a request on s passing the read ends of two new pipes,
// and returns their write ends (the message's and the envelope's).
func sendPipes(t *testing.T, s int) (mw, ew *os.File) {
	t.Helper()
	mw, ew, err := trySendPipes(t, s)
	if err != nil {
		t.Fatal(err)
	}
	return mw, ew
}

// trySendPipes is sendPipes returning the send's error (the pipes are
// closed then).
func trySendPipes(t *testing.T, s int) (mw, ew *os.File, err error) {
	t.Helper()
	mr, mw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	defer er.Close()
	if err := unix.Sendmsg(s, []byte("Q1"), unix.UnixRights(int(mr.Fd()), int(er.Fd())), nil, 0); err != nil {
		mw.Close()
		ew.Close()
		return nil, nil, err
	}
	return mw, ew, nil
}

// connectService connects the socket s to root's service through
// /proc/self/fd, as qq.dialService does for long roots: a TMPDIR of more
// than a few dozen bytes makes the socket's full path too long for an
// address. The directory descriptor is closed again at once, so that tests
// counting descriptors do not see it.
func connectService(s int, root string) error {
	path := filepath.Join(root, qq.ServiceSocket)
	d, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Connect(s, &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(d) + "/" + filepath.Base(path)})
}

// dial connects to the service; the connection is closed at the end of
// the test unless the test closes it first (close is idempotent here).
func dial(t *testing.T, root string) (s int, close func()) {
	t.Helper()
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	close = func() {
		if !closed {
			closed = true
			unix.Close(s)
		}
	}
	t.Cleanup(close)
	if err := connectService(s, root); err != nil {
		t.Fatal(err)
	}
	return s, close
}

// readAnswer reads one packet from the service, waiting at most 10 s.
func readAnswer(t *testing.T, s int) string {
	t.Helper()
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	b := make([]byte, 64)
	n, err := recvAnswer(s, b)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return string(b[:n])
}

// recvAnswer receives one packet on s, again after a signal: with
// SO_RCVTIMEO set, recvmsg(2) returns EINTR even for a signal whose
// handler asks for a restart (the runtime's, such as SIGURG).
func recvAnswer(s int, b []byte) (int, error) {
	for {
		n, _, _, _, err := unix.Recvmsg(s, b, nil, 0)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// A caller that makes the job hold its own end of the connection, then
// goes, must not keep a slot (for the 24-hour alarm, with an empty mess
// file): passing that end, or an AF_UNIX socket carrying it in flight, is
// refused with "no", nothing made; sending it in a packet after the
// request makes the job give up at once. Either way the one slot is free
// for the next caller.
func TestServiceSelfReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, root string)
	}{
		{"own end as message", func(t *testing.T, root string) {
			s, close := dial(t, root)
			mr, mw, _ := os.Pipe()
			defer mw.Close()
			if err := unix.Sendmsg(s, []byte("Q1"), unix.UnixRights(s, int(mr.Fd())), nil, 0); err != nil {
				t.Fatal(err)
			}
			mr.Close()
			if a := readAnswer(t, s); a != "no" {
				t.Errorf("answer %q, want no", a)
			}
			close()
		}},
		{"own end in flight in a socketpair", func(t *testing.T, root string) {
			s, close := dial(t, root)
			sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			// sp[0], the envelope, holds in flight the caller's end and
			// the message pipe's write end: the message would never end
			// (the envelope is read only after it), nor would the
			// hang-up come.
			mr, mw, _ := os.Pipe()
			if err := unix.Sendmsg(sp[1], []byte("x"), unix.UnixRights(s, int(mw.Fd()), sp[1]), nil, 0); err != nil {
				t.Fatal(err)
			}
			unix.Close(sp[1])
			mw.Close()
			if err := unix.Sendmsg(s, []byte("Q1"), unix.UnixRights(int(mr.Fd()), sp[0]), nil, 0); err != nil {
				t.Fatal(err)
			}
			unix.Close(sp[0])
			mr.Close()
			if a := readAnswer(t, s); a != "no" {
				t.Errorf("answer %q, want no", a)
			}
			close()
		}},
		{"own end in a packet after the request", func(t *testing.T, root string) {
			s, close := dial(t, root)
			mw, ew := sendPipes(t, s)
			if a := readAnswer(t, s); a != "go" {
				t.Fatalf("answer %q, want go", a)
			}
			waitFor(t, func() bool { return len(files(t, root)) > 0 }) // the job is reading
			// The connection's own queue now holds the caller's end and
			// the pipes' write ends; the caller goes.
			if err := unix.Sendmsg(s, nil, unix.UnixRights(s, int(mw.Fd()), int(ew.Fd())), nil, 0); err != nil {
				t.Fatal(err)
			}
			mw.Close()
			ew.Close()
			close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			service(t, root, 1)
			tc.run(t, root)
			waitFor(t, func() bool { return len(files(t, root)) == 0 })
			serveSoon(t, root)
		})
	}
}

// What a caller passed is closed without lingering at the end of a job
// (here a TCP socket with SO_LINGER {1, 60} and a full send queue, as the
// message of a caller that hangs up; or among the descriptors of a request
// the job refuses; or in packets sent after the request): the slot is
// free again at once, not after the linger time.
func TestServiceLingeringFreesSlot(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, root string)
	}{
		{"message of a caller gone", func(t *testing.T, root string) {
			fd, _, _ := testutil.LingeringSocket(t, 60)
			s, close := dial(t, root)
			er, ew, _ := os.Pipe()
			defer ew.Close()
			if err := unix.Sendmsg(s, []byte("Q1"), unix.UnixRights(fd, int(er.Fd())), nil, 0); err != nil {
				t.Fatal(err)
			}
			testutil.CloseNoLinger(t, fd)
			er.Close()
			if a := readAnswer(t, s); a != "go" {
				t.Fatalf("answer %q, want go", a)
			}
			close()
		}},
		{"request refused by the job", func(t *testing.T, root string) {
			fd, _, _ := testutil.LingeringSocket(t, 60)
			s, close := dial(t, root)
			if err := unix.Sendmsg(s, []byte("Q1"), unix.UnixRights(fd, fd, fd), nil, 0); err != nil {
				t.Fatal(err)
			}
			testutil.CloseNoLinger(t, fd)
			if a := readAnswer(t, s); a != "no" {
				t.Fatalf("answer %q, want no", a)
			}
			close()
		}},
		{"packet after the request", func(t *testing.T, root string) {
			fd, _, _ := testutil.LingeringSocket(t, 60)
			s, close := dial(t, root)
			mw, ew := sendPipes(t, s)
			defer mw.Close()
			defer ew.Close()
			if a := readAnswer(t, s); a != "go" {
				t.Fatalf("answer %q, want go", a)
			}
			if err := unix.Sendmsg(s, nil, unix.UnixRights(fd), nil, 0); err != nil {
				t.Fatal(err)
			}
			testutil.CloseNoLinger(t, fd)
			close()
		}},
		{"packets after the request", func(t *testing.T, root string) {
			// An empty packet first: the connection's emptying must not
			// take it for the end (Listen sets SO_PASSCRED for that).
			// Both are sent with the request, but the empty one alone
			// makes the job give up and shut the connection, which can
			// come before the second is sent (EPIPE). The attempt is then
			// made again, a bounded number of times; a retry can meet the
			// last one's slot not yet given back (a "no", or EPIPE once
			// the refusal has shut the connection, even before the
			// request is sent), and is made again too.
			for attempt := 1; ; attempt++ {
				fd, _, _ := testutil.LingeringSocket(t, 60)
				s, close := dial(t, root)
				mw, ew, err := trySendPipes(t, s)
				if err == unix.EPIPE && attempt > 1 && attempt < 20 {
					unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{})
					unix.Close(fd)
					close()
					serveSoon(t, root)
					continue
				} else if err != nil {
					t.Fatalf("attempt %d: request: %v", attempt, err)
				}
				err = unix.Sendmsg(s, nil, nil, nil, 0)
				if err == nil {
					err = unix.Sendmsg(s, nil, unix.UnixRights(fd), nil, 0)
				}
				if err == unix.EPIPE && attempt < 20 {
					// Still the test's alone: it may close it at once.
					unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{})
				} else if err != nil {
					t.Fatalf("attempt %d: %v", attempt, err)
				}
				testutil.CloseNoLinger(t, fd)
				a := readAnswer(t, s)
				close()
				mw.Close()
				ew.Close()
				switch {
				case err == nil && a == "go":
					return
				case err == nil && a == "no" && attempt > 1 && attempt < 20:
					// Refused: the last attempt's slot was still held.
				case err == nil:
					t.Fatalf("attempt %d: answer %q, want go", attempt, a)
				}
				serveSoon(t, root)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			service(t, root, 1)
			tc.run(t, root)
			serveSoon(t, root)
		})
	}
}

// Refused callers' descriptors are closed by the closers without
// lingering: with one closer and room for one connection waiting for it,
// three refused callers passing lingering sockets (SO_LINGER {1, 60}, full
// send queue) do not stop the service from answering the next caller at
// once.
func TestServiceRefusedLingering(t *testing.T) {
	savedClosers, savedBacklog := refusalClosers, refusalBacklog
	t.Cleanup(func() { refusalClosers, refusalBacklog = savedClosers, savedBacklog })
	refusalClosers, refusalBacklog = 1, 1
	root := newRoot(t)
	service(t, root, 1)
	holdSlot(t, root)
	for range 3 {
		fd, _, _ := testutil.LingeringSocket(t, 60)
		passLingering(t, root, fd)
	}
	mr, mw, _ := os.Pipe()
	defer mr.Close()
	defer mw.Close()
	s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(mr.Fd())) // fails the test after 10 s without an answer
	unix.Close(s)
	if a != "no" {
		t.Errorf("caller after refused lingering ones: answer %q, want no", a)
	}
}
