package sched

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/clean"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// lines is a goroutine-safe log capture.
type lines struct {
	testutil.SyncBuffer
	hook func(p []byte) // if set, sees each write first
}

func (l *lines) Write(p []byte) (int, error) {
	if l.hook != nil {
		l.hook(p)
	}
	return l.SyncBuffer.Write(p)
}

func (l *lines) count(sub string) int { return strings.Count(l.String(), sub) }

// fakeSpawner answers requests with the result of answer; answer may
// block (to keep a delivery in flight).
type fakeSpawner struct {
	mu       sync.Mutex
	reqs     []spawnproto.Request
	answer   func(r spawnproto.Request) (byte, string)
	announce []byte // nil: the plain byte given to run
	inflight int    // requests not answered yet
	peak     int    // most requests unanswered at once
	badSlot  int    // requests for a slot at or above the announced limit
}

func (f *fakeSpawner) requests() []spawnproto.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]spawnproto.Request(nil), f.reqs...)
}

func (f *fakeSpawner) run(conc byte, req io.Reader, rep io.WriteCloser) {
	var wmu sync.Mutex
	ann := f.announce
	if ann == nil {
		ann = []byte{conc}
	}
	limit, width, _ := spawnproto.ReadAnnounce(bytes.NewReader(ann))
	rep.Write(ann)
	r := bufio.NewReader(req)
	for {
		q, err := spawnproto.ReadRequestWidth(r, width)
		if err != nil {
			rep.Close()
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, *q)
		ans := f.answer
		f.inflight++
		f.peak = max(f.peak, f.inflight)
		if q.Slot >= limit {
			f.badSlot++
		}
		f.mu.Unlock()
		go func(q spawnproto.Request) {
			letter, text := ans(q)
			if letter == 0 {
				return // never answer
			}
			wmu.Lock()
			defer wmu.Unlock()
			f.mu.Lock()
			f.inflight--
			f.mu.Unlock()
			rep.Write((&spawnproto.Report{Slot: q.Slot, Letter: letter, Text: text}).EncodeWidth(width))
		}(*q)
	}
}

// counts returns the requests seen, the peak of unanswered requests and
// the number of out-of-range slots.
func (f *fakeSpawner) counts() (reqs, peak, bad int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs), f.peak, f.badSlot
}

func ok(spawnproto.Request) (byte, string) { return 'K', "did 1+0+0\n" }

// env is a queue tree with a scheduler running on fakes.
type env struct {
	t       *testing.T
	root    string
	log     *lines
	spawn   [2]*fakeSpawner
	sigs    chan os.Signal
	done    chan int
	injects chan injected
	reqW    [2]*io.PipeWriter
	closers []io.Closer
	exited  bool
}

type injected struct {
	msg    string
	sender string
	recips []string
}

func newTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	q := filepath.Join(root, "queue")
	for _, d := range []string{"pid", "intd", "todo", "bounce", "lock", "control"} {
		dir := filepath.Join(q, d)
		if d == "control" {
			dir = filepath.Join(root, d)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"mess", "info", "local", "remote"} {
		for i := 0; i < qhome.Split; i++ {
			os.MkdirAll(filepath.Join(q, d, fmt.Sprint(i)), 0o700)
		}
	}
	os.WriteFile(filepath.Join(q, "lock", "sendmutex"), nil, 0o600)
	ctl(t, root, "me", "mx.example.org\n")
	ctl(t, root, "locals", "mx.example.org\nlocal.example\n")
	return root
}

func ctl(t *testing.T, root, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, "control", name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// queueMsg does qmail-queue's job: mess file named by its inode, then
// todo/ID. It returns the id.
func queueMsg(t *testing.T, root, sender string, recips ...string) uint64 {
	t.Helper()
	return queueMsgText(t, root, "Received: (qmail 1 invoked by uid 0); 26 Nov 2026 04:00:00 -0000\nSubject: test\n\nbody\n", sender, recips...)
}

// queueMsgText is queueMsg with the message given.
func queueMsgText(t *testing.T, root, mess, sender string, recips ...string) uint64 {
	t.Helper()
	q := filepath.Join(root, "queue")
	tmp := filepath.Join(q, "pid", fmt.Sprintf("t.%d", time.Now().UnixNano()))
	if err := os.WriteFile(tmp, []byte(mess), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(tmp, &st); err != nil {
		t.Fatal(err)
	}
	id := st.Ino
	if err := os.Link(tmp, filepath.Join(q, fnSplit("mess", id))); err != nil {
		t.Fatal(err)
	}
	os.Remove(tmp)
	var b strings.Builder
	b.WriteString("u0\x00p1234\x00F" + sender + "\x00")
	for _, r := range recips {
		b.WriteString("T" + r + "\x00")
	}
	if err := os.WriteFile(filepath.Join(q, fnFlat("intd", id)), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(q, fnFlat("intd", id)), filepath.Join(q, fnFlat("todo", id))); err != nil {
		t.Fatal(err)
	}
	return id
}

// start runs the scheduler; answers are per channel. Both fake spawners
// announce 120 in one byte.
func start(t *testing.T, root string, local, remote func(spawnproto.Request) (byte, string)) *env {
	t.Helper()
	return startAnnouncing(t, root, local, remote, [2][]byte{})
}

// startAnnouncing is start with the spawners' announcements given (nil:
// the plain byte 120).
func startAnnouncing(t *testing.T, root string, local, remote func(spawnproto.Request) (byte, string), announce [2][]byte) *env {
	t.Helper()
	return startLogging(t, root, local, remote, announce, &lines{})
}

// startLogging is startAnnouncing with the log given.
func startLogging(t *testing.T, root string, local, remote func(spawnproto.Request) (byte, string), announce [2][]byte, log *lines) *env {
	t.Helper()
	e := &env{t: t, root: root, log: log, sigs: make(chan os.Signal, 4), done: make(chan int, 1), injects: make(chan injected, 16)}
	var opt Options
	opt.Root = root
	opt.Log = e.log
	answers := [2]func(spawnproto.Request) (byte, string){local, remote}
	for c := 0; c < 2; c++ {
		e.spawn[c] = &fakeSpawner{answer: answers[c], announce: announce[c]}
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
	opt.CleanReq, opt.CleanRep = creqW, crepR
	e.closers = append(e.closers, creqW, crepR)
	opt.Signals = e.sigs
	opt.Trigger = true
	opt.Inject = func(msg io.Reader, sender string, recips []string) (int, error) {
		b, _ := io.ReadAll(msg)
		e.injects <- injected{string(b), sender, recips}
		return 4321, nil
	}
	go func() { e.done <- Run(opt) }()
	t.Cleanup(func() {
		select {
		case <-e.done:
		default:
			if e.exited {
				break
			}
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
	return e
}

// wait polls cond for up to 30 s (a bound met only on failure: the
// scheduler fsyncs, and runs under -race on a loaded machine).
func (e *env) wait(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; log:\n%s", what, e.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) waitLog(sub string, n int) {
	e.t.Helper()
	e.wait(fmt.Sprintf("%d× %q", n, sub), func() bool { return e.log.count(sub) >= n })
}

func (e *env) stop() int {
	e.t.Helper()
	e.sigs <- syscall.SIGTERM
	select {
	case code := <-e.done:
		e.exited = true
		return code
	case <-time.After(30 * time.Second):
		e.t.Fatalf("no exit after TERM; log:\n%s", e.log.String())
	}
	return -1
}

func (e *env) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(e.root, "queue", rel))
	return err == nil
}

// trigger pulls queue/lock/trigger as qmail-queue does. The scheduler
// opens the FIFO in a goroutine of its own after start, so an open that
// finds no reader yet (ENXIO) is retried (bounded) rather than lost.
func (e *env) trigger() {
	p := filepath.Join(e.root, "queue", "lock", "trigger")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			f.Write([]byte{0})
			f.Close()
			return
		}
		if !errors.Is(err, syscall.ENXIO) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mkTrigger(t *testing.T, root string) {
	if err := syscall.Mkfifo(filepath.Join(root, "queue", "lock", "trigger"), 0o622); err != nil {
		t.Fatal(err)
	}
}

// bare gives a Sched built by hand (no Run, no loop) the event channel and
// removers that jobClose and messDone hand their removals to; nothing
// reads the events, which the channel's room absorbs.
func bare(t testing.TB, s *Sched) {
	s.events = make(chan event, 64)
	s.stop = make(chan struct{})
	s.startRemovers()
	t.Cleanup(func() { close(s.stop) })
}
