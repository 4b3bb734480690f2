package mbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// TestDeliverWaitsForDotLockOverRename: Python's mailbox module rewrites an
// mbox into a new file under its fcntl lock and its dot-lock, then closes
// the old file (letting the fcntl lock go) and only later renames the new
// file over it, still holding the dot-lock. A delivery that gets the kernel
// locks in that gap must wait for the dot-lock to go, and then append to the
// new file, not to the old one the rename throws away.
func TestDeliverWaitsForDotLockOverRename(t *testing.T) {
	dir := t.TempDir()
	fn := filepath.Join(dir, "Mailbox")
	old := "From old Mon Jan  5 08:00:00 2026\nold\n\n"
	kept := "From kept Mon Jan  5 08:00:00 2026\nkept\n\n"
	if err := os.WriteFile(fn, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	// The reader: its dot-lock, its fcntl lock, the new file written, the
	// fcntl lock let go (Python's close).
	if err := os.WriteFile(fn+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	release := startLocker(t, "fcntl", fn)
	if err := os.WriteFile(fn+".new", []byte(kept), 0o600); err != nil {
		t.Fatal(err)
	}
	release()

	// A delivery starts in the reader's pause before its rename.
	paused := make(chan struct{})
	renamed := make(chan struct{})
	pauses := 0
	setLockSleep(t, func(time.Duration) {
		pauses++
		if pauses == 1 {
			close(paused)
			<-renamed
		}
	})
	setLockTimeout(t, time.Minute) // only a bound; the test removes the dot-lock itself
	head := "From a@b Thu Nov 26 03:22:00 2026\n"
	done := make(chan error, 1)
	go func() { done <- Deliver(fn, []byte(head), strings.NewReader("new\n")) }()
	var err error
	finished := false
	select {
	case <-paused:
	case err = <-done:
		finished = true // did not wait for the dot-lock
	}
	// The reader's rename, then its unlock.
	if rerr := os.Rename(fn+".new", fn); rerr != nil {
		t.Error(rerr)
	}
	if rerr := os.Remove(fn + ".lock"); rerr != nil {
		t.Error(rerr)
	}
	close(renamed)
	if !finished {
		err = <-done
	}
	if err != nil {
		t.Fatal(err)
	}
	want := kept + head + "new\n\n"
	if b, err := os.ReadFile(fn); err != nil || string(b) != want {
		t.Errorf("mbox %q (%v), want %q: the message went into the file the reader replaced", b, err, want)
	}
}

// A dot-lock last touched 10 minutes ago is stale: it does not delay the
// delivery, and it is left where it is.
func TestDeliverIgnoresStaleDotLock(t *testing.T) {
	fn := filepath.Join(t.TempDir(), "Mailbox")
	if err := os.WriteFile(fn+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	then := time.Now().Add(-10 * time.Minute)
	if err := os.Chtimes(fn+".lock", then, then); err != nil {
		t.Fatal(err)
	}
	setLockSleep(t, func(time.Duration) { t.Fatal("Deliver paused for a stale dot-lock") })
	head := "From a@b Thu Nov 26 03:22:00 2026\n"
	if err := Deliver(fn, []byte(head), strings.NewReader("new\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(fn); err != nil || string(b) != head+"new\n\n" {
		t.Errorf("mbox %q (%v)", b, err)
	}
	if _, err := os.Lstat(fn + ".lock"); err != nil {
		t.Errorf("stale dot-lock: %v, want it left alone", err)
	}
}

// A fresh dot-lock held past the limit defers the delivery with qmail's
// "locked for 30 seconds" text; nothing is written, the dot-lock is left
// alone, and qmail-local holds neither lock while it waits.
func TestDeliverDefersToFreshDotLock(t *testing.T) {
	fn := filepath.Join(t.TempDir(), "Mailbox")
	old := "From old Mon Jan  5 08:00:00 2026\nold\n\n"
	if err := os.WriteFile(fn, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fn+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	probe, err := os.Open(fn)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close() // only after Deliver: a close drops its fcntl lock
	setLockTimeout(t, 300*time.Millisecond)
	setDotLockPollMax(t, 20*time.Millisecond)
	pauses := 0
	setLockSleep(t, func(d time.Duration) {
		pauses++
		if err := unix.Flock(int(probe.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("pause %d: flock held while waiting for the dot-lock: %v", pauses, err)
		} else {
			unix.Flock(int(probe.Fd()), unix.LOCK_UN)
		}
		time.Sleep(d)
	})
	err = Deliver(fn, []byte("From x\n"), strings.NewReader("y\n"))
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Perm || qe.Text != TextLocked {
		t.Errorf("fresh dot-lock held: %v, want %q", err, TextLocked)
	}
	if pauses == 0 {
		t.Error("Deliver never paused for the dot-lock")
	}
	if b, _ := os.ReadFile(fn); string(b) != old {
		t.Errorf("mbox written under a fresh dot-lock: %q", b)
	}
	if _, err := os.Lstat(fn + ".lock"); err != nil {
		t.Errorf("dot-lock: %v, want it left alone", err)
	}
}

// setDotLockPollMax sets the longest pause for a dot-lock for the test.
func setDotLockPollMax(t *testing.T, d time.Duration) {
	old := dotLockPollMax
	dotLockPollMax = d
	t.Cleanup(func() { dotLockPollMax = old })
}
