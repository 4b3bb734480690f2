package sched

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/clean"
)

// record is the ordered trace of preprocessing's disk waits and qmail-clean
// requests, as seen by the scheduler.
type record struct {
	mu     sync.Mutex
	events []string // "sync REL" when a sync returned, "clean NAME" when asked
}

func (r *record) add(ev string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *record) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// cleanSpy records each qmail-clean request before passing it on.
type cleanSpy struct {
	rec *record
	w   io.Writer
}

func (c *cleanSpy) Write(p []byte) (int, error) {
	c.rec.add("clean " + strings.TrimSuffix(string(p), "\x00"))
	return c.w.Write(p)
}

// logSpy records each "new msg" line in the trace, then logs it.
type logSpy struct {
	rec *record
	w   io.Writer
}

func (l *logSpy) Write(p []byte) (int, error) {
	if line := string(p); strings.HasPrefix(line, "new msg ") {
		l.rec.add(strings.TrimSuffix(line, "\n"))
	}
	return l.w.Write(p)
}

// setSyncHook installs hook for the test; the old one is put back after
// the scheduler (stopped by start's clean-up, registered later) is gone.
func setSyncHook(t *testing.T, hook func(rel string, sync func() error) error) {
	old := syncHook
	syncHook = hook
	t.Cleanup(func() { syncHook = old })
}

// startSpied is start with every qmail-clean request recorded in rec.
func startSpied(t *testing.T, root string, rec *record) *env {
	t.Helper()
	return startSpiedClock(t, root, rec, nil)
}

// startSpiedClock is startSpied with the scheduler's clock now (nil: the
// real one).
func startSpiedClock(t *testing.T, root string, rec *record, now func() int64) *env {
	t.Helper()
	e := &env{t: t, root: root, log: &lines{}, sigs: make(chan os.Signal, 4), done: make(chan int, 1), injects: make(chan injected, 16)}
	var opt Options
	opt.Root = root
	opt.Now = now
	opt.Log = &logSpy{rec: rec, w: e.log}
	for c := 0; c < 2; c++ {
		e.spawn[c] = &fakeSpawner{answer: ok}
		reqR, reqW := io.Pipe()
		repR, repW := io.Pipe()
		opt.SpawnReq[c], opt.SpawnRep[c] = reqW, repR
		e.reqW[c] = reqW
		go e.spawn[c].run(120, reqR, repW)
		e.closers = append(e.closers, reqW, repR)
	}
	creqR, creqW := io.Pipe()
	crepR, crepW := io.Pipe()
	go func() {
		(&clean.Cleaner{Queue: filepath.Join(root, "queue")}).Serve(creqR, crepW)
		crepW.Close()
	}()
	opt.CleanReq, opt.CleanRep = &cleanSpy{rec: rec, w: creqW}, crepR
	e.closers = append(e.closers, creqW, crepR)
	opt.Signals = e.sigs
	opt.Trigger = true
	opt.Inject = func(io.Reader, string, []string) (int, error) { return 0, fmt.Errorf("no bounce expected") }
	go func() { e.done <- Run(opt) }()
	t.Cleanup(func() {
		if !e.exited {
			e.sigs <- syscall.SIGTERM
			select {
			case <-e.done:
			case <-time.After(10 * time.Second):
				t.Error("scheduler did not stop")
			}
		}
		for _, c := range e.closers {
			c.Close()
		}
	})
	return e
}

// queuePinned is queueMsg with an extra link to the message file kept
// outside the queue, so its inode, the id, is not reused by a later
// message of the same test once this one has left the queue.
func queuePinned(t *testing.T, root string, recips ...string) uint64 {
	t.Helper()
	id := queueMsg(t, root, "s@example.org", recips...)
	keep := filepath.Join(root, "keep")
	os.MkdirAll(keep, 0o700)
	if err := os.Link(filepath.Join(root, "queue", fnSplit("mess", id)), filepath.Join(keep, utoa(id))); err != nil {
		t.Fatal(err)
	}
	return id
}

// want lists what must be durable before todo/ID may go: the info file,
// the channel files and the split directories holding them.
func wantSynced(id uint64, local, remote bool) []string {
	s := split(id)
	w := []string{fnSplit("info", id), "info/" + s}
	if local {
		w = append(w, fnChan(chanLocal, id), "local/"+s)
	}
	if remote {
		w = append(w, fnChan(chanRemote, id), "remote/"+s)
	}
	return w
}

// TestPreprocessOrder checks queue.md §5 under batching: no request to
// remove todo/ID reaches qmail-clean before every sync of that message's
// files and directories has returned; every message is cleaned exactly
// once; log lines keep their per-message order.
func TestPreprocessOrder(t *testing.T) {
	cases := []struct {
		name          string
		before, after int // messages queued before start, and after (trigger)
		local, remote bool
		recips        []string
	}{
		{"local, more than one batch", batchMax + 9, 0, true, false, []string{"a@local.example"}},
		{"remote, triggered", 3, 12, false, true, []string{"b@remote.example"}},
		{"both channels", 10, 5, true, true, []string{"c@local.example", "d@remote.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &record{}
			setSyncHook(t, func(rel string, sync func() error) error {
				err := sync()
				// Let a wrong order (a clean request not waiting for this
				// sync) show in the trace; the correct order never depends
				// on this pause.
				time.Sleep(time.Millisecond)
				rec.add("sync " + rel)
				return err
			})
			root := newTree(t)
			mkTrigger(t, root)
			var ids []uint64
			for i := 0; i < tc.before; i++ {
				ids = append(ids, queuePinned(t, root, tc.recips...))
			}
			e := startSpied(t, root, rec)
			for i := 0; i < tc.after; i++ {
				ids = append(ids, queuePinned(t, root, tc.recips...))
				e.trigger()
			}
			e.waitLog("end msg ", len(ids))
			e.stop()

			// Each todo/ID is asked for once, and every sync it needs
			// returned between its "new msg" (the files were written) and
			// that request.
			events := rec.list()
			for _, id := range ids {
				c := "clean " + fnFlat("todo", id)
				var at []int
				for i, ev := range events {
					if ev == c {
						at = append(at, i)
					}
				}
				if len(at) != 1 {
					t.Errorf("%s asked %d times", c, len(at))
					continue
				}
				from := -1
				for i := at[0]; i >= 0; i-- {
					if events[i] == fmt.Sprintf("new msg %d", id) {
						from = i
						break
					}
				}
				if from < 0 {
					t.Errorf("%s without new msg before it", c)
					continue
				}
				for _, w := range wantSynced(id, tc.local, tc.remote) {
					found := false
					for _, ev := range events[from:at[0]] {
						found = found || ev == "sync "+w
					}
					if !found {
						t.Errorf("%s not synced between new msg and %s", w, c)
					}
				}
			}
			log := e.log.String()
			for _, id := range ids {
				n := strings.Index(log, fmt.Sprintf("new msg %d\n", id))
				in := strings.Index(log, fmt.Sprintf("info msg %d: ", id))
				if n < 0 || in < n || strings.Count(log, fmt.Sprintf("new msg %d\n", id)) != 1 {
					t.Errorf("msg %d: new msg at %d, info msg at %d", id, n, in)
				}
			}
			for _, id := range ids {
				if e.exists(fnFlat("todo", id)) || e.exists(fnSplit("info", id)) {
					t.Errorf("message %d left in the queue", id)
				}
			}
		})
	}
}

// TestPreprocessSyncFailure makes one sync fail: the messages waiting for
// it keep todo/ID (no clean request), the others of the batch go on, and
// once the disk is healthy again a later scan preprocesses them.
func TestPreprocessSyncFailure(t *testing.T) {
	cases := []struct {
		name string
		what func(id uint64) string // the sync that fails
	}{
		{"info file", func(id uint64) string { return fnSplit("info", id) }},
		{"channel file", func(id uint64) string { return fnChan(chanLocal, id) }},
		{"channel directory", func(id uint64) string { return "local/" + split(id) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &record{}
			var failing atomic.Value
			failing.Store("")
			var failed atomic.Int32
			setSyncHook(t, func(rel string, sync func() error) error {
				err := sync()
				if rel == failing.Load().(string) {
					failed.Add(1)
					err = syscall.EIO
				}
				rec.add("sync " + rel)
				return err
			})
			root := newTree(t)
			mkTrigger(t, root)
			var ids []uint64
			for i := 0; i < 6; i++ {
				ids = append(ids, queueMsg(t, root, "s@example.org", "a@local.example"))
			}
			victim := ids[2]
			failing.Store(tc.what(victim))
			// Messages sharing the victim's directory fail with it.
			hit := map[uint64]bool{victim: true}
			if tc.what(victim) == "local/"+split(victim) {
				for _, id := range ids {
					if id%23 == victim%23 {
						hit[id] = true
					}
				}
			}
			e := startSpied(t, root, rec)
			e.waitLog("end msg ", len(ids)-len(hit))
			e.waitLog("warning: trouble writing to "+tc.what(victim)+"\n", 1)
			for id := range hit {
				if !e.exists(fnFlat("todo", id)) {
					t.Errorf("todo/%d removed although a sync of it failed; trace %q; log:\n%s", id, rec.list(), e.log.String())
				}
				for _, ev := range rec.list() {
					if ev == "clean "+fnFlat("todo", id) {
						t.Errorf("%s asked although a sync of it failed", ev)
					}
				}
			}
			failing.Store("")
			e.trigger()
			e.waitLog("end msg ", len(ids))
			e.stop()
			if failed.Load() == 0 {
				t.Error("the failure was never injected")
			}
			for _, id := range ids {
				if e.exists(fnFlat("todo", id)) || e.exists(fnSplit("info", id)) {
					t.Errorf("message %d left in the queue", id)
				}
			}
		})
	}
}

// TestPreprocessRetrySoon: a message left in todo/ by a failed sync is
// preprocessed again sleepSysfail seconds later without any trigger (a
// full queue sends none), and not before.
func TestPreprocessRetrySoon(t *testing.T) {
	rec := &record{}
	var failing atomic.Value
	failing.Store("")
	setSyncHook(t, func(rel string, sync func() error) error {
		err := sync()
		if rel == failing.Load().(string) {
			err = syscall.ENOSPC
		}
		return err
	})
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkCtlFIFO(t, root)
	ok1 := queueMsg(t, root, "s@example.org", "a@local.example")
	victim := queueMsg(t, root, "s@example.org", "b@local.example")
	failing.Store(fnSplit("info", victim))
	e := startSpiedClock(t, root, rec, clock.Load)
	e.waitLog("end msg ", 1)
	e.waitLog("warning: trouble writing to "+fnSplit("info", victim)+"\n", 1)
	failing.Store("")

	// A wake-up before the retry time leaves todo/ alone. Each request
	// is handled in a loop turn; the second one's answer means the turn
	// of the first, with its todo step, is over.
	clock.Add(sleepSysfail - 10)
	e.request("w1", "hold", "99999")
	e.request("w2", "hold", "99999")
	if !e.exists(fnFlat("todo", victim)) {
		t.Fatalf("todo/%d preprocessed before its retry time; log:\n%s", victim, e.log.String())
	}
	// After it, the next wake-up preprocesses it, without a trigger.
	clock.Add(11)
	e.request("w3", "hold", "99999")
	e.waitLog("end msg ", 2)
	e.stop()
	for _, id := range []uint64{ok1, victim} {
		if e.exists(fnFlat("todo", id)) || e.exists(fnSplit("info", id)) {
			t.Errorf("message %d left in the queue", id)
		}
	}
}

// TestBatchBounded: a long todo/ is preprocessed in rounds of at most
// batchMax messages (the loop handles events between them), with at most
// syncMax syncs in flight and each directory synced once per round.
func TestBatchBounded(t *testing.T) {
	rec := &record{}
	var inFlight, most atomic.Int32
	setSyncHook(t, func(rel string, sync func() error) error {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		rec.add("sync " + rel)
		err := sync()
		inFlight.Add(-1)
		return err
	})
	root := newTree(t)
	n := 3*batchMax + 5
	for i := 0; i < n; i++ {
		queueMsg(t, root, "s@example.org", "a@local.example")
	}
	e := startSpied(t, root, rec)
	e.waitLog("end msg ", n)
	e.stop()
	// A round is a run of syncs; the clean requests of its batch follow it.
	var rounds []map[string]int
	var cleansAfter []int
	inSyncs := false
	for _, ev := range rec.list() {
		rel, isSync := strings.CutPrefix(ev, "sync ")
		if isSync {
			if !inSyncs {
				rounds = append(rounds, map[string]int{})
				cleansAfter = append(cleansAfter, 0)
			}
			rounds[len(rounds)-1][rel]++
		} else if strings.HasPrefix(ev, "clean todo/") && len(rounds) > 0 {
			cleansAfter[len(rounds)-1]++
		}
		inSyncs = isSync
	}
	if len(rounds) < (n+batchMax-1)/batchMax {
		t.Errorf("%d messages in %d sync rounds; at most %d per batch", n, len(rounds), batchMax)
	}
	for i, r := range rounds {
		if cleansAfter[i] > batchMax {
			t.Errorf("round %d committed %d messages, more than %d", i, cleansAfter[i], batchMax)
		}
		for rel, k := range r {
			if k != 1 {
				t.Errorf("round %d synced %s %d times", i, rel, k)
			}
		}
	}
	if int(most.Load()) > syncMax {
		t.Errorf("%d syncs in flight, limit %d", most.Load(), syncMax)
	}
}

// TestDamagedTodoWaits: a todo/ID that is damaged in itself (its message
// file is missing, or it is a directory) is logged and waits for the
// ordinary scan of todo/; it does not bring every scan forward to
// sleepSysfail as a full disk does (the log got its warnings every two
// minutes, and every message with an unknown record type with them).
func TestDamagedTodoWaits(t *testing.T) {
	rec := &record{}
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	root := newTree(t)
	mkCtlFIFO(t, root)
	noMess := queueMsg(t, root, "s@example.org", "a@local.example")
	dir := queueMsg(t, root, "s@example.org", "b@local.example")
	if err := os.Remove(filepath.Join(root, "queue", fnSplit("mess", noMess))); err != nil {
		t.Fatal(err)
	}
	todoDir := filepath.Join(root, "queue", fnFlat("todo", dir))
	if err := os.Remove(todoDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(todoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e := startSpiedClock(t, root, rec, clock.Load)
	stat := "warning: unable to stat " + fnSplit("mess", noMess) + "\n"
	open := "warning: unable to open " + fnFlat("todo", dir) + "\n"
	e.waitLog(stat, 1)
	e.waitLog(open, 1)
	// Past the system-failure retry: no new scan. Each request is a loop
	// turn; the second one's answer means the first turn's todo step is over.
	clock.Add(sleepSysfail + 1)
	e.request("w1", "hold", "99999")
	e.request("w2", "hold", "99999")
	if n, m := e.log.count(stat), e.log.count(open); n != 1 || m != 1 {
		t.Errorf("after %d s: %d and %d warnings, want 1 each (no early rescan); log:\n%s", sleepSysfail+1, n, m, e.log.String())
	}
	// The ordinary scan logs them again.
	clock.Add(sleepTodo)
	e.request("w3", "hold", "99999")
	e.waitLog(stat, 2)
	e.waitLog(open, 2)
	e.stop()
}

// TestHUPBeforeDueWork: a HUP that arrives together with work that has
// become due (here the scan of todo/, due by the clock: a laptop resumed
// from suspend, its network hook holding at once) is handled before that
// work, as qmail's select interrupted by the signal does nothing else in
// its iteration: the new hold stops the delivery the scan would start.
func TestHUPBeforeDueWork(t *testing.T) {
	root := newTree(t)
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	var waiting atomic.Bool
	testHookWait = waiting.Store
	t.Cleanup(func() { testHookWait = nil }) // after the scheduler stopped
	e := startSpiedClock(t, root, &record{}, clock.Load)
	// The turns of the start (the first scan of todo/, the cleanup
	// walk) read the clock; once the loop waits, nothing wakes it but
	// the HUP: there is no lock/trigger, so the new message waits for
	// the next scan.
	e.wait("the loop waiting", waiting.Load)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	clock.Add(sleepTodo + 10) // the next scan of todo/ is due
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held", 1)
	e.waitLog(fmt.Sprintf("new msg %d", id), 1)
	e.stop()
	if strings.Contains(e.log.String(), "starting delivery") {
		t.Errorf("a delivery started before the hold was applied:\n%s", e.log.String())
	}
}
