package sched

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// replaceMutex puts a new file at queue/lock/sendmutex, as restoring a
// backup over the live queue does (tar unlinks and creates each file),
// and returns it open.
func replaceMutex(t *testing.T, root string) *os.File {
	t.Helper()
	name := filepath.Join(root, "queue/lock/sendmutex")
	if err := os.WriteFile(name+".new", []byte("4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".new", name); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestMutexReplacedWhileRunning: a sendmutex replaced while qmail-send
// runs is locked again and gets its pid, so that qmailctl finds it
// running and a second qmail-send cannot start on the same queue. Before,
// the lock stayed on the replaced file only (QA move: a backup restored
// over a live queue; a second qmail-send started, 150 duplicates).
func TestMutexReplacedWhileRunning(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1)
	probe := replaceMutex(t, root)
	e.trigger()
	e.waitLog("warning: queue/lock/sendmutex was replaced while qmail-send ran", 1)
	if err := syscall.Flock(int(probe.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		t.Fatal("the new sendmutex is not locked: a second qmail-send could start")
	}
	b, _ := os.ReadFile(probe.Name())
	if string(b) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("new sendmutex says %q, want this pid", b)
	}
	// Work goes on as before, and the warning is not repeated.
	queueMsg(t, root, "ann@example.org", "bob@local.example")
	e.trigger()
	e.waitLog("end msg", 1)
	if code := e.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
	if n := e.log.count("sendmutex was replaced"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, e.log.String())
	}
}

// TestMutexReplacedAndTaken: when the new sendmutex is held by another
// qmail-send already, this one stops as at TERM, starts nothing more, and
// leaves sendstatus to the other.
func TestMutexReplacedAndTaken(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1)
	other := replaceMutex(t, root)
	// The other qmail-send's lock (a lock on another open file of the
	// same file conflicts within one process too).
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	status := filepath.Join(root, "queue/lock/sendstatus")
	if err := os.WriteFile(status, []byte("pid 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	queueMsg(t, root, "ann@example.org", "bob@local.example")
	e.trigger()
	select {
	case code := <-e.done:
		e.exited = true
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running; log:\n%s", e.log.String())
	}
	log := e.log.String()
	if !strings.Contains(log, "alert: queue/lock/sendmutex was replaced while qmail-send ran and another qmail-send holds the new one") {
		t.Errorf("no alert:\n%s", log)
	}
	if strings.Contains(log, "starting delivery") {
		t.Errorf("a delivery started after the other qmail-send was seen:\n%s", log)
	}
	if b, _ := os.ReadFile(status); string(b) != "pid 4242\n" {
		t.Errorf("sendstatus written over: %q", b)
	}
}

// TestMutexGone: a sendmutex removed while qmail-send runs is warned
// about once; once a new file is there it is locked.
func TestMutexGone(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1)
	name := filepath.Join(root, "queue/lock/sendmutex")
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	e.trigger()
	e.waitLog("warning: unable to lock queue/lock/sendmutex again: no such file or directory", 1)
	e.trigger() // not said again
	probe := replaceMutex(t, root)
	e.trigger()
	e.waitLog("locked the new one", 1)
	if err := syscall.Flock(int(probe.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		t.Fatal("the new sendmutex is not locked")
	}
	if code := e.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
	if n := e.log.count("unable to lock queue/lock/sendmutex again"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, e.log.String())
	}
}
