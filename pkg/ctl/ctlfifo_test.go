package ctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestRequestLockSwappedForLink: while qmailctl waits for a reader of
// queue/lock/sendctl, qmailq (the owner of queue/ and queue/lock) swaps
// queue/lock for a symbolic link to another directory, whose sendctl has
// a reader: the request is not written there (rinst QA: root wrote
// "delete 12345" into a FIFO of qmailq's choosing), it fails naming the
// link.
func TestRequestLockSwappedForLink(t *testing.T) {
	root := makeTree(t)
	mkfifo(t, root)
	startFake(t, root) // holds the lock, never reads sendctl
	decoy := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(decoy, "sendctl"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Its reader: opened read-write, so that a write would not fail for
	// want of one, and non-blocking, so that the look below does not wait.
	// A raw descriptor: an *os.File would wait in Go's poller.
	rd, err := syscall.Open(filepath.Join(decoy, "sendctl"), syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(rd)
	type answer struct {
		r   Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, _, err := Request(root, "delete", "12345", 3*time.Second)
		done <- answer{r, err}
	}()
	time.Sleep(300 * time.Millisecond) // Request is in its wait for a reader
	lock := filepath.Join(root, "queue", "lock")
	if err := os.Rename(lock, lock+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(decoy, lock); err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Request did not return within 15 s")
	}
	if a.err == nil || !errors.Is(a.err, qhome.ErrSymlink) || !strings.Contains(a.err.Error(), "queue/lock") {
		t.Errorf("Request = %+v, %v; want an error naming queue/lock as a symbolic link", a.r, a.err)
	}
	buf := make([]byte, 256)
	if n, err := syscall.Read(rd, buf); n > 0 || err != syscall.EAGAIN {
		t.Errorf("the FIFO the link points to got %q (%v); want nothing", buf[:max(n, 0)], err)
	}
}

// TestWriteHeldOwner: run as root, qmailctl gives queue/bounce/heldmsgs
// the owner of the directory it writes it in (qmails). That owner is
// taken from the directory as reached (qhome.ReplaceFileDir), which
// qhome's TestReplaceFileDir shows for a directory swapped meanwhile.
func TestWriteHeldOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file away")
	}
	root := makeTree(t)
	bounce := filepath.Join(root, "queue", "bounce")
	if err := os.Chown(bounce, 64241, 64240); err != nil {
		t.Fatal(err)
	}
	if err := writeHeld(root, map[uint64]bool{5: true}); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, HeldFile), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 64241 || st.Gid != 64240 {
		t.Errorf("heldmsgs owned by %d:%d; want 64241:64240", st.Uid, st.Gid)
	}
}
