package sched

import (
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestTriggerAfterEMFILEAndClockBack: preprocessing ran out of descriptors
// (no scan, triggered or not, for sleepSysfail seconds: todoBackoff), then
// the clock was stepped back a day. A trigger pulled sleepSysfail seconds
// after the step is heard: every trigger was dropped, and no new message
// preprocessed, until the clock was back where it had been.
func TestTriggerAfterEMFILEAndClockBack(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	old := openQueue
	openQueue = func(path string, flag int) (*os.File, error) {
		if fail.Load() && flag&os.O_CREATE != 0 {
			return nil, syscall.EMFILE
		}
		return old(path, flag)
	}
	t.Cleanup(func() { openQueue = old })
	// waits counts the times the loop blocked: with no delivery, no
	// removal and no signal, only a trigger wakes it before its timer
	// (sleepSysfail seconds of real time at least).
	var waiting atomic.Bool
	var waits atomic.Int64
	testHookWait = func(w bool) {
		if w {
			waits.Add(1)
		}
		waiting.Store(w)
	}
	t.Cleanup(func() { testHookWait = nil }) // after the scheduler stopped
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkTrigger(t, root)
	queueMsg(t, root, "s@example.org", "a@local.example")
	e := startSpiedClock(t, root, &record{}, clock.Load)
	e.waitLog("warning: unable to create info/", 1)
	e.wait("the loop waiting", waiting.Load)
	fail.Store(false)
	id := queueMsg(t, root, "s@example.org", "b@local.example")
	clock.Add(-86400) // NTP steps the clock back a day
	// A trigger within the backoff (its sleepSysfail seconds now count
	// from the step) is dropped; the loop has seen the clock go back once
	// it waits again.
	n := waits.Load()
	e.trigger()
	e.wait("the loop to take the trigger", func() bool { return waits.Load() > n })
	if strings.Contains(e.log.String(), "new msg "+utoa(id)) {
		t.Fatalf("message %d preprocessed within the backoff; log:\n%s", id, e.log.String())
	}
	clock.Add(sleepSysfail + 1)
	n = waits.Load()
	e.trigger()
	e.wait("the loop to take the trigger", func() bool { return waits.Load() > n })
	if !strings.Contains(e.log.String(), "new msg "+utoa(id)) {
		t.Errorf("message %d not preprocessed at a trigger %d s after the clock went back a day, the backoff over; log:\n%s",
			id, sleepSysfail+1, e.log.String())
	}
}

// TestClockBackPullsWaits: each of the loop's own waits that lies
// further ahead than its interval (the clock went back since it was set)
// comes at most its interval from now; one within its interval, or none
// set, is left alone.
func TestClockBackPullsWaits(t *testing.T) {
	const was, day = int64(1_000_000_000), int64(86400)
	s := &Sched{recent: was}
	s.todoBackoff = was + sleepSysfail
	s.stateRetryAt = was + sleepSysfail
	s.cleanupNext = was + sleepCleanup
	s.nextTodo, s.todoWait = was+sleepTodo, sleepTodo
	s.todoSoon() // a system failure: the next scan sleepSysfail on
	s.clockBack()
	if s.todoBackoff != was+sleepSysfail || s.stateRetryAt != was+sleepSysfail ||
		s.cleanupNext != was+sleepCleanup || s.nextTodo != was+sleepSysfail {
		t.Fatalf("waits moved with the clock steady: backoff %d state %d cleanup %d todo %d",
			s.todoBackoff-was, s.stateRetryAt-was, s.cleanupNext-was, s.nextTodo-was)
	}
	now := was - day
	s.recent = now
	s.clockBack()
	for _, w := range []struct {
		name      string
		got, want int64
	}{
		{"todoBackoff", s.todoBackoff, now + sleepSysfail},
		{"stateRetryAt", s.stateRetryAt, now + sleepSysfail},
		{"cleanupNext", s.cleanupNext, now + sleepCleanup},
		{"nextTodo", s.nextTodo, now + sleepSysfail},
	} {
		if w.got != w.want {
			t.Errorf("%s %d s from now after the clock went back a day, want %d", w.name, w.got-now, w.want-now)
		}
	}
	// The periodic scan set after the step comes sleepTodo on, at most.
	s.nextTodo, s.todoWait = now+sleepTodo, sleepTodo
	s.recent = now - day
	s.clockBack()
	if s.nextTodo != s.recent+sleepTodo {
		t.Errorf("nextTodo %d s from now, want %d", s.nextTodo-s.recent, sleepTodo)
	}
	// None set (0) stays none.
	s2 := &Sched{recent: now}
	s2.clockBack()
	if s2.todoBackoff != 0 || s2.stateRetryAt != 0 {
		t.Errorf("unset waits set: backoff %d state %d", s2.todoBackoff, s2.stateRetryAt)
	}
}
