package sched

import (
	"bufio"
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
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// setUnlinkHook installs hook for the test (see setSyncHook).
func setUnlinkHook(t *testing.T, hook func(rel string, unlink func() error) error) {
	old := unlinkHook
	unlinkHook = hook
	t.Cleanup(func() { unlinkHook = old })
}

// slowUnlinks records each removal in rec and makes it take a while, as
// on a disk with online discard, so that removals of several messages are
// under way at once.
func slowUnlinks(t *testing.T, rec *record) {
	setUnlinkHook(t, func(rel string, unlink func() error) error {
		time.Sleep(2 * time.Millisecond)
		err := unlink()
		rec.add("unlink " + rel)
		return err
	})
}

// checkEndOrder checks spec/scheduler.md §8 for message id in the trace:
// each channel file it had is removed once, before its info file; the info
// file once, before the one request for foop/ID.
func checkEndOrder(t *testing.T, events []string, id uint64, chans []int) {
	t.Helper()
	at := func(ev string) []int {
		var l []int
		for i, e := range events {
			if e == ev {
				l = append(l, i)
			}
		}
		return l
	}
	info := at("unlink " + fnSplit("info", id))
	foop := at("clean foop/" + utoa(id))
	if len(info) != 1 || len(foop) != 1 {
		t.Errorf("msg %d: info removed %d times, foop asked %d times", id, len(info), len(foop))
		return
	}
	if info[0] > foop[0] {
		t.Errorf("msg %d: foop asked before info was removed", id)
	}
	for _, c := range chans {
		ch := at("unlink " + fnChan(c, id))
		if len(ch) != 1 || ch[0] > info[0] {
			t.Errorf("msg %d: channel %d file removed at %v, info at %d", id, c, ch, info[0])
		}
	}
}

// TestRemovalOrder: with removals off the loop and slow, every finished
// message still loses its channel files, then its info file, then (through
// qmail-clean) the message, each exactly once, and "end msg" is logged
// once; messages on both channels end only after both files are gone.
func TestRemovalOrder(t *testing.T) {
	rec := &record{}
	slowUnlinks(t, rec)
	root := newTree(t)
	mkTrigger(t, root)
	type msg struct {
		id    uint64
		chans []int
	}
	var msgs []msg
	for i := 0; i < 12; i++ {
		switch i % 3 {
		case 0:
			msgs = append(msgs, msg{queuePinned(t, root, "a@local.example"), []int{chanLocal}})
		case 1:
			msgs = append(msgs, msg{queuePinned(t, root, "b@remote.example"), []int{chanRemote}})
		default:
			msgs = append(msgs, msg{queuePinned(t, root, "c@local.example", "d@remote.example"), []int{chanLocal, chanRemote}})
		}
	}
	e := startSpied(t, root, rec)
	e.waitLog("end msg ", len(msgs))
	e.wait("every foop request", func() bool {
		n := 0
		for _, ev := range rec.list() {
			if strings.HasPrefix(ev, "clean foop/") {
				n++
			}
		}
		return n == len(msgs)
	})
	e.stop()
	events := rec.list()
	for _, m := range msgs {
		checkEndOrder(t, events, m.id, m.chans)
		if n := e.log.count(fmt.Sprintf("end msg %d\n", m.id)); n != 1 {
			t.Errorf("msg %d: end msg logged %d times", m.id, n)
		}
		for _, f := range []string{fnSplit("info", m.id), fnChan(0, m.id), fnChan(1, m.id), fnSplit("mess", m.id)} {
			if e.exists(f) {
				t.Errorf("%s left in the queue", f)
			}
		}
	}
}

// TestRemovalFailure: a channel file or an info file that cannot be
// removed is logged and tried again 123 s later (fake clock), and the
// message ends then, in order; nothing is asked of qmail-clean before.
func TestRemovalFailure(t *testing.T) {
	for _, which := range []string{"channel", "info"} {
		t.Run(which, func(t *testing.T) {
			rec := &record{}
			var failing atomic.Value
			failing.Store("")
			setUnlinkHook(t, func(rel string, unlink func() error) error {
				if rel == failing.Load().(string) {
					rec.add("failed " + rel)
					return syscall.EIO
				}
				err := unlink()
				rec.add("unlink " + rel)
				return err
			})
			var clock atomic.Int64
			clock.Store(time.Now().Unix())
			root := newTree(t)
			mkCtlFIFO(t, root)
			id := queuePinned(t, root, "a@local.example")
			victim := fnChan(chanLocal, id)
			if which == "info" {
				victim = fnSplit("info", id)
			}
			failing.Store(victim)
			e := startSpiedClock(t, root, rec, clock.Load)
			e.waitLog("warning: unable to unlink "+victim+"; will try again later\n", 1)
			for _, ev := range rec.list() {
				if ev == "clean foop/"+utoa(id) {
					t.Fatalf("foop asked although %s is still there", victim)
				}
			}
			failing.Store("")
			clock.Add(sleepSysfail + 1)
			e.request("w1", "hold", "99999") // a wake-up after the retry time
			e.wait("foop request", func() bool {
				for _, ev := range rec.list() {
					if ev == "clean foop/"+utoa(id) {
						return true
					}
				}
				return false
			})
			e.stop()
			checkEndOrder(t, rec.list(), id, []int{chanLocal})
			if e.exists(fnSplit("mess", id)) || e.exists(fnSplit("info", id)) {
				t.Errorf("message %d left in the queue", id)
			}
		})
	}
}

// TestRemovalStop: TERM while removals are under way: qmail-send exits
// only after every removal it handed out has ended, so each message whose
// end was logged has lost its info file and been asked of qmail-clean.
func TestRemovalStop(t *testing.T) {
	rec := &record{}
	var gate sync.WaitGroup
	gate.Add(1)
	var held atomic.Int32
	setUnlinkHook(t, func(rel string, unlink func() error) error {
		if strings.HasPrefix(rel, "info/") {
			held.Add(1)
			gate.Wait()
		}
		err := unlink()
		rec.add("unlink " + rel)
		return err
	})
	root := newTree(t)
	mkTrigger(t, root)
	var ids []uint64
	for i := 0; i < 3; i++ {
		ids = append(ids, queuePinned(t, root, "a@local.example"))
	}
	e := startSpied(t, root, rec)
	e.waitLog("end msg ", len(ids))
	e.wait("removers at the info files", func() bool { return held.Load() == int32(min(len(ids), removers)) })
	e.sigs <- syscall.SIGTERM
	select {
	case <-e.done:
		t.Fatal("qmail-send exited with removals under way")
	case <-time.After(100 * time.Millisecond):
	}
	gate.Done()
	select {
	case <-e.done:
		e.exited = true
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after the removals ended")
	}
	for _, id := range ids {
		checkEndOrder(t, rec.list(), id, []int{chanLocal})
	}
}

// TestRemovalsStopWhenCleanGone: once qmail-clean fails to answer, no more
// info files are unlinked (each would leave a delivered message in mess/
// with nothing to say it is done); qmail stops at the first failed clean.
func TestRemovalsStopWhenCleanGone(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	s := &Sched{root: root, queue: q}
	s.clean = &cleanPipe{req: io.Discard, rep: strings.NewReader("")} // EOF: gone
	for id := uint64(1); id <= 3; id++ {
		os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fa@b\x00"), 0o600)
	}
	first := s.doRemoval(removal{id: 1, info: true})
	if first.cleanErr == nil {
		t.Fatalf("qmail-clean's EOF not seen")
	}
	for id := uint64(2); id <= 3; id++ {
		d := s.doRemoval(removal{id: id, info: true})
		if d.cleanErr == nil {
			t.Errorf("removal %d: no error", id)
		}
		if _, err := os.Stat(filepath.Join(q, fnSplit("info", id))); err != nil {
			t.Errorf("info of %d unlinked after qmail-clean was gone: %v", id, err)
		}
	}
}

// TestInfoKeptWhenLoopLosesClean: qmail-clean is found gone by the loop
// (it dies on the todo/ID request of a new message) while message A's
// delivery is in flight. When that delivery then succeeds, info/A is
// kept, as after a remover's own failed foop/ID: unlinked, it left mess/A
// with nothing to say the message is done (the 36-hour cleanup removed
// it). The next start finishes A.
func TestInfoKeptWhenLoopLosesClean(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	release := make(chan struct{})
	idA := queueMsg(t, root, "s@example.org", "a@local.example")
	e := &env{t: t, root: root, log: &lines{}, sigs: make(chan os.Signal, 4), done: make(chan int, 1)}
	var opt Options
	opt.Root = root
	opt.Log = e.log
	answers := [2]func(spawnproto.Request) (byte, string){
		func(spawnproto.Request) (byte, string) { <-release; return 'K', "ok\n" }, ok}
	for c := 0; c < 2; c++ {
		e.spawn[c] = &fakeSpawner{answer: answers[c]}
		reqR, reqW := io.Pipe()
		repR, repW := io.Pipe()
		opt.SpawnReq[c], opt.SpawnRep[c] = reqW, repR
		go e.spawn[c].run(120, reqR, repW)
		e.closers = append(e.closers, reqW, repR)
	}
	creqR, creqW := io.Pipe()
	crepR, crepW := io.Pipe()
	go func() {
		// qmail-clean, dying on the second message's todo/ID request.
		cl := &clean.Cleaner{Queue: filepath.Join(root, "queue")}
		r := bufio.NewReader(creqR)
		for todos := 0; ; {
			kind, id, err := spawnproto.ReadCleanRequest(r)
			if err != nil {
				break
			}
			if kind == "todo" {
				if todos++; todos == 2 {
					break
				}
			}
			crepW.Write([]byte{cl.Handle(kind, id)})
		}
		crepW.Close()
		creqR.Close()
	}()
	opt.CleanReq, opt.CleanRep = creqW, crepR
	e.closers = append(e.closers, creqW, crepR)
	opt.Signals = e.sigs
	opt.Trigger = true
	opt.Inject = func(io.Reader, string, []string) (int, error) { return 0, fmt.Errorf("no bounce expected") }
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	go func() { e.done <- Run(opt) }()
	t.Cleanup(func() {
		unblock()
		if !e.exited {
			e.sigs <- syscall.SIGTERM
			select {
			case <-e.done:
			case <-time.After(30 * time.Second):
				t.Error("scheduler did not stop")
			}
		}
		for _, c := range e.closers {
			c.Close()
		}
	})
	e.waitLog("starting delivery 1: msg "+utoa(idA)+" ", 1)
	queueMsg(t, root, "s@example.org", "b@local.example")
	e.trigger()
	e.waitLog("alert: oh no! lost qmail-clean connection! dying...", 1)
	unblock()
	select {
	case code := <-e.done:
		e.exited = true
		if code != 111 {
			t.Errorf("exit %d, want 111", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after qmail-clean was lost; log:\n%s", e.log.String())
	}
	if !strings.Contains(e.log.String(), "delivery 1: success") {
		t.Fatalf("A's delivery not reported; log:\n%s", e.log.String())
	}
	if !e.exists(fnSplit("mess", idA)) || !e.exists(fnSplit("info", idA)) {
		t.Errorf("info/%d present %v, mess/%d present %v: want both kept for the next start; log:\n%s",
			idA, e.exists(fnSplit("info", idA)), idA, e.exists(fnSplit("mess", idA)), e.log.String())
	}
	// local/A may be there still, its recipient marked done (the exit
	// can come before its unlink): the next start finishes A, without
	// delivering it again.
	e2 := start(t, root, ok, ok)
	e2.wait("mess/A removed", func() bool { return !e2.exists(fnSplit("mess", idA)) })
	if e2.exists(fnSplit("info", idA)) {
		t.Errorf("info/%d left after the next start removed mess/%d", idA, idA)
	}
	for _, r := range e2.spawn[chanLocal].requests() {
		if r.Recipient == "a@local.example" {
			t.Errorf("A delivered again at the next start: %+v", r)
		}
	}
}
