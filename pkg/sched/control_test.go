package sched

import (
	"errors"
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

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		in   string
		err  error
		verb string
		arg  string
	}{
		{"t1 hold 123\n", nil, "hold", "123"},
		{"a.b-c_9 release 7", nil, "release", "7"},
		{"t delete 18446744073709551615\n", nil, "delete", "18446744073709551615"},
		{"t bounce 1\n", nil, "bounce", "1"},
		{"t hold-from joe@example.org\n", nil, "hold-from", "joe@example.org"},
		{"t hold-to a b@x\n", nil, "hold-to", "a b@x"},
		{"t release-from <>\n", nil, "release-from", "<>"},
		{"t release-to x\n", nil, "release-to", "x"},
		{"t hold 0\n", errBadArg, "", ""},
		{"t hold -1\n", errBadArg, "", ""},
		{"t hold 12a\n", errBadArg, "", ""},
		{"t hold 18446744073709551616\n", errBadArg, "", ""},
		{"t hold  12\n", errBadArg, "", ""},
		{"t hold\n", errBadVerb, "", ""},
		{"t frobnicate 1\n", errBadVerb, "", ""},
		{"t hold-from \n", errBadArg, "", ""},
		{"t hold-from a\x00b\n", errBadArg, "", ""},
		{"bad/tag hold 1\n", errBadTag, "", ""},
		{" hold 1\n", errBadTag, "", ""},
		{strings.Repeat("x", 65) + " hold 1\n", errBadTag, "", ""},
		{"t hold-from " + strings.Repeat("a", MaxRequest) + "\n", errTooLong, "", ""},
	}
	for _, tc := range tests {
		r, err := ParseRequest([]byte(tc.in))
		if err != tc.err {
			t.Errorf("%q: error %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && (r.Verb != tc.verb || r.Arg != tc.arg) {
			t.Errorf("%q: %+v", tc.in, r)
		}
		if err != nil && err != errBadTag && err != errTooLong && r.Tag == "" {
			t.Errorf("%q: tag lost for the answer", tc.in)
		}
	}
	if _, err := (Request{Tag: "t", Verb: "hold-to", Arg: "a\nb"}).Encode(); err == nil {
		t.Error("Encode accepted a newline")
	}
	if b, err := (Request{Tag: "t", Verb: "hold", Arg: "42"}).Encode(); err != nil || string(b) != "t hold 42\n" {
		t.Errorf("Encode: %q %v", b, err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("t1 hold 123\n"))
	f.Add([]byte("x hold-to a@b\n"))
	f.Add([]byte("x\x00 y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		line, err := r.Encode()
		if err != nil {
			t.Fatalf("%q parsed as %+v but does not encode: %v", b, r, err)
		}
		if r2, err := ParseRequest(line); err != nil || r2 != r {
			t.Fatalf("round trip %q: %+v %v", line, r2, err)
		}
	})
}

func TestHeldFile(t *testing.T) {
	q := t.TempDir()
	os.Mkdir(filepath.Join(q, "bounce"), 0o700)
	m, err := loadMsgCtl(q)
	if err != nil {
		t.Fatal(err)
	}
	m.held[42] = true
	m.held[7] = true
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(q, "bounce", HeldMsgsName))
	if !strings.HasSuffix(string(b), "\n7\n42\n") || !strings.HasPrefix(string(b), "#") {
		t.Errorf("file %q", b)
	}
	os.WriteFile(filepath.Join(q, "bounce", HeldMsgsName), []byte("# c\n5\njunk\n0\n 9 \n-3\n"), 0o600)
	held, err := LoadHeld(q)
	if err != nil || len(held) != 2 || !held[5] || !held[9] {
		t.Errorf("LoadHeld: %v %v", held, err)
	}
}

// request writes one request line into queue/lock/sendctl and waits for
// its result in sendstatus; it returns "WORD TEXT".
func (e *env) request(tag, verb, arg string) string {
	e.t.Helper()
	line, err := (Request{Tag: tag, Verb: verb, Arg: arg}).Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	return e.rawRequest(tag, line)
}

func (e *env) rawRequest(tag string, line []byte) string {
	e.t.Helper()
	f := e.openCtl()
	if _, err := f.Write(line); err != nil {
		e.t.Fatal(err)
	}
	f.Close()
	var res string
	e.wait("result of "+tag, func() bool {
		st, _ := os.ReadFile(filepath.Join(e.root, "queue/lock/sendstatus"))
		for _, l := range strings.Split(string(st), "\n") {
			if rest, ok := strings.CutPrefix(l, "ctl "+tag+" "); ok {
				res = rest
				return true
			}
		}
		return false
	})
	return res
}

// openCtl opens the request FIFO for writing once the scheduler reads it.
func (e *env) openCtl() *os.File {
	e.t.Helper()
	var f *os.File
	e.wait("sendctl reader", func() bool {
		var err error
		f, err = os.OpenFile(filepath.Join(e.root, "queue", ctlFIFO), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil && !errors.Is(err, syscall.ENXIO) {
			e.t.Fatal(err)
		}
		return err == nil
	})
	return f
}

func mkCtlFIFO(t *testing.T, root string) {
	t.Helper()
	mkTrigger(t, root)
	if err := syscall.Mkfifo(filepath.Join(root, "queue", ctlFIFO), 0o600); err != nil {
		t.Fatal(err)
	}
}

// gate is a spawner answer that keeps deliveries to "slow" recipients in
// flight until open is called, answering them with letter.
type gate struct {
	once   sync.Once
	ch     chan struct{}
	letter byte
}

func newGate(letter byte) *gate { return &gate{ch: make(chan struct{}), letter: letter} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) answer(r spawnproto.Request) (byte, string) {
	if strings.HasPrefix(r.Recipient, "slow") {
		select {
		case <-g.ch:
		case <-time.After(20 * time.Second):
		}
		if g.letter == 'Z' {
			return 'Z', "mailbox busy\n"
		}
		return g.letter, "did 1+0+0\n"
	}
	return 'K', "did 1+0+0\n"
}

func TestCtlHoldRelease(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	if got := e.request("u1", "hold", "99999"); got != "fail message 99999 is not in the queue" {
		t.Errorf("unknown id: %q", got)
	}
	// A message held while still in todo/ is never started.
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held", 1)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	other := queueMsg(t, root, "ann@example.org", "carl@local.example")
	sid := fmt.Sprint(id)
	if got := e.request("h1", "hold", sid); got != "ok message "+sid+" held (not yet preprocessed)" {
		t.Errorf("hold: %q", got)
	}
	if got := e.request("h2", "hold", sid); got != "ok message "+sid+" is already held" {
		t.Errorf("hold again: %q", got)
	}
	e.trigger()
	e.waitLog("new msg", 2)
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	// The held message is still on the schedule: not due all the same.
	e.waitLog("hold: local released, 1 message due now, 1 held by id\n", 1)
	e.waitLog(fmt.Sprintf("end msg %d", other), 1)
	e.sigs <- syscall.SIGALRM // everything due: the held message stays
	e.wait("ALRM handled", func() bool {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		return strings.Contains(string(st), "generation 3\n")
	})
	if n := len(e.spawn[chanLocal].requests()); n != 1 {
		t.Fatalf("%d deliveries, want 1 (the held message started?)\n%s", n, e.log.String())
	}
	st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	if !strings.Contains(string(st), "queued-local 1\n") {
		t.Errorf("sendstatus:\n%s", st)
	}
	// A release does not count the message held by id as due.
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held, 1 message waiting", 1)
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local released, 0 messages due now, 1 held by id\n", 1)
	// The hold survives a restart.
	if code := e.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, _ := os.ReadFile(filepath.Join(root, "queue/bounce", HeldMsgsName))
	if !strings.Contains(string(b), "\n"+sid+"\n") {
		t.Errorf("heldmsgs %q", b)
	}
	e = start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	e.sigs <- syscall.SIGALRM
	e.wait("ALRM handled", func() bool {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		return strings.Contains(string(st), "generation 1\n")
	})
	if got := e.request("h3", "hold", sid); got != "ok message "+sid+" is already held" {
		t.Errorf("hold after restart: %q", got)
	}
	if n := len(e.spawn[chanLocal].requests()); n != 0 {
		t.Fatalf("held message delivered after restart\n%s", e.log.String())
	}
	if got := e.request("r1", "release", sid); got != "ok message "+sid+" released" {
		t.Errorf("release: %q", got)
	}
	e.waitLog("end msg "+sid, 1)
	if got := e.request("r2", "release", sid); got != "fail message "+sid+" is not in the queue" {
		t.Errorf("release of a gone message: %q", got)
	}
	b, _ = os.ReadFile(filepath.Join(root, "queue/bounce", HeldMsgsName))
	if strings.Contains(string(b), sid) {
		t.Errorf("heldmsgs keeps the finished message: %q", b)
	}
}

func TestCtlHoldByAddress(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdlocal", "")
	ctl(t, root, "virtualdomains", "virt.example:bob\n")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	a := queueMsg(t, root, "spammer@example.org", "x@local.example")
	b := queueMsg(t, root, "Spammer@Example.ORG", "y@local.example")
	c := queueMsg(t, root, "ann@example.org", "joe@virt.example")
	d := queueMsg(t, root, "", "z@local.example")
	e.trigger()
	e.waitLog("new msg", 4)
	tests := []struct{ verb, arg, want string }{
		{"hold-from", "spammer@example.org", "ok 2 messages from <spammer@example.org> held"},
		{"hold-from", "spammer@example.org", "ok 0 messages from <spammer@example.org> held (2 were held already)"},
		{"hold-to", "joe@virt.example", "ok 1 message to <joe@virt.example> held"},
		{"hold-to", "joe@virt.example", "ok 0 messages to <joe@virt.example> held (1 was held already)"},
		{"hold-from", "<>", "ok 1 message from <> held"},
		{"release-to", "y@local.example", "ok 1 message to <y@local.example> released"},
		{"release-from", "nobody@example.org", "ok 0 messages from <nobody@example.org> released; 3 messages stay held (qmailctl queue shows them as msgheld; release them by id)"},
	}
	for i, tc := range tests {
		if got := e.request(fmt.Sprint("a", i), tc.verb, tc.arg); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.verb, tc.arg, got, tc.want)
		}
	}
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	e.waitLog(fmt.Sprintf("end msg %d", b), 1)
	e.sigs <- syscall.SIGALRM
	e.wait("ALRM handled", func() bool {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		return strings.Contains(string(st), "generation 2\n")
	})
	held, _ := LoadHeld(filepath.Join(root, "queue"))
	if len(held) != 3 || !held[a] || !held[c] || !held[d] {
		t.Errorf("held %v, want %d %d %d", held, a, c, d)
	}
	if n := len(e.spawn[chanLocal].requests()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// TestCtlDelete: a message with three local recipients and concurrency 1;
// the first delivery is in flight when the message is deleted. It finishes
// normally, the other two never start, and the message leaves the queue
// through qmail-clean.
func TestCtlDelete(t *testing.T) {
	for _, letter := range []byte{'K', 'Z', 'D'} {
		t.Run(string(letter), func(t *testing.T) {
			root := newTree(t)
			mkCtlFIFO(t, root)
			ctl(t, root, "concurrencylocal", "1\n")
			g := newGate(letter)
			e := start(t, root, g.answer, ok)
			e.waitLog("status: local 0/1", 1)
			id := queueMsg(t, root, "ann@example.org", "slow@local.example", "b@local.example", "c@local.example")
			e.trigger()
			e.waitLog("starting delivery 1:", 1)
			sid := fmt.Sprint(id)
			if got := e.request("d1", "delete", sid); got != "ok message "+sid+": 2 recipients deleted; 1 delivery in progress finishes normally" {
				t.Errorf("delete: %q", got)
			}
			g.open()
			e.waitLog("end msg "+sid, 1)
			if n := len(e.spawn[chanLocal].requests()); n != 1 {
				t.Errorf("%d deliveries started, want 1\n%s", n, e.log.String())
			}
			// "end msg" is logged before qmail-clean removes the files.
			for _, f := range []string{fnSplit("mess", id), fnSplit("info", id), fnChan(0, id)} {
				e.wait(f+" removed", func() bool { return !e.exists(f) })
			}
			select {
			case inj := <-e.injects:
				if letter != 'D' || !strings.Contains(inj.msg, "<slow@local.example>:\n") || strings.Contains(inj.msg, "<b@local.example>") {
					t.Errorf("bounce %q", inj.msg)
				}
			default:
				if letter == 'D' {
					t.Error("the failed in-flight delivery was not bounced")
				}
			}
			if got := e.request("d2", "delete", sid); got != "fail message "+sid+" is not in the queue" {
				t.Errorf("delete again: %q", got)
			}
		})
	}
}

// TestCtlDeleteTodoLeft: a delete of a message whose todo/ID is still
// there after its preprocessing (qmail-clean could not remove it) is not
// undone by the next scan: that would make its channel files anew with
// every record pending, and the "deleted" mail was delivered.
func TestCtlDeleteTodoLeft(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdlocal", "")
	id := queueMsg(t, root, "ann@example.org", "b@local.example")
	q := filepath.Join(root, "queue")
	keep := filepath.Join(root, "todo-copy")
	if err := os.Link(filepath.Join(q, fnFlat("todo", id)), keep); err != nil {
		t.Fatal(err)
	}
	e := start(t, root, ok, ok)
	e.waitLog("new msg", 1)
	e.wait("todo removed", func() bool { return !e.exists(fnFlat("todo", id)) })
	if err := os.Link(keep, filepath.Join(q, fnFlat("todo", id))); err != nil {
		t.Fatal(err)
	}
	sid := fmt.Sprint(id)
	if got := e.request("d1", "delete", sid); got != "ok message "+sid+": 1 recipient deleted" {
		t.Errorf("delete: %q", got)
	}
	e.trigger() // a scan of todo/
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("end msg "+sid, 1)
	if n := len(e.spawn[chanLocal].requests()); n != 0 {
		t.Errorf("%d deliveries of the deleted message\n%s", n, e.log.String())
	}
}

// TestCtlBounceDiskFull: a qmailctl bounce whose paragraphs cannot be
// written (a full disk; here the file size limit) is answered defer and
// changes nothing; qmail-send went into addBounce's 10-second retries and
// answered nothing else until there was space.
func TestCtlBounceDiskFull(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	var rcpts []string
	for i := range 60 {
		rcpts = append(rcpts, fmt.Sprintf("r%02d@remote.example", i))
	}
	id := queueMsg(t, root, "ann@example.org", rcpts...)
	e.trigger()
	e.waitLog("new msg", 1)
	sid := fmt.Sprint(id)
	var got string
	testutil.WithFileSizeLimit(t, 2000, func() { got = e.request("b1", "bounce", sid) })
	if !strings.HasPrefix(got, "defer message "+sid+": unable to write bounce/"+sid) {
		t.Errorf("bounce on a full disk: %q", got)
	}
	if e.exists("bounce/" + sid) {
		t.Errorf("a bounce file is left")
	}
	if got := e.request("h1", "hold", "99999"); got != "fail message 99999 is not in the queue" {
		t.Errorf("next request: %q", got)
	}
	if got := e.request("b2", "bounce", sid); got != "ok message "+sid+": 60 recipients bounced" {
		t.Errorf("bounce with space: %q", got)
	}
	e.waitLog("end msg "+sid, 1)
	inj := <-e.injects
	if n := strings.Count(inj.msg, AdminBounceText); n != 60 {
		t.Errorf("the bounce has %d paragraphs, want 60", n)
	}
}

// TestCtlBounce: as TestCtlDelete, with bounce; a deferral of the in-flight
// delivery becomes a failure too, so every recipient is in the bounce.
func TestCtlBounce(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "concurrencylocal", "1\n")
	// Held from the start: a HUP racing the trigger could let the remote
	// delivery start first.
	ctl(t, root, "holdremote", "")
	g := newGate('Z')
	e := start(t, root, g.answer, ok)
	e.waitLog("status: local 0/1", 1)
	id := queueMsg(t, root, "ann@example.org", "slow@local.example", "b@local.example", "c@remote.example")
	e.trigger()
	e.waitLog("starting delivery 1:", 1)
	sid := fmt.Sprint(id)
	if got := e.request("b1", "bounce", sid); got != "ok message "+sid+": 2 recipients bounced; 1 delivery in progress finishes normally" {
		t.Errorf("bounce: %q", got)
	}
	g.open()
	e.waitLog("end msg "+sid, 1)
	inj := <-e.injects
	if inj.recips[0] != "ann@example.org" {
		t.Errorf("bounce to %v", inj.recips)
	}
	for _, want := range []string{
		"<b@local.example>:\n" + AdminBounceText + "\n\n",
		"<c@remote.example>:\n" + AdminBounceText + "\n\n",
		"<slow@local.example>:\nmailbox busy\n" + AdminBounceText + "\n\n",
	} {
		if !strings.Contains(inj.msg, want) {
			t.Errorf("bounce lacks %q:\n%s", want, inj.msg)
		}
	}
	if n := len(e.spawn[chanLocal].requests()) + len(e.spawn[chanRemote].requests()); n != 1 {
		t.Errorf("%d deliveries", n)
	}
}

// TestCtlBadInput: damaged files, garbage requests and unknown ids give
// answers and change nothing.
func TestCtlBadInput(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdlocal", "")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	keep := queueMsg(t, root, "ann@example.org", "carl@local.example")
	e.trigger()
	e.waitLog("new msg", 2)
	sid := fmt.Sprint(id)
	info := filepath.Join(root, "queue", fnSplit("info", id))
	// "new msg" is logged before info/ID is written and flushed: damage it
	// only once qmail-send has finished writing it.
	e.wait("info written", func() bool {
		b, _ := os.ReadFile(info)
		return string(b) == "Fann@example.org\x00"
	})
	os.WriteFile(info, []byte("garbage"), 0o600)
	if got := e.request("x1", "bounce", sid); !strings.HasPrefix(got, "fail message "+sid+": info file damaged") {
		t.Errorf("bounce of damaged: %q", got)
	}
	if got := e.rawRequest("x2", []byte("x2 explode 1\n")); got != "fail qmail-send: unknown request" {
		t.Errorf("bad verb: %q", got)
	}
	if got := e.rawRequest("x3", []byte("x3 delete 12ab\n")); got != "fail qmail-send: bad argument" {
		t.Errorf("bad id: %q", got)
	}
	long := append([]byte("x4 hold-from "), make([]byte, 5000)...)
	for i := range long[13:] {
		long[13+i] = 'a'
	}
	f := e.openCtl()
	f.Write(append(long, '\n'))
	f.Close()
	e.waitLog("warning: qmailctl request too long, ignored", 1)
	if got := e.request("x5", "delete", "424242"); got != "fail message 424242 is not in the queue" {
		t.Errorf("unknown: %q", got)
	}
	for _, m := range []uint64{id, keep} {
		for _, n := range []string{fnSplit("mess", m), fnSplit("info", m), fnChan(0, m)} {
			if !e.exists(n) {
				t.Errorf("%s removed", n)
			}
		}
	}
	if e.exists("bounce/" + sid) {
		t.Error("bounce file created")
	}
	// A damaged channel file: delete marks what it can parse and says so.
	ch := filepath.Join(root, "queue", fnChan(0, keep))
	b, _ := os.ReadFile(ch)
	os.WriteFile(ch, append(b, []byte("Qjunk\x00Tlater@local.example\x00")...), 0o600)
	skeep := fmt.Sprint(keep)
	if got := e.request("x6", "delete", skeep); got != "ok message "+skeep+": 1 recipient deleted; damaged records left in "+fnChan(0, keep) {
		t.Errorf("delete of damaged: %q", got)
	}
}

// TestCtlHoldInFlight: holding a message while one of its deliveries runs
// stops the rest; the running delivery finishes; a message with nothing
// left leaves the queue although held.
func TestCtlHoldInFlight(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "concurrencylocal", "1\n")
	g, gate2 := newGate('K'), newGate('K')
	answer := func(r spawnproto.Request) (byte, string) {
		if strings.HasPrefix(r.Recipient, "slow2") {
			return gate2.answer(r)
		}
		return g.answer(r)
	}
	e := start(t, root, answer, ok)
	e.waitLog("status: local 0/1", 1)
	two := queueMsg(t, root, "ann@example.org", "slow@local.example", "b@local.example")
	e.trigger()
	e.waitLog("starting delivery 1:", 1)
	s2 := fmt.Sprint(two)
	if got := e.request("h1", "hold", s2); got != "ok message "+s2+" held; 1 delivery in progress finishes normally" {
		t.Errorf("hold: %q", got)
	}
	g.open()
	e.waitLog("delivery 1: success", 1)
	one := queueMsg(t, root, "ann@example.org", "c@local.example")
	e.trigger()
	e.waitLog(fmt.Sprintf("end msg %d", one), 1)
	if n := len(e.spawn[chanLocal].requests()); n != 2 {
		t.Fatalf("%d deliveries, want 2 (b@ must wait)\n%s", n, e.log.String())
	}
	if got := e.request("r1", "release", s2); got != "ok message "+s2+" released" {
		t.Errorf("release: %q", got)
	}
	e.waitLog("end msg "+s2, 1)
	if r := e.spawn[chanLocal].requests(); len(r) != 3 || r[2].Recipient != "b@local.example" {
		t.Errorf("requests %+v", r)
	}

	// Held while its only delivery runs: it leaves the queue when done.
	g2 := queueMsg(t, root, "ann@example.org", "slow2@local.example")
	e.trigger()
	e.waitLog("msg "+fmt.Sprint(g2)+" to local slow2", 1)
	sg := fmt.Sprint(g2)
	if got := e.request("h2", "hold", sg); got != "ok message "+sg+" held; 1 delivery in progress finishes normally" {
		t.Errorf("hold: %q", got)
	}
	gate2.open()
	e.waitLog("end msg "+sg, 1)
	e.wait("the finished message out of the held set", func() bool {
		held, _ := LoadHeld(filepath.Join(root, "queue"))
		return !held[g2]
	})
}

// TestBrokenFIFOs: a lock/trigger that is a regular file and a missing
// lock/sendctl are each logged at start (qmail-send went on silently,
// new mail waiting for the 25-minute scan); after qmail-install's repair
// a HUP opens them, and both work.
func TestBrokenFIFOs(t *testing.T) {
	root := newTree(t)
	trig := filepath.Join(root, "queue", "lock", "trigger")
	if err := os.WriteFile(trig, []byte("x"), 0o622); err != nil {
		t.Fatal(err)
	}
	e := start(t, root, ok, ok)
	e.waitLog("warning: unable to open lock/trigger: not a named pipe; new mail waits for the scan of todo/ every 1500 seconds", 1)
	e.waitLog("warning: unable to open lock/sendctl: no such file or directory; qmailctl requests go unanswered", 1)
	e.waitLog("status: local 0/10", 1)
	// Mail queued meanwhile could wake nobody: the HUP after the repair
	// scans todo/ (it waited for the next injection or the 25 minutes).
	id0 := queueMsg(t, root, "ann@example.org", "bea@local.example")
	os.Remove(trig)
	mkCtlFIFO(t, root)
	e.sigs <- syscall.SIGHUP
	if got := e.request("u1", "hold", "99999"); got != "fail message 99999 is not in the queue" {
		t.Errorf("request after HUP: %q", got)
	}
	e.waitLog(fmt.Sprintf("end msg %d", id0), 1)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	e.trigger()
	e.waitLog(fmt.Sprintf("end msg %d", id), 1)
	// Both pipes replaced while it runs (qmail-install after an rm):
	// a HUP reads the new ones; it kept reading the unlinked old ones.
	os.Remove(trig)
	os.Remove(filepath.Join(root, "queue", ctlFIFO))
	mkCtlFIFO(t, root)
	e.sigs <- syscall.SIGHUP
	if got := e.request("u2", "hold", "99999"); got != "fail message 99999 is not in the queue" {
		t.Errorf("request after the pipes were replaced: %q", got)
	}
	id2 := queueMsg(t, root, "ann@example.org", "carl@local.example")
	e.trigger()
	e.waitLog(fmt.Sprintf("end msg %d", id2), 1)
	e.stop()
	if n := e.log.count("warning: unable to open lock/"); n != 2 {
		t.Errorf("%d warnings about the pipes, want 2 (none after the repair); log:\n%s", n, e.log.String())
	}
}

// TestHoldFinishesDoneMessage: a hold that comes while a message's last
// delivery runs, its pass suspended before the end of the file (every slot
// busy), does not keep the finished message in the queue for the whole
// hold: the end of the file is seen without a delivery being started, and
// the message ends as soon as that delivery does.
func TestHoldFinishesDoneMessage(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "concurrencylocal", "1\n")
	mkTrigger(t, root)
	g := newGate('K')
	e := start(t, root, g.answer, ok)
	e.waitLog("status: local 0/1", 1)
	id := queueMsg(t, root, "ann@example.org", "slow@local.example")
	e.trigger()
	e.waitLog("starting delivery 1: msg", 1)
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held", 1)
	g.open()
	e.waitLog("delivery 1: success", 1)
	e.waitLog(fmt.Sprintf("end msg %d", id), 1)
	e.stop()
}

// TestStatusExitingAtTerm: at TERM sendstatus says at once that qmail-send
// is exiting, while its deliveries in progress finish (qmailctl status said
// "running" and confirmed holds that nothing would act on).
func TestStatusExitingAtTerm(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	g := newGate('K')
	e := start(t, root, g.answer, ok)
	e.waitLog("status: local 0/10", 1)
	queueMsg(t, root, "ann@example.org", "slow@local.example")
	e.trigger()
	e.waitLog("starting delivery 1:", 1)
	e.sigs <- syscall.SIGTERM
	e.wait("exiting in sendstatus", func() bool {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		return strings.Contains(string(st), "\nexiting yes\n")
	})
	g.open()
	select {
	case <-e.done:
		e.exited = true
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after the delivery ended")
	}
}

// TestHeldFileUnreadable: a held-message file that exists but cannot be
// read keeps qmail-send from starting (it was taken as empty: the messages
// an admin held were delivered, and the next hold replaced the record).
func TestHeldFileUnreadable(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	held := filepath.Join(root, "queue", "bounce", HeldMsgsName)
	// A directory reads the same as a file of the wrong owner: unreadable.
	if err := os.Mkdir(held, 0o700); err != nil {
		t.Fatal(err)
	}
	e := start(t, root, ok, ok)
	select {
	case code := <-e.done:
		e.exited = true
		if code != 111 || e.log.count("alert: cannot start: unable to read bounce/"+HeldMsgsName+": is a directory") != 1 {
			t.Fatalf("exit %d, log:\n%s", code, e.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("qmail-send started; log:\n%s", e.log.String())
	}
	if e.log.count("starting delivery") > 0 {
		t.Errorf("delivered: %s", e.log.String())
	}
	if st, err := os.Stat(held); err != nil || !st.IsDir() {
		t.Errorf("the unreadable file was replaced: %v", err)
	}
	// Readable again: the message is held, as recorded; another flows.
	os.Remove(held)
	os.WriteFile(held, []byte(fmt.Sprintf("%d\n", id)), 0o600)
	other := queueMsg(t, root, "ann@example.org", "carl@local.example")
	e2 := start(t, root, ok, ok)
	e2.waitLog(fmt.Sprintf("end msg %d", other), 1)
	e2.stop()
	if n := len(e2.spawn[chanLocal].requests()); n != 1 {
		t.Errorf("%d deliveries, want 1 (the held message started?)\n%s", n, e2.log.String())
	}
}

// TestHoldFinishesDoneMessageWithDoneRecords: as TestHoldFinishesDoneMessage,
// with records already delivered after the running one (a retry of the
// first recipient after the second was delivered): they are read past, not
// left "to read" until the release.
func TestHoldFinishesDoneMessageWithDoneRecords(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "concurrencylocal", "1\n")
	mkTrigger(t, root)
	var mu sync.Mutex
	tries := 0
	gate := make(chan struct{})
	answer := func(r spawnproto.Request) (byte, string) {
		if !strings.HasPrefix(r.Recipient, "slow") {
			return 'K', "did 1+0+0\n"
		}
		mu.Lock()
		tries++
		n := tries
		mu.Unlock()
		if n == 1 {
			return 'Z', "try later\n"
		}
		select {
		case <-gate:
		case <-time.After(20 * time.Second):
		}
		return 'K', "did 1+0+0\n"
	}
	e := start(t, root, answer, ok)
	e.waitLog("status: local 0/1", 1)
	id := queueMsg(t, root, "ann@example.org", "slow@local.example", "bob@local.example")
	e.trigger()
	e.waitLog("delivery 2: success", 1) // slow deferred, bob delivered
	e.sigs <- syscall.SIGALRM           // the retry of slow
	e.waitLog("starting delivery 3: msg", 1)
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held", 1)
	close(gate)
	e.waitLog("delivery 3: success", 1)
	e.waitLog(fmt.Sprintf("end msg %d", id), 1)
	e.stop()
}

// TestCtlBounceMarkFails: a bounce whose marking fails partway keeps the
// paragraphs of the recipients it marked only; a retry of the bounce then
// writes each other recipient's once (they stood in bounce/ID twice).
func TestCtlBounceMarkFails(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	var calls atomic.Int32
	old := writeMark
	writeMark = func(f *os.File, pos int64) error {
		if calls.Add(1) == 2 {
			return errors.New("injected")
		}
		return old(f, pos)
	}
	t.Cleanup(func() { writeMark = old })
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	id := queueMsg(t, root, "ann@example.org", "a@remote1.example", "b@remote2.example", "c@remote3.example")
	e.trigger()
	e.waitLog("new msg", 1)
	sid := fmt.Sprint(id)
	if got := e.request("b1", "bounce", sid); !strings.HasPrefix(got, "defer message "+sid+": unable to mark remote/") {
		t.Errorf("bounce: %q", got)
	}
	b, _ := os.ReadFile(filepath.Join(root, "queue", fnFlat("bounce", id)))
	if string(b) != "<a@remote1.example>:\n"+AdminBounceText+"\n\n" {
		t.Errorf("bounce/ID after the failed mark: %q", b)
	}
	if got := e.request("b2", "bounce", sid); got != "ok message "+sid+": 2 recipients bounced" {
		t.Errorf("bounce again: %q", got)
	}
	e.waitLog("end msg "+sid, 1)
	inj := <-e.injects
	for _, r := range []string{"a@remote1.example", "b@remote2.example", "c@remote3.example"} {
		if n := strings.Count(inj.msg, "<"+r+">:"); n != 1 {
			t.Errorf("%s in the bounce %d times:\n%s", r, n, inj.msg)
		}
	}
}

// TestCtlDeleteHeldInFlight: a message deleted while its channel is held
// and a delivery of it runs leaves the queue when that delivery ends (its
// pass had been closed short of the end of its file, and the message stayed,
// done, until the release).
func TestCtlDeleteHeldInFlight(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "concurrencylocal", "1\n")
	g := newGate('K')
	e := start(t, root, g.answer, ok)
	e.waitLog("status: local 0/1", 1)
	id := queueMsg(t, root, "ann@example.org", "slow@local.example", "b@local.example", "c@local.example")
	e.trigger()
	e.waitLog("starting delivery 1:", 1)
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held", 1)
	sid := fmt.Sprint(id)
	if got := e.request("d1", "delete", sid); got != "ok message "+sid+": 2 recipients deleted; 1 delivery in progress finishes normally" {
		t.Errorf("delete: %q", got)
	}
	g.open()
	e.waitLog("delivery 1: success", 1)
	e.waitLog("end msg "+sid, 1)
}

// TestCtlHoldByAddressIDN: hold to/from compares the domain as qmail-remote
// reaches it: either spelling of an internationalized name, with or
// without a trailing dot (only the spelling queued matched).
func TestCtlHoldByAddressIDN(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	queueMsg(t, root, "jörg@Bücher.example", "hx@bücher.example")
	e.trigger()
	e.waitLog("new msg", 1)
	for i, tc := range []struct{ verb, arg, want string }{
		{"hold-to", "HX@xn--bcher-kva.example.", "ok 1 message to <HX@xn--bcher-kva.example.> held"},
		{"release-to", "hx@BÜCHER.example", "ok 1 message to <hx@BÜCHER.example> released"},
		{"hold-from", "jörg@xn--bcher-kva.example", "ok 1 message from <jörg@xn--bcher-kva.example> held"},
		{"hold-to", "hy@bücher.example", "ok 0 messages to <hy@bücher.example> held"},
	} {
		if got := e.request(fmt.Sprint("i", i), tc.verb, tc.arg); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.verb, tc.arg, got, tc.want)
		}
	}
}

// TestCtlDeleteUnsendableBounce: a delete of a message whose earlier
// failures can never be bounced (its message file is missing) removes
// bounce/ID and says so, and the message leaves the queue. qmailctl
// bounce refuses such a message and says to delete it; the delete
// answered "deleted", and qmail-send then tried to send the bounce every
// pass, keeping the message for good (QA bounce).
func TestCtlDeleteUnsendableBounce(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	fail := func(spawnproto.Request) (byte, string) { return 'D', "no (#5.1.1)\n" }
	e := start(t, root, fail, ok)
	e.waitLog("status: local 0/10", 1)
	id := queueMsg(t, root, "ann@example.org", "gone@local.example", "c@remote.example")
	e.trigger()
	e.waitLog("delivery 1: failure:", 1)
	sid := fmt.Sprint(id)
	bn := fnFlat("bounce", id)
	e.wait(bn, func() bool { return e.exists(bn) })
	if err := os.Remove(filepath.Join(root, "queue", fnSplit("mess", id))); err != nil {
		t.Fatal(err)
	}
	if got := e.request("b1", "bounce", sid); got != "fail message "+sid+": message file missing: not bounced; delete it instead" {
		t.Errorf("bounce: %q", got)
	}
	want := "ok message " + sid + ": 1 recipient deleted; its earlier failures are not reported (message file missing: " + bn + " removed)"
	if got := e.request("d1", "delete", sid); got != want {
		t.Errorf("delete: %q, want %q", got, want)
	}
	e.waitLog("warning: "+bn+" removed unsent: message file missing; the earlier failures of message "+sid+" are not reported", 1)
	e.waitLog("end msg "+sid, 1)
}

// TestCtlBounceDoubleBounce: the answer to a bounce of a double bounce
// says that no bounce is sent (a triple bounce is discarded, as in
// qmail); it said "bounced" and the message went without a notice.
func TestCtlBounceDoubleBounce(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdremote", "")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	id := queueMsg(t, root, "#@[]", "postmaster@remote.example")
	e.trigger()
	e.waitLog("new msg "+fmt.Sprint(id), 1)
	sid := fmt.Sprint(id)
	want := "ok message " + sid + ": 1 recipient bounced; it is a double bounce, so no bounce is sent (a triple bounce is discarded)"
	if got := e.request("b1", "bounce", sid); got != want {
		t.Errorf("bounce: %q, want %q", got, want)
	}
	e.waitLog("triple bounce: discarding bounce/"+sid, 1)
	e.waitLog("end msg "+sid, 1)
}

// TestCtlReleaseToAfterDelivery: "release to ADDRESS" releases what "hold
// to ADDRESS" held even when the matching recipient's delivery, running
// at the hold, has succeeded since and its channel file has gone: the
// release found nothing to match ("0 messages released") and the
// message's other recipients stayed held for good (QA chaos). The hold's
// answer counts the running delivery.
func TestCtlReleaseToAfterDelivery(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	ctl(t, root, "holdlocal", "")
	g := newGate('K')
	e := start(t, root, ok, g.answer)
	e.waitLog("status: local 0/10", 1)
	id := queueMsg(t, root, "ann@example.org", "slow@remote.example", "slow2@remote.example", "u1@local.example")
	e.trigger()
	e.waitLog("starting delivery ", 2)
	want := "ok 1 message to <slow@remote.example> held; 2 deliveries in progress finish normally"
	if got := e.request("h1", "hold-to", "slow@remote.example"); got != want {
		t.Errorf("hold-to: %q, want %q", got, want)
	}
	// Held already, by the other address: the release of this one
	// finds it all the same (QA reg25).
	if got := e.request("h2", "hold-to", "slow2@remote.example"); got != "ok 0 messages to <slow2@remote.example> held (1 was held already)" {
		t.Errorf("second hold-to: %q", got)
	}
	g.open()
	e.waitLog("success", 2)
	e.wait("remote file removed", func() bool { return !e.exists(fnChan(1, id)) })
	if got := e.request("r1", "release-to", "slow2@remote.example"); got != "ok 1 message to <slow2@remote.example> released" {
		t.Errorf("release-to: %q", got)
	}
	if held, _ := LoadHeld(filepath.Join(root, "queue")); held[id] {
		t.Errorf("message %d still held", id)
	}
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	e.waitLog(fmt.Sprintf("end msg %d", id), 1)
}

// TestCtlKillDyingDeferral: qmailctl delete or bounce of a message older
// than queuelifetime while one of its deliveries is in flight, and that
// delivery is deferred. qmail-send(8) promises that the deferral drops the
// recipient (delete) or bounces it with the postmaster's line (bounce).
// report() used to turn the Z of such a dying message into a "too long"
// failure first, so finalDeferral never saw the Z: the sender of a
// deleted message got a failure notice, and a bounced one said "in the
// queue too long" instead of the postmaster's line.
func TestCtlKillDyingDeferral(t *testing.T) {
	for _, verb := range []string{"delete", "bounce"} {
		t.Run(verb, func(t *testing.T) {
			root := newTree(t)
			mkCtlFIFO(t, root)
			ctl(t, root, "concurrencylocal", "1\n")
			ctl(t, root, "queuelifetime", "10\n")
			ctl(t, root, "holdlocal", "") // preprocessed, not delivered
			id := queueMsg(t, root, "ann@example.org", "slow@local.example", "b@local.example")
			sid := fmt.Sprint(id)
			e := start(t, root, ok, ok)
			e.waitLog("new msg "+sid, 1)
			e.stop()
			// An hour old, and no held time to take off its age.
			old := time.Now().Add(-time.Hour)
			os.Chtimes(filepath.Join(root, "queue", fnSplit("info", id)), old, old)
			os.Chtimes(filepath.Join(root, "queue", fnChan(chanLocal, id)), old, old)
			os.Remove(filepath.Join(root, "control", "holdlocal"))
			os.Remove(filepath.Join(root, "queue", "bounce", HoldLogName))
			g := newGate('Z')
			e2 := start(t, root, g.answer, ok)
			e2.waitLog("starting delivery 1:", 1)
			if got := e2.request("k1", verb, sid); !strings.HasPrefix(got, "ok ") {
				t.Fatalf("%s: %q", verb, got)
			}
			g.open()
			e2.waitLog("end msg "+sid, 1)
			if verb == "delete" {
				select {
				case inj := <-e2.injects:
					t.Errorf("a bounce was sent for a deleted message:\n%s", inj.msg)
				default: // messDone injects before it logs "end msg"
				}
				return
			}
			select {
			case inj := <-e2.injects:
				if strings.Contains(inj.msg, "too long") || strings.Count(inj.msg, AdminBounceText) != 2 {
					t.Errorf("bounce of a bounced message, want the postmaster's line for both recipients, no \"too long\":\n%s", inj.msg)
				}
			default:
				t.Errorf("no bounce for a bounced message; log:\n%s", e2.log.String())
			}
		})
	}
}

// TestCtlKillMangledReport: qmailctl delete or bounce while a delivery is
// in flight, and that delivery's report is mangled ("will defer"). A
// mangled report is a deferral, so it is final as a Z is: the recipient is
// dropped (delete) or bounced with the postmaster's line (bounce). It was
// left pending and delivered again after the delete; the report's own
// text, which means nothing, is not in the bounce.
func TestCtlKillMangledReport(t *testing.T) {
	for _, verb := range []string{"delete", "bounce"} {
		t.Run(verb, func(t *testing.T) {
			root := newTree(t)
			mkCtlFIFO(t, root)
			ctl(t, root, "concurrencylocal", "1\n")
			release := make(chan struct{})
			var slowCalls atomic.Int32
			answer := func(r spawnproto.Request) (byte, string) {
				if strings.HasPrefix(r.Recipient, "slow") {
					if slowCalls.Add(1) == 1 {
						select {
						case <-release:
						case <-time.After(20 * time.Second):
						}
						return 'X', "garbled\n" // no status letter
					}
					return 'K', "did 1+0+0 (AFTER THE REQUEST)\n"
				}
				return 'K', "did 1+0+0\n"
			}
			e := start(t, root, answer, ok)
			e.waitLog("status: local 0/1", 1)
			id := queueMsg(t, root, "ann@example.org", "slow@local.example", "b@local.example")
			sid := fmt.Sprint(id)
			e.trigger()
			e.waitLog("starting delivery 1:", 1)
			if got := e.request("k1", verb, sid); !strings.HasPrefix(got, "ok ") {
				t.Fatalf("%s: %q", verb, got)
			}
			close(release)
			e.waitLog("delivery 1: report mangled, will defer", 1)
			e.waitLog("end msg "+sid, 1)
			if n := len(e.spawn[chanLocal].requests()); n != 1 {
				t.Errorf("%s: %d deliveries started, want 1 (the recipient of the mangled report was delivered again); log:\n%s",
					verb, n, e.log.String())
			}
			var inj injected
			select {
			case inj = <-e.injects:
			default:
			}
			switch {
			case verb == "delete" && inj.msg != "":
				t.Errorf("a bounce was sent for a deleted message:\n%s", inj.msg)
			case verb == "bounce" && (strings.Count(inj.msg, AdminBounceText) != 2 || strings.Contains(inj.msg, "garbled")):
				t.Errorf("bounce, want the postmaster's line for both recipients and no mangled text:\n%s", inj.msg)
			}
		})
	}
}

// TestCtlHoldEndedMessage: a hold (by id, or hold-from) that comes after
// the message's "end msg" while its info file waits for a remover (a slow
// disk) found the info file and held the message, though forget() had
// already dropped its control state: the id stayed in bounce/heldmsgs
// after the message was gone (qmail-send(8): ids of messages that are
// gone are dropped when a message ends), and held the next message given
// the same inode (ext4 reuses freed inodes) for good. Such a message is
// not in the queue any more.
func TestCtlHoldEndedMessage(t *testing.T) {
	root := newTree(t)
	mkCtlFIFO(t, root)
	gate := make(chan struct{})
	setUnlinkHook(t, func(rel string, unlink func() error) error {
		if strings.HasPrefix(rel, "info/") {
			select { // a slow disk: the info unlink waits
			case <-gate:
			case <-time.After(20 * time.Second):
			}
		}
		return unlink()
	})
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	sid := fmt.Sprint(id)
	e.trigger()
	e.waitLog("end msg "+sid, 1)
	if !e.exists(fnSplit("info", id)) {
		t.Fatal("info file already removed: the test needs the removal held up")
	}
	if got := e.request("h1", "hold-from", "ann@example.org"); got != "ok 0 messages from <ann@example.org> held" {
		t.Errorf("hold-from after end msg: %q", got)
	}
	if got := e.request("h2", "hold", sid); got != "fail message "+sid+" is not in the queue" {
		t.Errorf("hold after end msg: %q", got)
	}
	close(gate)
	e.wait("mess removed", func() bool { return !e.exists(fnSplit("mess", id)) })
	if held, _ := LoadHeld(filepath.Join(root, "queue")); held[id] {
		t.Errorf("id %d of a message that left the queue is in bounce/heldmsgs", id)
	}
	// A new message on the freed inode, if the file system gives it
	// back within a bounded number of tries, as qmail-queue makes one.
	q := filepath.Join(root, "queue")
	for i := 0; i < 2000; i++ {
		tmp := filepath.Join(q, "pid", fmt.Sprintf("reuse.%d", i))
		if err := os.WriteFile(tmp, []byte("Received: x\n\nnew body\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(tmp, &st); err != nil || st.Ino != id {
			continue
		}
		os.Link(tmp, filepath.Join(q, fnSplit("mess", id)))
		os.Remove(tmp)
		env := "u0\x00p1\x00Fann@example.org\x00Tcarol@local.example\x00"
		os.WriteFile(filepath.Join(q, fnFlat("intd", id)), []byte(env), 0o644)
		os.Link(filepath.Join(q, fnFlat("intd", id)), filepath.Join(q, fnFlat("todo", id)))
		e.trigger()
		e.waitLog("to local carol@local.example", 1)
		return
	}
	t.Logf("no inode reuse in 2000 tries: the new message part is not checked")
}

// TestCtlHoldFromLimit: a hold-from that reaches the limit of held ids
// (hold.MaxMsgs) midway answers "fail too many messages held" and must
// leave memory as it was, as its failed save does. The ids it had added
// stayed held in memory only (never in bounce/heldmsgs): those messages
// were parked until the next restart, which delivered them.
func TestCtlHoldFromLimit(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: io.Discard}, now: func() int64 { return 1000 }}
	s.holds = loadHoldLog(q)
	if s.mc, err = loadMsgCtl(q); err != nil {
		t.Fatal(err)
	}
	a := queueMsg(t, root, "spam@x.example", "bob@local.example")
	b := queueMsg(t, root, "spam@x.example", "bob@local.example")
	for i := uint64(0); len(s.mc.held) < maxHeld-1; i++ {
		s.mc.held[1<<40+i] = true // other held messages: room for one more
	}
	word, text := s.byAddress("hold-from", "spam@x.example")
	if word != ResultFail || text != "too many messages held" {
		t.Errorf("answer %s %s, want fail: two messages do not fit", word, text)
	}
	if s.mc.held[a] || s.mc.held[b] || len(s.mc.held) != maxHeld-1 {
		t.Errorf("failed hold-from left messages held in memory (%d: %v, %d: %v, %d held)",
			a, s.mc.held[a], b, s.mc.held[b], len(s.mc.held))
	}
	if len(s.mc.heldAs) != 0 {
		t.Errorf("failed hold-from remembered: %v", s.mc.heldAs)
	}
}
