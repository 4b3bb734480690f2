package pollfd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// A pipe becomes a File that waits in the poller: a read deadline works
// (it does only for polled descriptors), and a read that has to wait
// still returns the data once it comes.
func TestPipe(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	w := os.NewFile(uintptr(p[1]), "w")
	defer w.Close()
	r := File(p[0], "r")
	defer r.Close()
	if !nonblocking(t, p[0]) {
		t.Fatal("pipe left blocking")
	}
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	b := make([]byte, 8)
	if _, err := r.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with a deadline on an empty pipe: %v", err)
	}
	r.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte("hi"))
	}()
	if n, err := r.Read(b); err != nil || string(b[:n]) != "hi" {
		t.Fatalf("read %q %v", b[:n], err)
	}
}

// A socket is switched too; a regular file is left as it is.
func TestKinds(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s := File(fds[0], "s")
	defer s.Close()
	if !nonblocking(t, fds[0]) {
		t.Error("socket left blocking")
	}
	fd, err := unix.Open(filepath.Join(t.TempDir(), "f"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := File(fd, "f")
	defer f.Close()
	if nonblocking(t, fd) {
		t.Error("regular file switched to non-blocking")
	}
}
