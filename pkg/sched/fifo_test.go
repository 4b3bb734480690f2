package sched

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawnproto"
	"golang.org/x/sys/unix"
)

// A FIFO put where qmail-send expects one of its own queue files (only root
// or the qmail users can put one there) must never hold qmail-send in
// open(2) waiting for the other end (QA: lock/sendstatus, lock/sendmutex
// and bounce/ID each froze it). Each test runs the code in a goroutine
// (Run's own, or one of its own) and gives it hangWait to come back: a
// check for a hang, not a timing assert.

const hangWait = 10 * time.Second

// fifoAt makes a FIFO at name. With reader set, the test also holds its
// reading end open (so that a non-blocking open for writing succeeds and
// only the type check can refuse it) and returns it.
func fifoAt(t *testing.T, name string, reader bool) *os.File {
	t.Helper()
	if err := unix.Mkfifo(name, 0o644); err != nil {
		t.Fatal(err)
	}
	if !reader {
		return nil
	}
	r, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// unhang frees a writer held in open(2) on the FIFO name (a hang found:
// the test has failed already) by opening its reading end, and removes
// the FIFO so that the next open does not wait again; the test can then
// end without leaving the scheduler stuck.
func unhang(t *testing.T, name string) {
	if r, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		t.Cleanup(func() { r.Close() })
	}
	os.Remove(name)
}

// nothingRead checks that nothing was written into the FIFO whose reading
// end is r.
func nothingRead(t *testing.T, r *os.File) {
	t.Helper()
	if r == nil {
		return
	}
	buf := make([]byte, 512)
	n, err := syscall.Read(int(r.Fd()), buf)
	if n > 0 {
		t.Errorf("%q written into the FIFO", buf[:n])
	} else if err != nil && err != syscall.EAGAIN {
		t.Errorf("read of the FIFO: %v", err)
	}
}

// waitLogOrHang waits up to hangWait for the log to hold sub; a scheduler
// that never logs it is taken to hang on name.
func waitLogOrHang(t *testing.T, e *env, sub, name string) {
	t.Helper()
	deadline := time.Now().Add(hangWait)
	for e.log.count(sub) == 0 {
		if time.Now().After(deadline) {
			unhang(t, name)
			t.Fatalf("no %q within %v (qmail-send hangs on the FIFO %s, or takes it for a file); log:\n%s", sub, hangWait, filepath.Base(name), e.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFIFOSendstatus: a FIFO at lock/sendstatus is refused at once, with
// or without a reader at its other end, through the usual warning, logged
// once (not again at the HUP and the TERM that write the status again),
// and qmail-send runs on.
func TestFIFOSendstatus(t *testing.T) {
	for _, reader := range []bool{false, true} {
		t.Run(fmt.Sprintf("reader=%v", reader), func(t *testing.T) {
			root := newTree(t)
			name := filepath.Join(root, "queue", "lock", "sendstatus")
			r := fifoAt(t, name, reader)
			e := start(t, root, ok, ok)
			const warn = "warning: unable to write lock/sendstatus: not a regular file; "
			waitLogOrHang(t, e, warn, name)
			e.waitLog("status: local ", 1)
			e.sigs <- syscall.SIGHUP
			if code := e.stop(); code != 0 {
				t.Fatalf("exit %d; log:\n%s", code, e.log.String())
			}
			if n := e.log.count(warn); n != 1 {
				t.Errorf("warning logged %d times, want once; log:\n%s", n, e.log.String())
			}
			nothingRead(t, r)
			if st, err := os.Lstat(name); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("the FIFO was replaced: %v", err)
			}
		})
	}
}

// TestFIFOSendmutex: a FIFO at lock/sendmutex stops the start at once, as
// a mutex that cannot be opened does (alert, exit 111), with or without a
// reader at its other end (with one, qmail-send ran locking the pipe).
func TestFIFOSendmutex(t *testing.T) {
	for _, reader := range []bool{false, true} {
		t.Run(fmt.Sprintf("reader=%v", reader), func(t *testing.T) {
			root := newTree(t)
			name := filepath.Join(root, "queue", "lock", "sendmutex")
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
			r := fifoAt(t, name, reader)
			e := start(t, root, ok, ok)
			select {
			case code := <-e.done:
				e.exited = true
				if code != 111 || e.log.count("alert: cannot start: unable to open mutex\n") != 1 {
					t.Errorf("exit %d; log:\n%s", code, e.log.String())
				}
			case <-time.After(hangWait):
				unhang(t, name)
				t.Fatalf("no exit within %v on a FIFO sendmutex; log:\n%s", hangWait, e.log.String())
			}
			nothingRead(t, r)
		})
	}
}

// TestAppendRestFIFO: a FIFO at bounce/ID is no place for a failure
// paragraph: appendRest returns at once with ErrNotRegular (an error that
// addBounce tries again, the recipient not marked done meanwhile) and
// writes nothing into it, with or without a reader at its other end (with
// one, the paragraph went into the pipe and the recipient was marked done:
// the failure notice lost it).
func TestAppendRestFIFO(t *testing.T) {
	for _, reader := range []bool{false, true} {
		t.Run(fmt.Sprintf("reader=%v", reader), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bounce")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, "42")
			r := fifoAt(t, name, reader)
			var a appending
			done := make(chan error, 1)
			go func() { done <- a.appendRest(name, []byte("<a@example.org>:\nno mailbox here\n\n")) }()
			select {
			case err := <-done:
				if !errors.Is(err, qhome.ErrNotRegular) || a.done != 0 || a.made {
					t.Errorf("appendRest: %v, %d written, made %v; want ErrNotRegular, nothing written", err, a.done, a.made)
				}
			case <-time.After(hangWait):
				unhang(t, name)
				t.Fatalf("appendRest still waiting after %v on a FIFO", hangWait)
			}
			nothingRead(t, r)
		})
	}
}

// TestBounceFIFOKeepsRecipient: a permanent failure whose bounce/ID is a
// FIFO does not stop qmail-send in open(2) and loses no failure notice:
// the reason is logged once, then qmail's alert and its retry every 10
// seconds, the recipient not marked done; once the FIFO is gone the
// paragraph is written and the bounce sent with it. (The FIFO is made
// when the delivery runs: preprocessing removes a bounce/ID it finds,
// left by an earlier message of that id.) The retry makes this test last
// 10 seconds.
func TestBounceFIFOKeepsRecipient(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "nobody@local.example")
	bn := fnFlat("bounce", id)
	name := filepath.Join(root, "queue", bn)
	fail := func(spawnproto.Request) (byte, string) {
		if err := unix.Mkfifo(name, 0o600); err != nil {
			t.Error(err)
		}
		return 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n"
	}
	e := start(t, root, fail, ok)
	warn := "warning: unable to append to " + bn + ": not a regular file\n"
	waitLogOrHang(t, e, warn, name)
	e.waitLog("alert: unable to append to bounce message; HELP! sleeping...\n", 1)
	if e.log.count("end msg") != 0 {
		t.Fatalf("message ended with its bounce file a FIFO; log:\n%s", e.log.String())
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	var inj injected
	select {
	case inj = <-e.injects:
	case <-time.After(30 * time.Second):
		t.Fatalf("no bounce after the FIFO went; log:\n%s", e.log.String())
	}
	if !strings.Contains(inj.msg, "<nobody@local.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n") {
		t.Errorf("bounce without the failure paragraph:\n%s", inj.msg)
	}
	e.waitLog("end msg", 1)
	if n := e.log.count(warn); n != 1 {
		t.Errorf("warning logged %d times, want once; log:\n%s", n, e.log.String())
	}
}
