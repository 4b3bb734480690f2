package qhome

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenQueueFIFO: queue/lock/sendctl is reached without following a
// link: queue/lock swapped for one (rinst QA: qmailctl, as root, wrote its
// request into the FIFO of the directory the link named), or sendctl
// itself one, is refused; so is what is not a FIFO. No reader: ENXIO, for
// the caller to retry.
func TestOpenQueueFIFO(t *testing.T) {
	root := t.TempDir()
	lock := filepath.Join(root, "queue", "lock")
	if err := os.MkdirAll(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(lock, "sendctl")
	if err := syscall.Mkfifo(name, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenQueueFIFO(name, os.O_WRONLY); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("no reader: %v; want ENXIO", err)
	}
	rd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(rd)
	f, err := OpenQueueFIFO(name, os.O_WRONLY)
	if err != nil {
		t.Fatalf("with a reader: %v", err)
	}
	f.Close()

	// queue/lock a link to a directory with a FIFO that has a reader.
	other := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(other, "sendctl"), 0o600); err != nil {
		t.Fatal(err)
	}
	ord, err := syscall.Open(filepath.Join(other, "sendctl"), syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ord)
	if err := os.Rename(lock, lock+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, lock); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenQueueFIFO(name, os.O_WRONLY); !errors.Is(err, ErrSymlink) {
		if f != nil {
			f.Close()
		}
		t.Errorf("queue/lock a link: %v; want ErrSymlink", err)
	}
	os.Remove(lock)
	os.Rename(lock+".real", lock)

	// sendctl a link to that FIFO; a regular file; nothing.
	os.Remove(name)
	if err := os.Symlink(filepath.Join(other, "sendctl"), name); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenQueueFIFO(name, os.O_WRONLY); !errors.Is(err, ErrSymlink) {
		t.Errorf("sendctl a link: %v; want ErrSymlink", err)
	}
	os.Remove(name)
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenQueueFIFO(name, os.O_WRONLY); !errors.Is(err, ErrNotFIFO) {
		t.Errorf("a regular file: %v; want ErrNotFIFO", err)
	}
	os.Remove(name)
	if _, err := OpenQueueFIFO(name, os.O_WRONLY); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nothing: %v; want fs.ErrNotExist", err)
	}
}

// TestReplaceFileDir: prep is given the directory the file is written
// in, as reached, even when the name of that directory is taken by
// another one meanwhile (qmailctl gave heldmsgs the owner of whatever
// queue/bounce named when it looked again).
func TestReplaceFileDir(t *testing.T) {
	root := t.TempDir()
	bounce := filepath.Join(root, "queue", "bounce")
	if err := os.MkdirAll(bounce, 0o755); err != nil {
		t.Fatal(err)
	}
	var orig unix.Stat_t
	if err := unix.Stat(bounce, &orig); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(bounce, "heldmsgs")
	var got unix.Stat_t
	err := ReplaceFileDir(path, []byte("1\n"), 0o600, func(f *os.File, dir *unix.Stat_t) error {
		// The swap, between the walk and the look at the owner.
		if err := os.Rename(bounce, bounce+".real"); err != nil {
			return err
		}
		if err := os.Mkdir(bounce, 0o700); err != nil {
			return err
		}
		got = *dir
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Ino != orig.Ino || got.Dev != orig.Dev {
		t.Errorf("prep got directory inode %d; want %d, the one written in", got.Ino, orig.Ino)
	}
	if b, err := os.ReadFile(filepath.Join(bounce+".real", "heldmsgs")); err != nil || string(b) != "1\n" {
		t.Errorf("the file in the directory reached: %q, %v", b, err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file in the directory put in its place: %v", err)
	}
	// A link in place of the directory: refused.
	os.RemoveAll(bounce)
	if err := os.Symlink(bounce+".real", bounce); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFileDir(path, []byte("2\n"), 0o600, nil); !errors.Is(err, ErrSymlink) {
		t.Errorf("queue/bounce a link: %v; want ErrSymlink", err)
	}
}
