package qq

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestServiceSilent: a service that takes the connection but never answers
// "go" or "no" holds the caller for AnswerTimeout only (else the test
// hangs until go test's own timeout); then the caller
// runs qmail-queue itself (absent in this tree, so its exec failure is the
// result), having written nothing to the service.
func TestServiceSilent(t *testing.T) {
	root := t.TempDir()
	ln := serviceSocket(t, root, 0)
	got := make(chan string, 1)
	go func() {
		c, _, err := unix.Accept(ln)
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer unix.Close(c)
		b := make([]byte, 16)
		oob := make([]byte, unix.CmsgSpace(2*4))
		n, oobn, _, _, err := unix.Recvmsg(c, b, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			got <- "recvmsg: " + err.Error()
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		var fds []int
		for i := range msgs {
			f, _ := unix.ParseUnixRights(&msgs[i])
			fds = append(fds, f...)
		}
		// Say nothing; once the caller has given up, its pipes are
		// closed and hold no message.
		var msg []byte
		if len(fds) == 2 {
			unix.Close(fds[1])
			buf := make([]byte, 64)
			for {
				k, err := unix.Read(fds[0], buf)
				if k <= 0 || err != nil {
					break
				}
				msg = append(msg, buf[:k]...)
			}
			unix.Close(fds[0])
		}
		got <- string(b[:n]) + " read " + string(msg)
	}()
	old := AnswerTimeout
	AnswerTimeout = 300 * time.Millisecond
	defer func() { AnswerTimeout = old }()
	_, err := Queue(Options{Root: root, Env: []string{}}, strings.NewReader("x\n"), &Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	if err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
		t.Errorf("after a silent service: %v, want qmail-queue's exec to be tried", err)
	}
	select {
	case s := <-got:
		if s != "Q1 read " {
			t.Errorf("service saw %q, want the request and no message", s)
		}
	case <-time.After(time.Minute):
		t.Fatal("the fake service saw nothing")
	}
}

// TestServiceNotForSetUID: a set-uid caller does not use the service (it
// would record the effective uid; qmail-queue records the real one): it
// does not even connect.
func TestServiceNotForSetUID(t *testing.T) {
	root := t.TempDir()
	ln := serviceSocket(t, root, unix.SOCK_NONBLOCK)
	old := setUID
	setUID = func() bool { return true }
	t.Cleanup(func() { setUID = old })
	_, err := Queue(Options{Root: root, Env: []string{}}, strings.NewReader("x\n"), &Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	if err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
		t.Errorf("set-uid caller: %v, want qmail-queue's exec to be tried", err)
	}
	if _, _, err := unix.Accept(ln); err != unix.EAGAIN {
		t.Errorf("the service was connected to (accept: %v)", err)
	}
}

// TestServiceBacklogFull: a service that does not accept (stopped with
// SIGSTOP, or swamped) and whose listen backlog is full must not hold the
// caller in connect(2): dialService gives up at once with errNotTaken, and
// Queue runs qmail-queue instead (absent in this tree, so its exec failure
// is the result).
func TestServiceBacklogFull(t *testing.T) {
	root := t.TempDir()
	ln := serviceSocket(t, root, 0)
	if err := unix.Listen(ln, 0); err != nil { // the smallest backlog
		t.Fatal(err)
	}
	// Fill the backlog: connect without waiting until the kernel says it
	// is full.
	full := false
	for i := 0; i < 1000 && !full; i++ {
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(c) })
		switch err := unix.Connect(c, &unix.SockaddrUnix{Name: filepath.Join(root, ServiceSocket)}); err {
		case nil:
		case unix.EAGAIN:
			full = true
		default:
			t.Fatalf("connect: %v", err)
		}
	}
	if !full {
		t.Fatal("backlog never full")
	}
	type result struct {
		fd  int
		err error
	}
	got := make(chan result, 1)
	go func() {
		fd, err := dialService(root)
		got <- result{fd, err}
	}()
	select {
	case r := <-got:
		if r.err == nil {
			unix.Close(r.fd)
		}
		if !errors.Is(r.err, errNotTaken) {
			t.Errorf("dialService with the backlog full: %v, want errNotTaken", r.err)
		}
	case <-time.After(30 * time.Second):
		// Without the fix dialService sits in connect(2) for good; the
		// listener's close at the end of the test lets it go.
		t.Fatal("dialService still connecting after 30 s")
	}
	done := make(chan error, 1)
	go func() {
		_, err := Queue(Options{Root: root, Env: []string{}}, strings.NewReader("x\n"), &Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
			t.Errorf("Queue with the backlog full: %v, want qmail-queue's exec to be tried", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Queue still waiting after 30 s")
	}
}

// serviceSocket listens where a tree at root has its queue service's
// socket, with extra socket flags; it is closed at the end of the test.
func serviceSocket(t *testing.T, root string, flags int) int {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "public"), 0o755)
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ln) })
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: filepath.Join(root, ServiceSocket)}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 4); err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServiceSocketSharedByCopy (multi-instance QA): a socket with more
// than one link is a copy's (cp -al of the tree; the service binds a new
// one at each start): dialService does not use it, and the caller runs
// qmail-queue of its own tree. The copy's sendmail queued into the tree
// it was copied from, under that tree's controls and holds.
func TestServiceSocketSharedByCopy(t *testing.T) {
	root := t.TempDir()
	ln := serviceSocket(t, root, 0)
	if err := unix.Listen(ln, 4); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, ServiceSocket)
	other := filepath.Join(t.TempDir(), "qmail-queue")
	if err := os.Link(sock, other); err != nil {
		t.Fatal(err)
	}
	if fd, err := dialService(root); !errors.Is(err, errNotTaken) {
		if err == nil {
			unix.Close(fd)
		}
		t.Errorf("dialService with the socket linked twice: %v, want errNotTaken", err)
	}
	os.Remove(other)
	fd, err := dialService(root)
	if err != nil {
		t.Fatalf("dialService with one link: %v", err)
	}
	unix.Close(fd)
}
