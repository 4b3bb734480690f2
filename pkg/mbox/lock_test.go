package mbox

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// lockerEnv makes the test binary a mail reader holding a lock on an mbox:
// "flock:PATH" or "fcntl:PATH". fcntl locks of one process never conflict
// with each other, so the holder must be another process.
const lockerEnv = "HQMAIL_TEST_MBOX_LOCKER"

func TestMain(m *testing.M) {
	if v := os.Getenv(lockerEnv); v != "" {
		holdLock(v)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdLock takes the lock named by v, prints "locked", and keeps it until
// its standard input ends.
func holdLock(v string) {
	kind, path, _ := strings.Cut(v, ":")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		switch kind {
		case "flock":
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		case "fcntl":
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk)
		default:
			err = errors.New("unknown lock kind " + kind)
		}
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
}

// startLocker starts a process holding a lock of kind on path and returns
// once it holds it. release ends it and returns once it is gone, its lock
// with it.
func startLocker(t *testing.T, kind, path string) (release func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), lockerEnv+"="+kind+":"+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line := make([]byte, len("locked\n"))
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "locked\n" {
		t.Fatalf("%s locker: %q %v", kind, line, err)
	}
	return func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s locker: %v", kind, err)
		}
		done = true
	}
}

// A delivery is deferred while another process holds either lock kind:
// the flock that qmail takes, or the fcntl lock of procmail, mutt, Dovecot,
// s-nail and mailx.
func TestDeliverDefersToEitherLock(t *testing.T) {
	setLockTimeout(t, 300*time.Millisecond)
	for _, kind := range []string{"flock", "fcntl"} {
		t.Run(kind, func(t *testing.T) {
			fn := filepath.Join(t.TempDir(), "Mailbox")
			if err := os.WriteFile(fn, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			release := startLocker(t, kind, fn)
			err := Deliver(fn, []byte("From x\n"), strings.NewReader("y\n"))
			var qe *qerr.Error
			if !errors.As(err, &qe) || qe.Perm || qe.Text != TextLocked {
				t.Errorf("%s held: %v, want %q", kind, err, TextLocked)
			}
			if st, _ := os.Stat(fn); st.Size() != 0 {
				t.Errorf("%s held: mbox was written: %d bytes", kind, st.Size())
			}
			release()
			if err := Deliver(fn, []byte("From x\n"), strings.NewReader("y\n")); err != nil {
				t.Errorf("after release: %v", err)
			}
		})
	}
}

// While another process holds an fcntl lock, Deliver waits without writing
// and without holding its flock, and delivers once the lock is gone.
func TestDeliverWaitsForFcntlLock(t *testing.T) {
	fn := filepath.Join(t.TempDir(), "Mailbox")
	old := "From old Mon Jan  5 08:00:00 2026\nold\n\n"
	if err := os.WriteFile(fn, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	release := startLocker(t, "fcntl", fn)
	// A descriptor of our own to test the flock with: flock locks belong
	// to open file descriptions, so it conflicts with Deliver's. It is
	// closed only after Deliver returned, since any close of the file in
	// this process would drop Deliver's fcntl lock.
	probe, err := os.Open(fn)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()

	pauses := 0
	setLockSleep(t, func(time.Duration) {
		pauses++
		if st, err := os.Stat(fn); err != nil || st.Size() != int64(len(old)) {
			t.Errorf("pause %d: mbox written while locked (%v)", pauses, err)
		}
		// Waiting for one lock, qmail-local holds none.
		if err := unix.Flock(int(probe.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("pause %d: flock held while waiting: %v", pauses, err)
		} else {
			unix.Flock(int(probe.Fd()), unix.LOCK_UN)
		}
		if pauses == 3 {
			release()
		}
	})
	setLockTimeout(t, time.Minute) // only a bound; the test releases the lock itself

	head := "From a@b Thu Nov 26 03:22:00 2026\n"
	if err := Deliver(fn, []byte(head), strings.NewReader("new\n")); err != nil {
		t.Fatal(err)
	}
	if pauses != 3 {
		t.Errorf("Deliver paused %d times for the fcntl lock, want 3", pauses)
	}
	if got, _ := os.ReadFile(fn); string(got) != old+head+"new\n\n" {
		t.Errorf("mbox = %q", got)
	}
}

// TestDeliverFileReplacedWhileLocked: a mail reader that rewrites the mbox
// into a new file and renames it over the old one under its lock (Python's
// mailbox module), or removes the mbox it emptied, leaves a delivery that
// opened the old file meanwhile with the locks of a file no name reaches:
// the message must go into the file the name has now, not into the old one
// (where it was lost while the delivery reported success).
func TestDeliverFileReplacedWhileLocked(t *testing.T) {
	for _, how := range []string{"renamed over", "removed"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			fn := filepath.Join(dir, "Mailbox")
			old := "From old Mon Jan  5 08:00:00 2026\nold\n\n"
			if err := os.WriteFile(fn, []byte(old), 0o600); err != nil {
				t.Fatal(err)
			}
			release := startLocker(t, "flock", fn)
			kept := "From kept Mon Jan  5 08:00:00 2026\nkept\n\n"
			setLockSleep(t, func(time.Duration) {
				if release == nil {
					return
				}
				// The reader's rewrite, then its unlock.
				switch how {
				case "renamed over":
					if err := os.WriteFile(fn+".new", []byte(kept), 0o600); err != nil {
						t.Error(err)
					}
					if err := os.Rename(fn+".new", fn); err != nil {
						t.Error(err)
					}
				case "removed":
					if err := os.Remove(fn); err != nil {
						t.Error(err)
					}
				}
				release()
				release = nil
			})
			setLockTimeout(t, time.Minute) // only a bound; the test releases the lock itself

			head := "From a@b Thu Nov 26 03:22:00 2026\n"
			if err := Deliver(fn, []byte(head), strings.NewReader("new\n")); err != nil {
				t.Fatal(err)
			}
			want := head + "new\n\n"
			if how == "renamed over" {
				want = kept + want
			}
			if b, err := os.ReadFile(fn); err != nil || string(b) != want {
				t.Errorf("mbox %q (%v), want %q: the message went into the file the reader replaced", b, err, want)
			}
		})
	}
}

// setLockTimeout sets LockTimeout for the test.
func setLockTimeout(t *testing.T, d time.Duration) {
	old := LockTimeout
	LockTimeout = d
	t.Cleanup(func() { LockTimeout = old })
}

// setLockSleep makes f the pause between lock attempts for the test.
func setLockSleep(t *testing.T, f func(time.Duration)) {
	old := lockSleep
	lockSleep = f
	t.Cleanup(func() { lockSleep = old })
}
