package sched

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestHoldLogWriteRetried: a hold change that cannot be recorded in
// bounce/holdperiods (here the name of its temporary file is taken by a
// directory) is logged once and written again every sleepSysfail seconds
// until it succeeds, without waiting for the next change of the flags: a
// restart meanwhile read the old file, and the time held since counted
// toward queuelifetime.
func TestHoldLogWriteRetried(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	block := filepath.Join(root, "queue", "bounce", HoldLogName+".tmp")
	if err := os.Mkdir(block, 0o700); err != nil {
		t.Fatal(err)
	}
	e := startSpiedClock(t, root, &record{}, clock.Load)
	warn := "warning: unable to write bounce/" + HoldLogName + ": is a directory\n"
	wrote := "info: bounce/" + HoldLogName + " written after an earlier failure\n"
	e.waitLog(warn, 1)

	// A retry that fails again is not logged again. Each request is a
	// loop turn; the second one's answer means the first turn is over.
	clock.Add(sleepSysfail + 1)
	e.request("w1", "hold", "99999")
	e.request("w2", "hold", "99999")
	if e.exists("bounce/"+HoldLogName) || e.log.count(warn) != 1 {
		t.Fatalf("with the write still failing: %d warnings, file there %v; log:\n%s",
			e.log.count(warn), e.exists("bounce/"+HoldLogName), e.log.String())
	}

	// Mended: written at the next retry, not before.
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	e.request("w3", "hold", "99999")
	e.request("w4", "hold", "99999")
	if e.exists("bounce/" + HoldLogName) {
		t.Fatalf("written before its retry time; log:\n%s", e.log.String())
	}
	clock.Add(sleepSysfail + 1)
	e.request("w5", "hold", "99999")
	e.waitLog(wrote, 1)
	b, err := os.ReadFile(filepath.Join(root, "queue", "bounce", HoldLogName))
	if err != nil || !strings.Contains(string(b), "remote ") {
		t.Fatalf("holdperiods %q (%v), want the remote hold's period", b, err)
	}
	// Nothing more to retry: no more writes, no more lines.
	clock.Add(sleepSysfail + 1)
	e.request("w6", "hold", "99999")
	e.request("w7", "hold", "99999")
	if n, m := e.log.count(warn), e.log.count(wrote); n != 1 || m != 1 {
		t.Errorf("%d warnings and %d notes of the write, want 1 each; log:\n%s", n, m, e.log.String())
	}
	e.stop()
}

// TestHoldLogWrittenAtExit: a hold log whose writes failed is tried once
// more when qmail-send stops, whatever the retry time.
func TestHoldLogWrittenAtExit(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdlocal", "")
	block := filepath.Join(root, "queue", "bounce", HoldLogName+".tmp")
	if err := os.Mkdir(block, 0o700); err != nil {
		t.Fatal(err)
	}
	e := startSpiedClock(t, root, &record{}, clock.Load)
	e.waitLog("warning: unable to write bounce/"+HoldLogName, 1)
	os.Remove(block)
	e.stop()
	b, err := os.ReadFile(filepath.Join(root, "queue", "bounce", HoldLogName))
	if err != nil || !strings.Contains(string(b), "local ") {
		t.Errorf("holdperiods after the stop %q (%v), want the local hold's period", b, err)
	}
}

// TestHeldMsgsWriteRetried: the held set written at start without the
// ids of messages gone (pruneHeld) is written again later when that write
// fails, so that an id left in the file cannot hold a new message that
// gets the same id (the inode number) before the next restart.
func TestHeldMsgsWriteRetried(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkCtlFIFO(t, root)
	name := filepath.Join(root, "queue", "bounce", HeldMsgsName)
	if err := os.WriteFile(name, []byte("# held\n424242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	block := name + ".tmp"
	if err := os.Mkdir(block, 0o700); err != nil {
		t.Fatal(err)
	}
	e := startSpiedClock(t, root, &record{}, clock.Load)
	e.waitLog("warning: unable to write bounce/"+HeldMsgsName+"\n", 1)
	os.Remove(block)
	clock.Add(sleepSysfail + 1)
	e.request("w1", "hold", "99999")
	e.waitLog("info: bounce/"+HeldMsgsName+" written after an earlier failure\n", 1)
	if held, err := LoadHeld(filepath.Join(root, "queue")); err != nil || held[424242] {
		t.Errorf("held set after the retry %v (%v): the gone message's id is still there", held, err)
	}
	e.stop()
}

// TestHoldAddressWriteFails: a hold by address whose write of the held
// set fails is answered defer and leaves the held set as it was. Memory
// used to be read back from the file, and when that read failed too (the
// file a directory here; no descriptor left in the QA that found it) the
// held set was emptied: every message held by id was released.
func TestHoldAddressWriteFails(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	queueMsg(t, root, "joe@example.org", "a@remote.example")
	ann := queueMsg(t, root, "ann@example.org", "b@remote.example")
	e := start(t, root, ok, ok)
	e.wait("the messages preprocessed", func() bool { return e.log.count("info msg ") == 2 })
	sid := utoa(ann)
	if got := e.request("h0", "hold", sid); got != ResultOK+" message "+sid+" held" {
		t.Fatalf("hold %s: %q", sid, got)
	}
	// A directory where the file is: neither written nor read.
	name := filepath.Join(root, "queue", "bounce", HeldMsgsName)
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(name, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := e.request("h1", "hold-from", "joe@example.org"); !strings.HasPrefix(got, ResultDefer+" ") {
		t.Fatalf("hold-from with the file a directory: %q, want defer", got)
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	if got := e.request("h2", "hold", sid); got != ResultOK+" message "+sid+" is already held" {
		t.Errorf("hold %s after the failed hold-from: %q, want it still held", sid, got)
	}
	if got := e.request("h3", "hold-from", "joe@example.org"); !strings.HasPrefix(got, ResultOK+" ") {
		t.Errorf("hold-from once mended: %q, want ok", got)
	}
	e.stop()
}

// TestTodoScanOutOfDescriptors: when preprocessing cannot open todo/ID
// for want of descriptors, the scan of todo/ ends after that one warning
// and the next comes sleepSysfail seconds later: with qmail-send out of
// descriptors, every message of a scan logged its own warning at every
// trigger (QA: 200 messages, 20,100 lines).
func TestTodoScanOutOfDescriptors(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	old := openQueue
	openQueue = func(path string, flag int) (*os.File, error) {
		if failing.Load() {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EMFILE}
		}
		return old(path, flag)
	}
	t.Cleanup(func() { openQueue = old })
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkCtlFIFO(t, root)
	const n = 10
	for range n {
		queueMsg(t, root, "s@example.org", "a@local.example")
	}
	e := startSpiedClock(t, root, &record{}, clock.Load)
	warn := "warning: unable to open todo/"
	e.waitLog(warn, 1)
	// The turns of two requests: a scan that went on would have logged
	// the other messages' warnings by the second answer.
	e.request("w1", "hold", "99999")
	e.request("w2", "hold", "99999")
	if got := e.log.count(warn); got != 1 {
		t.Fatalf("%d warnings for %d messages, want 1; log:\n%s", got, n, e.log.String())
	}
	// New mail pulls the trigger: no new scan before the 123 s are up
	// (QA: a warning for every message that came).
	for range 3 {
		queueMsg(t, root, "s@example.org", "a@local.example")
		e.trigger()
		e.request("w", "hold", "99999")
	}
	e.request("w3", "hold", "99999")
	if got := e.log.count(warn); got != 1 {
		t.Fatalf("%d warnings after three triggers, want 1; log:\n%s", got, e.log.String())
	}
	failing.Store(false)
	clock.Add(sleepSysfail + 1)
	e.request("w4", "hold", "99999")
	e.waitLog("end msg ", n+3)
	e.stop()
}
