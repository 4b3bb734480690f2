package sched

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Until qmail-send holds queue/lock/sendmutex, qmailctl finds it not
// running: it only changes the flag file and says the next start honours
// it. So the start must use the flags as they are once the lock is held,
// not as they were when Run began (review: a network hook's release at
// boot, while qmail started, was lost and remote mail stayed held).

// sendStatus returns queue/lock/sendstatus.
func sendStatus(root string) string {
	b, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	return string(b)
}

// onControlsChecked runs f where Run has checked the controls and not yet
// taken the lock.
func onControlsChecked(t *testing.T, f func()) {
	saved := controlsChecked
	t.Cleanup(func() { controlsChecked = saved })
	var once sync.Once
	controlsChecked = func() { once.Do(f) }
}

// TestFlagChangedBeforeLockHonoured: a hold flag changed after Run began
// and before it took the lock is the one qmail-send applies.
func TestFlagChangedBeforeLockHonoured(t *testing.T) {
	t.Run("remote released", func(t *testing.T) {
		root := newTree(t)
		ctl(t, root, "holdremote", "*\n")
		queueMsg(t, root, "ann@example.org", "x@remote.example")
		onControlsChecked(t, func() {
			if err := os.Remove(filepath.Join(root, "control/holdremote")); err != nil {
				t.Error(err)
			}
		})
		e := start(t, root, ok, ok)
		e.waitLog("status: local ", 1)
		if st := sendStatus(root); !strings.Contains(st, "holdremote no\n") {
			t.Errorf("sendstatus:\n%s\nwant holdremote no; log:\n%s", st, e.log.String())
		}
		e.waitRequests(chanRemote, 1) // the message is delivered, not held
	})
	t.Run("local held", func(t *testing.T) {
		root := newTree(t)
		onControlsChecked(t, func() { ctl(t, root, "holdlocal", "") })
		e := start(t, root, ok, ok)
		e.waitLog("status: local ", 1)
		if st := sendStatus(root); !strings.Contains(st, "holdlocal yes\n") {
			t.Errorf("sendstatus:\n%s\nwant holdlocal yes; log:\n%s", st, e.log.String())
		}
	})
	t.Run("domain list", func(t *testing.T) {
		root := newTree(t)
		onControlsChecked(t, func() { ctl(t, root, "holdremote", "held.example\n") })
		e := start(t, root, ok, ok)
		e.waitLog("status: local ", 1)
		if st := sendStatus(root); !strings.Contains(st, "holdremote held.example\n") {
			t.Errorf("sendstatus:\n%s\nwant holdremote held.example; log:\n%s", st, e.log.String())
		}
	})
}

// TestBadControlStillStopsBeforeLock: a control file that cannot be read
// stops the start before the lock is taken, with the alert naming it (the
// controls are checked before the lock, read again after it).
func TestBadControlStillStopsBeforeLock(t *testing.T) {
	root := newTree(t)
	// A directory where the flag file belongs cannot be read.
	if err := os.Mkdir(filepath.Join(root, "control/holdremote"), 0o755); err != nil {
		t.Fatal(err)
	}
	probe, err := os.Open(filepath.Join(root, "queue/lock/sendmutex"))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	// Held exclusively here: a qmail-send that reached the lock would
	// report another qmail-send running instead.
	if err := syscall.Flock(int(probe.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	reached := false
	onControlsChecked(t, func() { reached = true })
	e := start(t, root, ok, ok)
	if code := e.exitCode(); code != 111 {
		t.Errorf("exit %d, want 111", code)
	}
	want := "alert: cannot start: unable to read controls: control/holdremote: is a directory (qmail-install -check -root " + root + " says how to fix it)\n"
	if log := e.log.String(); log != want || reached {
		t.Errorf("reached the lock: %v; log:\n%s", reached, log)
	}
}

// TestHUPDuringStartApplied: once the lock is held, qmailctl finds
// qmail-send running and sends HUP after changing the flag. A HUP that
// comes while qmail-send is still starting (here: while it logs its first
// status line, before its signal reader runs) waits and is handled.
func TestHUPDuringStartApplied(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "holdremote", "*\n")
	starting, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	log := &lines{hook: func(p []byte) {
		if strings.HasPrefix(string(p), "status: local ") {
			once.Do(func() {
				close(starting)
				<-resume
			})
		}
	}}
	e := startLogging(t, root, ok, ok, [2][]byte{}, log)
	var resumeOnce sync.Once
	t.Cleanup(func() { resumeOnce.Do(func() { close(resume) }) }) // before the stop
	select {
	case <-starting:
	case <-time.After(10 * time.Second):
		t.Fatalf("no status line; log:\n%s", log.String())
	}
	if err := os.Remove(filepath.Join(root, "control/holdremote")); err != nil {
		t.Fatal(err)
	}
	e.sigs <- syscall.SIGHUP
	resumeOnce.Do(func() { close(resume) })
	e.wait("the HUP handled", func() bool { return strings.Contains(sendStatus(root), "generation 1\n") })
	if st := sendStatus(root); !strings.Contains(st, "holdremote no\n") {
		t.Errorf("sendstatus:\n%s\nwant holdremote no; log:\n%s", st, e.log.String())
	}
}

// TestControlFailureNamed: the alert of a start stopped by a control file
// keeps qmail's "unable to read controls" and adds the file and the
// reason, and points at qmail-install -check (QA: it said only "unable to
// read controls"). A host name file that is
// missing falls back to control/me, and an unreadable me is the one named.
func TestControlFailureNamed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, root string)
		reason string
	}{
		{"concurrencyremote", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "control/concurrencyremote"))
		}, "unable to read controls: control/concurrencyremote: is a directory"},
		{"me behind envnoathost", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "control/me"))
			mkdir(t, filepath.Join(root, "control/me"))
		}, "unable to read controls: control/me: is a directory"},
		// A FIFO in a file's place: the reason in plain words, as
		// qmail-showctl and sendmail give it (QA: "unknown error").
		{"concurrencyremote fifo", func(t *testing.T, root string) {
			mkfifo(t, filepath.Join(root, "control/concurrencyremote"))
		}, "unable to read controls: control/concurrencyremote: not a regular file"},
		{"locals fifo", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "control/locals"))
			mkfifo(t, filepath.Join(root, "control/locals"))
		}, "unable to read controls: control/locals: not a regular file"},
		{"no locals, no me", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "control/me"))
			os.Remove(filepath.Join(root, "control/locals"))
		}, "unable to read controls: neither control/locals nor control/me exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newTree(t)
			tc.setup(t, root)
			e := start(t, root, ok, ok)
			if code := e.exitCode(); code != 111 {
				t.Errorf("exit %d, want 111", code)
			}
			want := "alert: cannot start: " + tc.reason + " (qmail-install -check -root " + root + " says how to fix it)\n"
			if log := e.log.String(); log != want {
				t.Errorf("log:\n%s\nwant:\n%s", log, want)
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, name string) {
	t.Helper()
	if err := syscall.Mkfifo(name, 0o644); err != nil {
		t.Fatal(err)
	}
}
