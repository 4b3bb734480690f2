package sched

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

func TestDeliverAndLog(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example", "carl@remote.example", "dan")
	e := start(t, root, ok, ok)
	e.waitLog("end msg ", 1)
	if code := e.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
	log := e.log.String()
	// Replace the varying id with ID, delivery ids are deterministic per
	// channel order but interleave, so check sets of lines.
	log = strings.ReplaceAll(log, fmt.Sprint(id), "ID")
	for _, want := range []string{
		"status: local 0/10 remote 0/20\n",
		"new msg ID\n",
		"info msg ID: bytes 85 from <ann@example.org> qp 1234 uid 0\n",
		"to local bob@local.example\n",
		"to remote carl@remote.example\n",
		"to local dan@mx.example.org\n",
		": success: did_1+0+0/\n",
		"end msg ID\n",
		"status: exiting\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "starting delivery"); n != 3 {
		t.Errorf("%d deliveries", n)
	}
	for _, f := range []string{fnSplit("mess", id), fnSplit("info", id), fnChan(0, id), fnChan(1, id), fnFlat("todo", id), fnFlat("intd", id)} {
		if e.exists(f) {
			t.Errorf("%s left behind", f)
		}
	}
	// Requests: "S/ID", sender, recipient.
	reqs := e.spawn[chanLocal].requests()
	if len(reqs) != 2 || reqs[0].Mess != fmt.Sprintf("%d/%d", id%23, id) || reqs[0].Sender != "ann@example.org" || reqs[0].Recipient != "bob@local.example" {
		t.Errorf("local requests %+v", reqs)
	}
	pid, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendmutex"))
	if string(pid) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("sendmutex %q", pid)
	}
}

func TestBounce(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "nobody@local.example", "bob@local.example")
	fail := func(r spawnproto.Request) (byte, string) {
		if strings.HasPrefix(r.Recipient, "nobody") {
			return 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n"
		}
		return 'K', "did 1+0+0\n"
	}
	e := start(t, root, fail, ok)
	var inj injected
	select {
	case inj = <-e.injects:
	case <-time.After(30 * time.Second):
		t.Fatalf("no bounce; log:\n%s", e.log.String())
	}
	e.waitLog("end msg", 1)
	if inj.sender != "" || len(inj.recips) != 1 || inj.recips[0] != "ann@example.org" {
		t.Errorf("bounce envelope %q %q", inj.sender, inj.recips)
	}
	msg := regexp.MustCompile(`(?m)^Date: .*$`).ReplaceAllString(inj.msg, "Date: DATE")
	golden(t, "run-bounce.golden", []byte(msg))
	if !strings.Contains(e.log.String(), fmt.Sprintf("bounce msg %d qp 4321\n", id)) {
		t.Errorf("no bounce line:\n%s", e.log.String())
	}
	if e.exists(fnFlat("bounce", id)) {
		t.Error("bounce file left")
	}
}

func TestDoubleAndTripleBounce(t *testing.T) {
	root := newTree(t)
	fail := func(spawnproto.Request) (byte, string) { return 'D', "no (#5.1.1)\n" }
	queueMsg(t, root, "", "nobody@local.example")
	id3 := queueMsg(t, root, "#@[]", "nobody@local.example")
	e := start(t, root, fail, ok)
	var inj injected
	select {
	case inj = <-e.injects:
	case <-time.After(30 * time.Second):
		t.Fatalf("no double bounce; log:\n%s", e.log.String())
	}
	if inj.sender != "#@[]" || inj.recips[0] != "postmaster@mx.example.org" {
		t.Errorf("double bounce envelope %q %q", inj.sender, inj.recips)
	}
	if !strings.Contains(inj.msg, "but the bounce bounced!\n\n<nobody@local.example>:\nno (#5.1.1)\n\n--- Below this line is the original bounce.\n\nReturn-Path: <>\n") {
		t.Errorf("double bounce text:\n%s", inj.msg)
	}
	e.waitLog("triple bounce: discarding bounce/"+fmt.Sprint(id3), 1)
	e.waitLog("end msg", 2)
	select {
	case x := <-e.injects:
		t.Errorf("triple bounce injected: %+v", x)
	default:
	}
}

// TestDoubleBounceDiscarded: an empty control/doublebounceto discards
// double bounces (qmail's "double bounce: discarding"); single bounces
// still go out.
func TestDoubleBounceDiscarded(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "doublebounceto", "\n")
	fail := func(spawnproto.Request) (byte, string) { return 'D', "no (#5.1.1)\n" }
	id := queueMsg(t, root, "", "nobody@local.example")
	queueMsg(t, root, "ann@example.org", "nobody@local.example")
	e := start(t, root, fail, ok)
	e.waitLog("double bounce: discarding bounce/"+fmt.Sprint(id), 1)
	e.waitLog("end msg", 2)
	select {
	case inj := <-e.injects:
		if inj.sender != "" || inj.recips[0] != "ann@example.org" {
			t.Errorf("injected %q %q", inj.sender, inj.recips)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no single bounce; log:\n%s", e.log.String())
	}
	select {
	case x := <-e.injects:
		t.Errorf("double bounce injected: %+v", x)
	default:
	}
}

// TestStatusBeforeFirstLine: when the first status line is logged,
// sendstatus already names this qmail-send and its flags, not the last
// one's (a script that waits for the line and then reads the file).
func TestStatusBeforeFirstLine(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "holdremote", "")
	stale := "pid 1\ngeneration 9\nholdlocal yes\nholdremote no\nqueued-remote 77\n"
	if err := os.WriteFile(filepath.Join(root, "queue/lock/sendstatus"), []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	l := &lines{}
	l.hook = func(p []byte) {
		if strings.HasPrefix(string(p), "status: ") {
			st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
			select {
			case seen <- string(st):
			default:
			}
		}
	}
	e := startLogging(t, root, ok, ok, [2][]byte{}, l)
	var st string
	select {
	case st = <-seen:
	case <-time.After(30 * time.Second):
		t.Fatalf("no status line; log:\n%s", e.log.String())
	}
	want := fmt.Sprintf("pid %d\ngeneration 0\nholdlocal no\nholdremote all\n", os.Getpid())
	if !strings.HasPrefix(st, want) || strings.Contains(st, "queued-remote 77") {
		t.Errorf("sendstatus at the first status line:\n%s\nwant it to start\n%s", st, want)
	}
	// The running concurrency and the control values read at start, for
	// qmailctl status to compare with the files.
	for _, l := range []string{"concurrency-local 10\n", "control-concurrencylocal 10\n", "concurrency-remote 20\n", "control-concurrencyremote 20\n"} {
		if !strings.Contains(st, l) {
			t.Errorf("sendstatus lacks %q:\n%s", l, st)
		}
	}
	e.stop()
}

func TestDeferralALRMAndDying(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	n := 0
	defer1 := func(spawnproto.Request) (byte, string) {
		n++
		if n == 1 {
			return 'Z', "try later\n"
		}
		return 'K', "ok\n"
	}
	e := start(t, root, defer1, ok)
	e.waitLog(": deferral: try_later/", 1)
	// Retry is 100 s away; ALRM makes it due now.
	time.Sleep(50 * time.Millisecond)
	e.sigs <- syscall.SIGALRM
	e.waitLog("end msg "+fmt.Sprint(id), 1)
	st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	if !strings.Contains(string(st), "generation 1\n") {
		t.Errorf("sendstatus:\n%s", st)
	}
	e.stop()

	// A message older than queuelifetime: its deferral becomes a failure.
	ctl(t, root, "queuelifetime", "10\n")
	id2 := queueMsg(t, root, "ann@example.org", "bob@local.example")
	e2 := start(t, root, func(spawnproto.Request) (byte, string) { return 'Z', "try later\n" }, ok)
	e2.waitLog("new msg "+fmt.Sprint(id2), 1)
	e2.stop()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(root, "queue", fnSplit("info", id2)), old, old)
	os.Chtimes(filepath.Join(root, "queue", fnChan(0, id2)), old, old)
	e3 := start(t, root, func(spawnproto.Request) (byte, string) { return 'Z', "try later\n" }, ok)
	e3.waitLog(": failure: try_later/I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./", 1)
	select {
	case <-e3.injects:
	case <-time.After(10 * time.Second):
		t.Fatal("no bounce for dying message")
	}
}

func TestHoldLocal(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	ctl(t, root, "holdlocal", "")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	var ids []uint64
	for i := 0; i < 5; i++ {
		ids = append(ids, queueMsg(t, root, "ann@example.org", "bob@local.example", "carl@remote.example"))
	}
	e.trigger()
	e.waitLog("new msg", 5)
	e.waitLog("to remote carl", 5)
	time.Sleep(200 * time.Millisecond) // a window in which nothing local may start
	e.sigs <- syscall.SIGALRM          // rewrites sendstatus; starts nothing held
	e.wait("sendstatus", func() bool {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		return strings.Contains(string(st), "generation 1\n")
	})
	if n := len(e.spawn[chanLocal].requests()); n != 0 {
		t.Fatalf("%d local deliveries while held", n)
	}
	st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	if !strings.Contains(string(st), "holdlocal yes\n") || !strings.Contains(string(st), "queued-local 5\n") {
		t.Errorf("sendstatus:\n%s", st)
	}
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local released, 5 messages due now\n", 1)
	e.waitLog("end msg", 5)
	st, _ = os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	if !strings.Contains(string(st), "holdlocal no\n") || !strings.Contains(string(st), "since-local 0\n") {
		t.Errorf("sendstatus:\n%s", st)
	}
	// Hold again: logged, nothing running is interrupted.
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held, 0 messages waiting\n", 1)
}

func TestHoldRemoteDomains(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "holdremote", "held.example\n.sub.example\n")
	id := queueMsg(t, root, "ann@example.org", "a@held.example", "b@free.example", "c@x.sub.example")
	e := start(t, root, ok, ok)
	e.waitLog("hold: remote held for held.example .sub.example, 0 messages waiting", 1)
	e.waitLog("to remote b@free.example", 1)
	e.waitLog(": success:", 1)
	time.Sleep(100 * time.Millisecond)
	if n := len(e.spawn[chanRemote].requests()); n != 1 {
		t.Fatalf("%d remote deliveries, want 1", n)
	}
	if !e.exists(fnChan(1, id)) {
		t.Fatal("remote file removed while records are held")
	}
	ctl(t, root, "holdremote", ".sub.example\n")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote released except .sub.example, 1 message due now", 1)
	e.waitLog("to remote a@held.example", 1)
	e.waitLog(": success:", 2)
	// From a domain list to everything (the uplink's hook holding while a
	// VPN's domains are held): nothing is released, and qmail-send lives.
	ctl(t, root, "holdremote", "*\n")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote held, 1 message waiting", 1)
	ctl(t, root, "holdremote", ".sub.example\n")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote released except .sub.example, 1 message due now", 2)
	// A hand-written line that is no domain holds nothing and changes
	// nothing; it never reaches the log (any byte may be in it).
	gen := func() string {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		for _, l := range strings.Split(string(st), "\n") {
			if g, ok := strings.CutPrefix(l, "generation "); ok {
				return g
			}
		}
		return ""
	}
	before := gen()
	ctl(t, root, "holdremote", ".sub.example\nfoo bar\t\x01%\noff\n")
	e.sigs <- syscall.SIGHUP
	e.wait("the HUP handled", func() bool { return gen() != before })
	ctl(t, root, "holdremote", "held2.example\n.sub.example\nfoo bar\t\x01%\n")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote held for held2.example .sub.example, 1 message waiting\n", 1)
	if strings.Contains(e.log.String(), "foo") {
		t.Errorf("a line that is no domain reached the log:\n%s", e.log.String())
	}
	os.Remove(filepath.Join(root, "control/holdremote"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote released, ", 1)
	e.waitLog("end msg", 1)
	if n := len(e.spawn[chanRemote].requests()); n != 3 {
		t.Errorf("%d remote deliveries, want 3", n)
	}
}

func TestHoldReleaseAfterDeferral(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	first := true
	ans := func(spawnproto.Request) (byte, string) {
		if first {
			first = false
			return 'Z', "down\n"
		}
		return 'K', "ok\n"
	}
	e := start(t, root, ans, ok)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	e.trigger()
	e.waitLog("deferral: down/", 1)
	ctl(t, root, "holdlocal", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: local held, 1 message waiting", 1)
	os.Remove(filepath.Join(root, "control/holdlocal"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("end msg "+fmt.Sprint(id), 1)
}

func TestTermWaitsAndWritesBack(t *testing.T) {
	root := newTree(t)
	release := make(chan struct{})
	slow := func(spawnproto.Request) (byte, string) {
		<-release
		return 'K', "ok\n"
	}
	mkCtlFIFO(t, root)
	queueMsg(t, root, "ann@example.org", "bob@local.example")
	id2 := queueMsg(t, root, "ann@example.org", "x@remote.example")
	e := start(t, root, slow, func(spawnproto.Request) (byte, string) { return 'Z', "later\n" })
	e.waitLog("starting delivery", 2)
	e.waitLog("deferral: later/", 1)
	// The remote job goes back on the schedule when its pass reaches the
	// end of the channel file, which may be a loop turn after the
	// deferral; after TERM no pass moves (as in qmail), and a job still
	// open is not written back. Two requests are two turns.
	e.request("w1", "hold", "99999")
	e.request("w2", "hold", "99999")
	e.sigs <- syscall.SIGTERM
	select {
	case <-e.done:
		t.Fatal("exited with a delivery in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case code := <-e.done:
		e.exited = true
		if !strings.Contains(e.log.String(), "status: local 0/10 remote 0/20 exitasap\n") {
			t.Errorf("log:\n%s", e.log.String())
		}
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit")
	}
	// The deferred remote message's retry time is in the file's mtime.
	st, err := os.Stat(filepath.Join(root, "queue", fnChan(1, id2)))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(st.ModTime()); d < 300*time.Second || d > 500*time.Second {
		t.Errorf("mtime %v from now, want ~400 s", d)
	}
}

func TestBadInput(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "bob@local.example")
	// Corrupt the todo file: unknown record type.
	os.WriteFile(filepath.Join(root, "queue", fnFlat("todo", id)), []byte("u0\x00p1\x00Fa@b\x00Xjunk\x00"), 0o644)
	// A preprocessed message with a corrupt info file.
	id2 := queueMsg(t, root, "ann@example.org", "bob@local.example")
	os.Remove(filepath.Join(root, "queue", fnFlat("todo", id2)))
	os.WriteFile(filepath.Join(root, "queue", fnSplit("info", id2)), []byte("garbage"), 0o600)
	os.WriteFile(filepath.Join(root, "queue", fnChan(0, id2)), []byte("Tbob@local.example\x00"), 0o600)
	e := start(t, root, ok, ok)
	e.waitLog(fmt.Sprintf("warning: unknown record type in todo/%d\n", id), 1)
	e.waitLog(fmt.Sprintf("warning: trouble opening info/%d/%d; will try again later\n", id2%23, id2), 1)
	// A report for a slot that is not in use.
	e.stop()
	for _, f := range []string{fnFlat("todo", id), fnSplit("info", id2), fnChan(0, id2)} {
		if !e.exists(f) {
			t.Errorf("%s deleted", f)
		}
	}
}

func TestReportOutOfRange(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/10", 1)
	queueMsg(t, root, "ann@example.org", "bob@local.example")
	e.spawn[chanLocal].mu.Lock()
	e.spawn[chanLocal].answer = func(spawnproto.Request) (byte, string) { return '?', "huh" }
	e.spawn[chanLocal].mu.Unlock()
	e.trigger()
	e.waitLog("report mangled, will defer", 1)
}

// later is a spawner answer that defers every delivery.
func later(spawnproto.Request) (byte, string) { return 'Z', "later\n" }

// agedDeferral queues a remote message under a queuelifetime of 600 s,
// has it deferred once, stops qmail-send and dates the message two hours
// back (its remote file too, so that it is due at the next start). It
// returns the id and the time it was dated to.
func agedDeferral(t *testing.T, root string) (uint64, time.Time) {
	t.Helper()
	ctl(t, root, "queuelifetime", "600\n")
	id := queueMsg(t, root, "ann@example.org", "x@remote.example")
	e := start(t, root, ok, later)
	e.waitLog("deferral: later/", 1)
	e.stop()
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(root, "queue", fnSplit("info", id)), old, old)
	os.Chtimes(filepath.Join(root, "queue", fnChan(1, id)), old, old)
	return id, old
}

func TestHeldTimeNotCountedForLifetime(t *testing.T) {
	root := newTree(t)
	id, old := agedDeferral(t, root)
	// The message is two hours old, but remote was held for all but 5
	// minutes of that: it is not dying.
	now := time.Now().Unix()
	os.WriteFile(filepath.Join(root, "queue", "bounce", HoldLogName),
		[]byte(fmt.Sprintf("local 1 2\nremote %d %d\n", now-7000, now-300)), 0o600)
	e2 := start(t, root, ok, later)
	e2.waitLog("deferral: later/", 1)
	e2.stop()
	// A hold of some domains only does not stop the clock (a message to a
	// dead host must bounce in time while a VPN's domain is held): with
	// only such a period the message is dying too, as without any.
	os.WriteFile(filepath.Join(root, "queue", "bounce", HoldLogName),
		[]byte(fmt.Sprintf("remotesome %d %d\n", now-7000, now-300)), 0o600)
	os.Chtimes(filepath.Join(root, "queue", fnChan(1, id)), old, old)
	e3 := start(t, root, ok, later)
	e3.waitLog("failure: later/I'm_not_going", 1)
}

// TestHoldLogUnreadable: a hold log that cannot be read is not replaced,
// and while it cannot be read no message bounces for its age: the held
// time it records is unknown (it was reset, and held mail bounced as too
// old). After a HUP that can read it, its periods count again.
func TestHoldLogUnreadable(t *testing.T) {
	root := newTree(t)
	id, old := agedDeferral(t, root)
	// Two hours old, held for all but 5 minutes of that; the log is a
	// directory (a file of the wrong owner reads the same: unreadable).
	now := time.Now().Unix()
	hl := filepath.Join(root, "queue", "bounce", HoldLogName)
	if err := os.Mkdir(hl, 0o700); err != nil {
		t.Fatal(err)
	}
	ctl(t, root, "holdlocal", "")
	e2 := start(t, root, ok, later)
	e2.waitLog("alert: unable to read bounce/"+HoldLogName+": is a directory; no message is bounced", 1)
	e2.waitLog("deferral: later/", 1)
	if st, err := os.Stat(hl); err != nil || !st.IsDir() {
		t.Fatalf("the unreadable log was replaced: %v", err)
	}
	// sendstatus says so, for qmailctl status.
	status := filepath.Join(root, "queue", "lock", "sendstatus")
	if b, _ := os.ReadFile(status); !strings.Contains(string(b), "\nholdlog-unreadable yes\n") {
		t.Errorf("sendstatus without holdlog-unreadable:\n%s", b)
	}
	// Readable again: its periods and the local hold since the start.
	os.Remove(hl)
	os.WriteFile(hl, []byte(fmt.Sprintf("remote %d %d\n", now-7000, now-300)), 0o600)
	os.Chtimes(filepath.Join(root, "queue", fnChan(1, id)), old, old)
	e2.sigs <- syscall.SIGHUP
	e2.waitLog("info: bounce/"+HoldLogName+" read again", 1)
	e2.stop()
	if b, _ := os.ReadFile(status); strings.Contains(string(b), "holdlog-unreadable") {
		t.Errorf("sendstatus after the log was read again:\n%s", b)
	}
	b, _ := os.ReadFile(hl)
	if !strings.Contains(string(b), fmt.Sprintf("remote %d %d\n", now-7000, now-300)) || !strings.Contains(string(b), "local ") {
		t.Errorf("log after HUP: %q", b)
	}
	// Without the held time it would be dying: with it, another deferral.
	os.Chtimes(filepath.Join(root, "queue", fnChan(1, id)), old, old)
	e3 := start(t, root, ok, later)
	e3.waitLog("deferral: later/", 1)
	e3.stop()
	if e3.log.count("failure") > 0 {
		t.Errorf("bounced:\n%s", e3.log.String())
	}
}

// TestHoldKinds: a hold of everything is a "remote" period (and a
// "remotesome" one, the since of sendstatus); a domain hold only a
// "remotesome" one. A closed "remotesome" period is needed by nothing and
// is not kept.
func TestHoldKinds(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bounce"), 0o700)
	h := loadHoldLog(dir)
	saveChange(h, holdState{remoteDoms: []string{"vpn.example"}}, 1000)
	saveChange(h, holdState{remoteAll: true}, 2000)
	saveChange(h, holdState{remoteDoms: []string{"vpn.example"}}, 3000)
	saveChange(h, holdState{}, 4000)
	h2 := loadHoldLog(dir)
	if got := h2.heldWithin(chanRemote, 0, 5000); got != 1000 {
		t.Errorf("whole-channel held time %d, want 1000", got)
	}
	saveChange(h, holdState{remoteDoms: []string{"vpn.example"}}, 4500)
	if h.since(kindRemoteSome) != 4500 {
		t.Errorf("since of a domain hold: %d", h.since(kindRemoteSome))
	}
	for _, p := range h2.periods {
		if p.c == kindRemoteSome {
			t.Errorf("a closed any-hold period is kept: %v", p)
		}
	}
	saveChange(h2, holdState{remoteDoms: []string{"vpn.example"}}, 6000)
	if h2.since(kindRemoteSome) != 6000 || h2.since(chanRemote) != 0 {
		t.Errorf("since: %d %d", h2.since(kindRemoteSome), h2.since(chanRemote))
	}
}

func TestStaleMessageCleanup(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	old := time.Now().Add(-(ossified + 3600) * time.Second)
	mk := func(rel string) {
		p := filepath.Join(q, rel)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	mk(fnSplit("mess", 28)) // stale S2: removed
	mk(fnFlat("intd", 28))
	mk(fnSplit("mess", 29)) // old but has info: kept
	os.WriteFile(filepath.Join(q, fnSplit("info", 29)), []byte("Fa@b\x00"), 0o600)
	os.WriteFile(filepath.Join(q, fnChan(1, 29)), []byte("Dx@y\x00"), 0o600)
	os.Chtimes(filepath.Join(q, fnChan(1, 29)), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	mk(fnSplit("mess", 30)) // old but in todo: kept
	os.WriteFile(filepath.Join(q, fnFlat("todo", 30)), []byte("u0\x00p1\x00Fa@b\x00"), 0o644)
	os.WriteFile(filepath.Join(q, fnSplit("mess", 31)), []byte("x"), 0o644) // fresh: kept
	e := start(t, root, ok, ok)
	e.wait("stale message removed", func() bool { return !e.exists(fnSplit("mess", 28)) })
	e.stop()
	if e.exists(fnFlat("intd", 28)) {
		t.Error("intd/28 kept")
	}
	for _, f := range []string{fnSplit("mess", 29), fnSplit("mess", 31)} {
		if !e.exists(f) {
			t.Errorf("%s removed", f)
		}
	}
}

func TestBounceDSN(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "bounceformat", "dsn\n")
	queueMsg(t, root, "ann@example.org", "nobody@local.example")
	fail := func(spawnproto.Request) (byte, string) { return 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n" }
	e := start(t, root, fail, ok)
	select {
	case inj := <-e.injects:
		for _, want := range []string{
			"Content-Type: multipart/report; report-type=delivery-status;",
			"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; nobody@local.example\nAction: failed\nStatus: 5.1.1\n",
			"Content-Type: message/rfc822\n\nReturn-Path: <ann@example.org>\nReceived: ",
		} {
			if !strings.Contains(inj.msg, want) {
				t.Errorf("DSN lacks %q:\n%s", want, inj.msg)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no bounce; log:\n%s", e.log.String())
	}
}

// A FIFO where a queue file belongs (only root or the qmail users can put
// one there) is a damaged file like any other: qmail-send logs it and goes
// on with the rest, instead of waiting in open(2) for a writer for ever.
func TestFIFOInQueue(t *testing.T) {
	root := newTree(t)
	if err := syscall.Mkfifo(filepath.Join(root, "queue", "todo", "999"), 0o600); err != nil {
		t.Fatal(err)
	}
	queueMsg(t, root, "ann@example.org", "bob@local.example")
	e := start(t, root, ok, ok)
	e.waitLog("warning: unable to open todo/999", 1)
	e.waitLog("end msg", 1)
}

// TestMutexProbeAtStart: a shared lock on sendmutex held for a moment (how
// qmailctl and monitors ask whether qmail-send runs) while qmail-send
// starts does not stop it; an exclusive one (another qmail-send) does.
func TestMutexProbeAtStart(t *testing.T) {
	root := newTree(t)
	mutex := filepath.Join(root, "queue/lock/sendmutex")
	probe, err := os.Open(mutex)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	fd := int(probe.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	unlocked := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { syscall.Flock(fd, syscall.LOCK_UN); close(unlocked) })
	defer func() { <-unlocked }()
	e := start(t, root, ok, ok)
	e.waitLog("status: local ", 1)
	if n := e.log.count("already running"); n != 0 {
		t.Fatalf("qmail-send refused to start:\n%s", e.log.String())
	}
	if code := e.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Another qmail-send's exclusive lock: it gives up, after its retries.
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	e = start(t, root, ok, ok)
	select {
	case code := <-e.done:
		e.exited = true
		if code != 111 || e.log.count("alert: cannot start: qmail-send is already running") != 1 {
			t.Errorf("exit %d; log:\n%s", code, e.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running beside another qmail-send; log:\n%s", e.log.String())
	}
}

// TestHUPLocalsWithoutMe: locals defaults to control/me as read at start;
// when there was none, a HUP that finds locals gone is a failed re-read
// (the old list stays), as in qmail, not an empty list of local domains.
func TestHUPLocalsWithoutMe(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	os.Remove(filepath.Join(root, "control", "me"))
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1) // started, its controls read
	os.Remove(filepath.Join(root, "control", "locals"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("alert: unable to reread control/locals\n", 1)
	queueMsg(t, root, "ann@example.org", "u@local.example")
	e.trigger()
	e.waitLog("starting delivery 1: msg ", 1)
	if n := len(e.spawn[chanLocal].requests()); n != 1 {
		t.Errorf("%d local deliveries, want 1 (the old locals kept)", n)
	}
}

// TestHUPRereadSaysWhy: a re-read that fails for a system error keeps
// qmail's alert and adds the reason (QA: "unable to reread control/locals"
// alone sent the admin guessing; mode 0600 is the usual cause).
func TestHUPRereadSaysWhy(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1)
	locals := filepath.Join(root, "control", "locals")
	os.Remove(locals)
	if err := os.Mkdir(locals, 0o755); err != nil {
		t.Fatal(err)
	}
	e.sigs <- syscall.SIGHUP
	e.waitLog("alert: unable to reread control/locals: is a directory\n", 1)
}

// TestHUPRereadFIFO: a FIFO put in place of a control file that a HUP
// re-reads is named in plain words, as at start and as the other programs
// say it (QA: "not_a_regular_file", the log's underscores applied to the
// reason's spaces).
func TestHUPRereadFIFO(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1)
	for _, name := range []string{"locals", "holdremote"} {
		p := filepath.Join(root, "control", name)
		os.Remove(p)
		mkfifo(t, p)
	}
	e.sigs <- syscall.SIGHUP
	e.waitLog("alert: unable to reread control/locals: not a regular file\n", 1)
	e.waitLog("alert: unable to reread control/holdremote: not a regular file; holding all remote delivery until it can be read\n", 1)
}

// TestHUPUnreadableHoldRemoteHolds: a holdremote that is there but cannot
// be read at a HUP holds all remote delivery, the safe side a flag that
// lists nothing usable takes and the one qmail-rspawn and qmailctl status
// take (QA: a hand-made flag of mode 0600, unreadable by qmails, kept
// the old "released" and mail went out while status said held). A
// domain hold read before widens to all; a missing file still releases.
func TestHUPUnreadableHoldRemoteHolds(t *testing.T) {
	root := newTree(t)
	mkTrigger(t, root)
	ctl(t, root, "holdremote", "example.net\n")
	e := start(t, root, ok, ok)
	e.waitLog("status: local", 1)
	p := filepath.Join(root, "control", "holdremote")
	os.Remove(p)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	e.sigs <- syscall.SIGHUP
	e.waitLog("alert: unable to reread control/holdremote: is a directory; holding all remote delivery until it can be read\n", 1)
	e.waitLog("hold: remote held, 0 messages waiting", 1)
	e.wait("sendstatus to say all held", func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		return strings.Contains(string(b), "holdremote all")
	})
	os.Remove(p)
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote released", 1)
}

// TestMutexReplacedAtStart: sendmutex replaced (renamed over) between
// qmail-send's open and its lock, as qmail-install's repair of a
// hard-linked one does: qmail-send locks the file the name gives, so a
// probe of that file sees it running (it used to lock the old file, and a
// second qmail-send could start on the same queue).
func TestMutexReplacedAtStart(t *testing.T) {
	root := newTree(t)
	mutex := filepath.Join(root, "queue/lock/sendmutex")
	var once sync.Once
	saved := mutexLocked
	t.Cleanup(func() { mutexLocked = saved })
	mutexLocked = func() {
		once.Do(func() {
			tmp := mutex + ".new"
			if err := os.WriteFile(tmp, nil, 0o644); err != nil {
				t.Error(err)
			}
			if err := os.Rename(tmp, mutex); err != nil {
				t.Error(err)
			}
		})
	}
	e := start(t, root, ok, ok)
	e.waitLog("status: local ", 1)
	probe, err := os.Open(mutex)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if err := syscall.Flock(int(probe.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		t.Fatal("the file sendmutex names is not locked: qmail-send locked the one it replaced")
	}
	if code := e.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestHoldSetWhileStopped: a hold flag written while qmail-send was not
// running is dated from the flag's time (not before the last qmail-send's
// last status write), so the time down with it counts as held: a message
// queued before counts only its unheld time toward queuelifetime. Dated
// from the start, the message below (two hours old, lifetime 600 s) was
// dying at the release and bounced at its first deferral (QA bounce).
func TestHoldSetWhileStopped(t *testing.T) {
	root := newTree(t)
	agedDeferral(t, root)
	now := time.Now().Unix()
	at := func(p string, t int64) {
		if err := os.Chtimes(p, time.Unix(t, 0), time.Unix(t, 0)); err != nil {
			panic(err)
		}
	}
	status := filepath.Join(root, "queue", "lock", "sendstatus")
	at(status, now-7100) // qmail-send stopped then
	ctl(t, root, "holdremote", "")
	at(filepath.Join(root, "control", "holdremote"), now-7000)
	e := start(t, root, ok, later)
	e.waitLog("hold: remote held", 1)
	b, _ := os.ReadFile(filepath.Join(root, "queue", "bounce", HoldLogName))
	if !strings.Contains(string(b), fmt.Sprintf("remote %d 0\n", now-7000)) {
		t.Errorf("hold log at start: %q, want a remote period from %d", b, now-7000)
	}
	os.Remove(filepath.Join(root, "control", "holdremote"))
	e.sigs <- syscall.SIGHUP
	e.waitLog("deferral: later/", 1)
	e.stop()
	if e.log.count("failure") > 0 {
		t.Errorf("bounced:\n%s", e.log.String())
	}

	// A flag older than the last status write: qmail-send ran without
	// it until then (a file copied with its time), so it counts from
	// that write only.
	at(status, now-50)
	ctl(t, root, "holdlocal", "")
	at(filepath.Join(root, "control", "holdlocal"), now-9000)
	e2 := start(t, root, ok, later)
	e2.waitLog("hold: local held", 1)
	e2.stop()
	b, _ = os.ReadFile(filepath.Join(root, "queue", "bounce", HoldLogName))
	if !strings.Contains(string(b), fmt.Sprintf("local %d ", now-50)) {
		t.Errorf("hold log: %q, want a local period from %d", b, now-50)
	}
}

// TestStatusConcurrencyCapped: sendstatus tells the running concurrency
// (capped by the spawner's announced limit, 120 here) apart from the
// control value read at start (capped at 500), so that qmailctl status
// does not ask for a restart that would change nothing.
func TestStatusConcurrencyCapped(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "concurrencylocal", "200\n")
	ctl(t, root, "concurrencyremote", "999999\n")
	e := start(t, root, ok, ok)
	e.waitLog("status: local 0/120 remote 0/120", 1)
	st, err := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"concurrency-local 120\n", "control-concurrencylocal 200\n", "concurrency-remote 120\n", "control-concurrencyremote 500\n"} {
		if !strings.Contains(string(st), l) {
			t.Errorf("sendstatus lacks %q:\n%s", l, st)
		}
	}
	e.stop()
}

// TestHUPHoldSameDomains: a HUP after control/holdremote was rewritten
// with the same domains in another order, a line twice or with a
// trailing dot changes no hold, so nothing is logged
// (spec/scheduler.md: one line per change of hold state). The lists were
// compared as text, and each such rewrite logged "hold: remote held for
// ..." as a change. A real change after them is logged.
func TestHUPHoldSameDomains(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "holdremote", "a.example\nb.example\n")
	queueMsg(t, root, "ann@example.org", "x@a.example")
	e := start(t, root, ok, ok)
	e.waitLog("hold: remote held for a.example b.example, ", 1)
	gen := func() string {
		st, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
		for _, l := range strings.Split(string(st), "\n") {
			if g, ok := strings.CutPrefix(l, "generation "); ok {
				return g
			}
		}
		return ""
	}
	for _, list := range []string{"b.example\na.example\n", "a.example\nb.example\na.example\n", "b.example.\nA.example\n"} {
		ctl(t, root, "holdremote", list)
		before := gen()
		e.sigs <- syscall.SIGHUP
		e.wait("the HUP handled", func() bool { return gen() != before })
		if n := e.log.count("hold: remote"); n != 1 {
			t.Fatalf("holdremote %q: %d 'hold: remote' lines for a hold that did not change; log:\n%s", list, n, e.log.String())
		}
	}
	ctl(t, root, "holdremote", "b.example\nc.example\na.example\n")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote held for b.example c.example a.example, 1 message waiting", 1)
}
