package sched

import (
	"bytes"
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

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// TestBacklogPassRounds: with a preprocessing backlog in todo/, the pass
// step that follows a batch makes as many rounds as the batch held
// messages, so it starts more than one delivery on an idle channel (QA: 5-11
// local deliveries a second while 700 messages a second were preprocessed,
// "local 0/10"). The second batch's sync round is held until the spawner
// has the requests the first iteration's pass step sent: the loop stands
// still between the two, so the count is one iteration's.
func TestBacklogPassRounds(t *testing.T) {
	const msgs = 3 * batchMax
	root := newTree(t)
	mkTrigger(t, root)
	for i := 0; i < msgs; i++ {
		queueMsg(t, root, "s@example.org", fmt.Sprintf("u%d@local.example", i))
	}
	log := &lines{}
	var first sync.Once
	var firstBatch atomic.Int64 // "new msg" lines when the first round began
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open)
	setSyncHook(t, func(rel string, sync func() error) error {
		n := int64(log.count("new msg "))
		first.Do(func() { firstBatch.Store(n) })
		if n > firstBatch.Load() {
			<-gate // the second batch's round
		}
		return sync()
	})
	hold := make(chan struct{})
	var unhold sync.Once
	held := func(spawnproto.Request) (byte, string) { <-hold; return 'K', "did 1+0+0\n" }
	e := startLogging(t, root, held, ok, [2][]byte{}, log)
	t.Cleanup(func() { unhold.Do(func() { close(hold) }) }) // before the stop

	e.wait("the second batch", func() bool { return int64(log.count("new msg ")) > firstBatch.Load() && firstBatch.Load() > 0 })
	b := int(firstBatch.Load())
	// The loop now waits in the second batch's round: everything logged
	// between the batches is the first iteration's pass step.
	text := log.String()
	loglines := strings.SplitAfter(text, "\n")
	news, started := 0, 0
	for _, l := range loglines {
		if strings.HasPrefix(l, "new msg ") {
			if news++; news > b {
				break
			}
		}
		if news == b && strings.HasPrefix(l, "starting delivery ") && strings.Contains(l, " to local ") {
			started++
		}
	}
	e.wait(fmt.Sprintf("%d requests at the local spawner", started), func() bool {
		n, _, _ := e.spawn[chanLocal].counts()
		return n >= started
	})
	got, _, _ := e.spawn[chanLocal].counts()
	if b < 2 {
		t.Skipf("first batch of %d message: too slow a machine to tell", b)
	}
	// Each message takes two rounds (its recipient, then the end of its
	// file); local concurrency is 10.
	want := min((b+1)/2, 10)
	t.Logf("first batch %d messages, %d local deliveries started before the next", b, started)
	if started < want || got != started {
		t.Errorf("first batch of %d messages: %d local deliveries started before the next batch (spawner got %d), want %d",
			b, started, got, want)
	}
	open()
	e.wait("every local delivery slot busy", func() bool {
		n, _, _ := e.spawn[chanLocal].counts()
		return n == 10
	})
	unhold.Do(func() { close(hold) })
	e.waitLog(": success: ", msgs)
}

// TestStopLeavesQueuedRemovals: at TERM, once the deliveries are over,
// qmail-send waits only for the removals a remover has begun; the
// channel files whose removal was only queued stay, every recipient in
// them done, and the next start reads them, delivers nothing again and
// removes the messages, each "end msg" logged once in all.
func TestStopLeavesQueuedRemovals(t *testing.T) {
	const msgs = 12
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open)
	var blocked, chanUnlinks atomic.Int32
	setUnlinkHook(t, func(rel string, unlink func() error) error {
		if strings.HasPrefix(rel, "local/") {
			blocked.Add(1)
			<-gate
			chanUnlinks.Add(1)
		}
		return unlink()
	})
	stopped := make(chan int, 1)
	old := removalsStopped
	removalsStopped = func(n int) { stopped <- n }
	t.Cleanup(func() { removalsStopped = old })

	root := newTree(t)
	mkTrigger(t, root)
	var ids []uint64
	for i := 0; i < msgs; i++ {
		ids = append(ids, queuePinned(t, root, fmt.Sprintf("u%d@local.example", i)))
	}
	e := start(t, root, ok, ok)
	e.waitLog(": success: ", msgs)
	e.wait("every remover at a channel file", func() bool { return blocked.Load() == removers })
	e.sigs <- syscall.SIGTERM
	var dropped int
	select {
	case dropped = <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatalf("the removals were not stopped after TERM; log:\n%s", e.log.String())
	}
	open()
	select {
	case <-e.done:
		e.exited = true
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after the removals under way ended; log:\n%s", e.log.String())
	}
	if n := chanUnlinks.Load(); n != removers {
		t.Errorf("%d channel files removed after TERM, want the %d begun before it", n, removers)
	}
	left := 0
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(root, "queue", fnChan(chanLocal, id)))
		if err != nil {
			continue
		}
		left++
		for _, r := range bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0}) {
			if len(r) == 0 || r[0] != 'D' {
				t.Errorf("msg %d left with a record not done: %q", id, b)
			}
		}
		if !e.exists(fnSplit("info", id)) || !e.exists(fnSplit("mess", id)) {
			t.Errorf("msg %d: channel file left without its info or message file", id)
		}
	}
	if left != msgs-removers || dropped > left {
		t.Errorf("%d channel files left (%d removals dropped), want %d", left, dropped, msgs-removers)
	}
	if n := e.log.count("status: exiting"); n != 1 {
		t.Errorf("status: exiting logged %d times", n)
	}

	e2 := start(t, root, ok, ok)
	e2.wait("every message removed", func() bool {
		for _, id := range ids {
			if e2.exists(fnSplit("mess", id)) || e2.exists(fnSplit("info", id)) || e2.exists(fnChan(chanLocal, id)) {
				return false
			}
		}
		return true
	})
	if n, _, _ := e2.spawn[chanLocal].counts(); n != 0 {
		t.Errorf("%d deliveries made again at the next start", n)
	}
	for _, id := range ids {
		want := fmt.Sprintf("end msg %d\n", id)
		if n := e.log.count(want) + e2.log.count(want); n != 1 {
			t.Errorf("msg %d: end msg logged %d times over both runs", id, n)
		}
	}
}

// TestDoneListWaitsForRemovers: the done list is worked only while fewer
// than infoBacklog info removals are out; the other finished messages wait
// in it (not yet "end msg"), and are ended once removals come back.
func TestDoneListWaitsForRemovers(t *testing.T) {
	const msgs = 20
	root := newTree(t)
	q := filepath.Join(root, "queue")
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open)
	setUnlinkHook(t, func(rel string, unlink func() error) error {
		<-gate
		return unlink()
	})
	var log lines
	s := &Sched{root: root, queue: q, log: logger{w: &log}, now: func() int64 { return 1000 }, recent: 1000, cf: &config{}}
	s.clean = &cleanPipe{req: io.Discard, rep: strings.NewReader(strings.Repeat("+", msgs))}
	bare(t, s)
	for id := uint64(1); id <= msgs; id++ {
		os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("Subject: x\n\nx\n"), 0o600)
		os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fann@example.org\x00"), 0o600)
		s.done.insert(id, 1000)
	}
	s.passStep(batchMax)
	if n := log.count("end msg "); n != infoBacklog || s.done.len() != msgs-infoBacklog {
		t.Fatalf("%d messages ended, %d left in the done list; want %d and %d", n, s.done.len(), infoBacklog, msgs-infoBacklog)
	}
	s.nextTodo, s.cleanupNext = 5000, 5000
	if w := s.wakeup(); w <= s.recent {
		t.Errorf("wakeup %d with the done list waiting for removers: the loop would spin", w)
	}
	open()
	back := func() {
		for i := 0; i < infoBacklog; i++ {
			select {
			case ev := <-s.events:
				s.removedEvent(ev.removed)
			case <-time.After(30 * time.Second):
				t.Fatal("removal did not come back")
			}
		}
	}
	back()
	s.passStep(batchMax)
	if n := log.count("end msg "); n != 2*infoBacklog {
		t.Errorf("%d messages ended after the removals came back, want %d", n, 2*infoBacklog)
	}
	back() // the removers idle before the hook is put back
}
