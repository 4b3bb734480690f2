package spawn

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMessageLinkNotFollowed: queue/mess and its split directories are
// qmailq's, and qmail-lspawn runs as root. A symbolic link qmailq puts in
// place of a message, or of its split directory, is refused without its
// target being opened (rinst QA: root opened a root-only FIFO the link
// pointed to, which its writer saw, before the type check refused it).
func TestMessageLinkNotFollowed(t *testing.T) {
	dir := messDir(t, "x\n")
	elsewhere := t.TempDir()
	fifo := filepath.Join(elsewhere, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A message that would be delivered if reached: behind a split
	// directory that is a link.
	os.Mkdir(filepath.Join(elsewhere, "d"), 0o755)
	if err := os.WriteFile(filepath.Join(elsewhere, "d", "400"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "3"), 0o755)
	if err := os.Symlink(fifo, filepath.Join(dir, "3", "300")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "d"), filepath.Join(dir, "4")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "d", "400"), filepath.Join(dir, "3", "301")); err != nil {
		t.Fatal(err)
	}

	// The FIFO's writer gets past its open only when someone opens the
	// FIFO for reading.
	opened := make(chan struct{})
	go func() {
		fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			syscall.Close(fd)
		}
		close(opened)
	}()
	h := start(t, &fake{}, Config{Owner: os.Getuid(), Dir: dir})
	for _, c := range []struct {
		slot int
		mess string
		text string
	}{
		{1, "3/300", TextWrongType[1:]}, // a link to a FIFO
		{2, "3/301", TextWrongType[1:]}, // a link to a regular file of the owner's
		{3, "4/400", TextOpen[1:]},      // the split directory a link
	} {
		h.send(c.slot, c.mess, "s@x", "joe@x")
		if r := h.report(); r.Slot != c.slot || r.Letter != 'Z' || r.Text != c.text {
			t.Errorf("%s: report %d %c %q; want %d Z %q", c.mess, r.Slot, r.Letter, r.Text, c.slot, c.text)
		}
	}
	h.finish()
	select {
	case <-opened:
		t.Error("the FIFO the link points to was opened for reading")
	case <-time.After(time.Second):
	}
	// Let the writer go.
	if fd, err := syscall.Open(fifo, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
		<-opened
		syscall.Close(fd)
	}
}
