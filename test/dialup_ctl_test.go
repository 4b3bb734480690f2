package test

// qmailctl against the real qmail-send, as the dial-up hooks use it
// (issue 6 "Must hold"): racing whole-channel hold/release calls, junk in
// control/holdremote, and a pid file naming a stranger. (An unreadable
// control directory is TestCtlUnreadableControlDir in ctl_test.go.)

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// ctlRun runs qmailctl with a generous confirmation time-out and returns
// its combined output and exit code.
func ctlRun(tr *harness.Tree, args ...string) (string, int) {
	cmd := tr.Command("qmailctl", append([]string{"-t", "60"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return err.Error(), -1
	}
	return string(out), 0
}

// holdAgrees reports whether control/holdremote and qmail-send's sendstatus
// say the same thing about remote delivery (held for all, or not held).
func holdAgrees(tr *harness.Tree, sys *harness.System) (bool, string) {
	_, err := os.Stat(tr.Path("control", "holdremote"))
	file := err == nil
	sent := sys.Status()["holdremote"]
	return (file && sent == "all") || (!file && sent == "no"),
		fmt.Sprintf("control/holdremote exists: %v, sendstatus holdremote %q", file, sent)
}

// TestDialupCtlRace: 20 `qmailctl hold remote` / `release remote` calls
// (and a few `flush`) start together against a running qmail-send, as
// hooks of a flapping link would; every call succeeds and, after the last
// one returned and without any further signal, the flag file and
// qmail-send's state agree. Three rounds.
func TestDialupCtlRace(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	queueN(t, tr, 0, 3, "box@testhost.example", "joe@far.example")
	const calls = 20
	for round := 0; round < 3; round++ {
		gen0 := sys.Status()["generation"]
		start := make(chan struct{})
		var wg sync.WaitGroup
		outs := make([]string, calls+4)
		codes := make([]int, calls+4)
		began := time.Now()
		for i := range outs {
			args := []string{"release", "remote"}
			switch {
			case i >= calls:
				args = []string{"flush"}
			case (i+round)%2 == 0:
				args = []string{"hold", "remote"}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				outs[i], codes[i] = ctlRun(tr, args...)
			}()
		}
		close(start)
		wg.Wait()
		for i := range codes {
			if codes[i] != 0 {
				t.Errorf("round %d call %d: exit %d: %s", round, i, codes[i], outs[i])
			}
		}
		ok, state := holdAgrees(tr, sys)
		t.Logf("round %d: %d calls in %v; %s; generation %s -> %s", round, len(outs),
			time.Since(began).Round(time.Millisecond), state, gen0, sys.Status()["generation"])
		if !ok {
			t.Fatalf("round %d: flag and qmail-send disagree after the race: %s; log:\n%s", round, state, sys.Log())
		}
		// qmail-send's log agrees too: its last hold line is the final
		// state (once the harness has read it from qmail-send's pipe).
		last := ""
		logAgrees := func() bool {
			last = ""
			for _, l := range sys.Lines() {
				if strings.Contains(l, "hold: remote ") {
					last = l
				}
			}
			held := sys.Status()["holdremote"] == "all"
			return held == strings.Contains(last, "hold: remote held")
		}
		if !harness.Eventually(10*time.Second, logAgrees) {
			t.Errorf("round %d: last hold log line %q, sendstatus %v", round, last, sys.Status())
		}
	}
	sys.Stop(t)
}

// TestDialupCtlJunkHoldremote: a holdremote file with junk lines. qmailctl
// keeps the lines, warns about each by line number, and qmail-send's view
// matches the file; held domains stay held, others go out.
func TestDialupCtlJunkHoldremote(t *testing.T) {
	tr := ctlTree(t)
	tr.Control("holdremote", "# office link\nfar.example\nthis is junk\n!!\n")
	sys := tr.Start(t, "./Maildir/")
	out, code := ctlRun(tr, "hold", "remote", "near.example")
	t.Logf("qmailctl hold remote near.example:\n%s", out)
	for _, want := range []string{
		`warning: control/holdremote line 3 is not a domain and holds nothing: "this is junk"`,
		`warning: control/holdremote line 4 is not a domain and holds nothing: "!!"`,
		"confirmed",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q", code, want)
		}
	}
	b, _ := os.ReadFile(tr.Path("control", "holdremote"))
	if string(b) != "# office link\nfar.example\nthis is junk\n!!\nnear.example\n" {
		t.Errorf("holdremote = %q", b)
	}
	if st := sys.Status()["holdremote"]; !strings.Contains(" "+st+" ", " far.example ") || !strings.Contains(" "+st+" ", " near.example ") {
		t.Errorf("sendstatus holdremote %q", st)
	}
	for i, rcpt := range []string{"a@far.example", "b@near.example", "c@other.example"} {
		if err := tr.Queue(t, "box@testhost.example", []string{rcpt}, []byte(fmt.Sprintf("Subject: %d\n\nx\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	// other.example is not held: its delivery is tried (and deferred: the
	// route points at a closed port); the held two are not.
	sys.WaitLog(t, "to remote c@other.example", 30*time.Second)
	waitPreprocessed(t, tr, 3)
	out, _ = tr.Run(t, nil, "qmail-qread")
	if !strings.Contains(out, "a@far.example held\n") || !strings.Contains(out, "b@near.example held\n") ||
		strings.Contains(out, "c@other.example held") {
		t.Errorf("qmail-qread:\n%s", out)
	}
	if n := sys.Count("to remote a@far.example") + sys.Count("to remote b@near.example"); n != 0 {
		t.Errorf("%d deliveries to held domains started", n)
	}
	out, code = ctlRun(tr, "status")
	if !strings.Contains(out, "line 3 is not a domain") || !strings.Contains(out, "far.example") {
		t.Errorf("status (exit %d) does not warn about the junk or lacks the held domains:\n%s", code, out)
	}
	// Releasing the real domains removes the file: junk alone would hold
	// everything.
	out, code = ctlRun(tr, "release", "remote", "far.example", "near.example")
	if _, err := os.Stat(tr.Path("control", "holdremote")); code != 0 || !os.IsNotExist(err) || sys.Status()["holdremote"] != "no" {
		t.Errorf("release: exit %d: %s; holdremote stat %v; sendstatus %v", code, out, err, sys.Status())
	}
	sys.Stop(t)
}

// stranger starts a process that must never be signalled (sleep dies of
// SIGHUP and SIGALRM) and checks in t.Cleanup that it is still alive.
func stranger(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			t.Errorf("the stranger (pid %d) exited early: it was signalled", cmd.Process.Pid)
		default:
		}
		cmd.Process.Kill()
		<-done
	})
	return cmd.Process.Pid
}

// TestDialupCtlStalePid: queue/lock/sendmutex names another process, with
// qmail-send running (it holds the lock) and stopped (nobody does).
// qmailctl refuses with a clear message, the stranger gets no signal, and
// the flag written stays for qmail-send to honour.
func TestDialupCtlStalePid(t *testing.T) {
	tr := ctlTree(t)
	tr.RemoveControl("holdremote")
	sys := tr.Start(t, "./Maildir/")
	sendPid := sys.Pid()
	pid := stranger(t)
	mutex := tr.Path("queue", "lock", "sendmutex")
	// Rewrite the file in place: qmail-send keeps its lock on the inode.
	if err := os.WriteFile(mutex, []byte(fmt.Sprintf("%d\n", pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := sys.Status()["generation"]
	for _, args := range [][]string{{"hold", "remote"}, {"flush"}, {"reload"}, {"pid"}, {"status"}} {
		out, code := ctlRun(tr, args...)
		t.Logf("qmailctl %v: exit %d: %s", args, code, out)
		want := fmt.Sprintf("names pid %d but the lock is held by pid %d; stale pid file, not signalling anyone", pid, sendPid)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("qmailctl %v: exit %d, output lacks %q", args, code, want)
		}
	}
	if g := sys.Status()["generation"]; g != gen {
		t.Errorf("qmail-send handled a signal (generation %s -> %s)", gen, g)
	}
	if _, err := os.Stat(tr.Path("control", "holdremote")); err != nil {
		t.Errorf("the flag was not written: %v", err)
	}
	// The admin repairs the file; the flag written meanwhile takes effect.
	if err := os.WriteFile(mutex, []byte(fmt.Sprintf("%d\n", sendPid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := ctlRun(tr, "reload"); code != 0 || sys.Status()["holdremote"] != "all" {
		t.Errorf("reload after the repair: exit %d: %s; sendstatus %v", code, out, sys.Status())
	}
	sys.Stop(t)

	// Stopped: the file names the stranger, nobody holds the lock.
	if err := os.WriteFile(mutex, []byte(fmt.Sprintf("%d\n", pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"release", "remote"}, {"flush"}, {"pid"}} {
		out, code := ctlRun(tr, args...)
		if code != 3 || !strings.Contains(out, "qmail-send is not running") {
			t.Errorf("qmailctl %v with qmail-send stopped: exit %d: %s", args, code, out)
		}
	}
	if _, err := os.Stat(tr.Path("control", "holdremote")); !os.IsNotExist(err) {
		t.Errorf("release with qmail-send stopped left the flag: %v", err)
	}
	// The next start honours the flag state and rewrites the pid.
	sys = tr.Start(t, "./Maildir/")
	if sys.Pid() == pid || sys.Status()["holdremote"] != "no" {
		t.Errorf("after restart: pid %d, sendstatus %v", sys.Pid(), sys.Status())
	}
	sys.Stop(t)
}
