package test

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/test/harness"
)

// ctlTree installs a tree that starts with remote delivery held and every
// remote route pointing at a closed loopback port, so a release never
// leaves the machine.
func ctlTree(t *testing.T) *harness.Tree {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	tr.Control("holdremote", "")
	tr.Control("smtproutes", ":[127.0.0.1]:1\n")
	return tr
}

// ctl runs ROOT/bin/qmailctl and returns stdout+stderr and the exit code.
func ctl(t *testing.T, tr *harness.Tree, args ...string) (string, int) {
	t.Helper()
	return tr.Run(t, nil, "qmailctl", args...)
}

func waitPreprocessed(t *testing.T, tr *harness.Tree, n int) {
	t.Helper()
	harness.WaitFor(t, 30*time.Second, func() bool {
		out, code := tr.Run(t, nil, "qmail-qstat")
		return code == 0 && out == fmt.Sprintf("messages in queue: %d\nmessages in queue but not yet preprocessed: 0\n", n)
	})
}

// TestCtlAgainstQmailSend drives the real qmailctl against the real
// qmail-send: hold and release per channel and per domain, flush, status,
// queue, pid, and the marks of qmail-qread.
func TestCtlAgainstQmailSend(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	for i, rcpt := range []string{"a@far.example", "b@far.example", "c@near.example"} {
		msg := fmt.Sprintf("Subject: %d\n\nbody\n", i)
		if err := tr.Queue(t, "sender@testhost.example", []string{rcpt}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	waitPreprocessed(t, tr, 3)

	out, code := ctl(t, tr, "status")
	t.Logf("qmailctl status:\n%s", out)
	for _, want := range []string{
		fmt.Sprintf("qmail-send: running, pid %d,", sys.Pid()),
		"remote: held (all destinations) since ",
		"local: not held\n",
		"queue: 3 messages, 0 not yet preprocessed\n",
		"pending: local 0 messages, remote 3 messages (3 remote recipients held by control/holdremote)\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	out, code = tr.Run(t, nil, "qmail-qread")
	if code != 0 || strings.Count(out, "\tremote\t") != 3 || strings.Count(out, " held\n") != 3 {
		t.Errorf("qmail-qread (exit %d):\n%s", code, out)
	}
	out, code = ctl(t, tr, "queue")
	t.Logf("qmailctl queue:\n%s", out)
	if code != 0 || strings.Count(out, " 1/1 held <sender@testhost.example>\n") != 3 {
		t.Errorf("queue (exit %d):\n%s", code, out)
	}
	if out, code = ctl(t, tr, "pid"); code != 0 || strings.TrimSpace(out) != fmt.Sprint(sys.Pid()) {
		t.Errorf("pid: %d %q, want %d", code, out, sys.Pid())
	}

	// Per-domain: release everything, hold far.example only.
	if out, code = ctl(t, tr, "release", "remote"); code != 0 || sys.Status()["holdremote"] != "no" {
		t.Fatalf("release remote: exit %d: %s; sendstatus %v", code, out, sys.Status())
	}
	sys.WaitLog(t, "hold: remote released", 10*time.Second)
	if out, code = ctl(t, tr, "hold", "remote", "far.example"); code != 0 || sys.Status()["holdremote"] != "far.example" {
		t.Fatalf("hold remote far.example: exit %d: %s; sendstatus %v", code, out, sys.Status())
	}
	out, _ = tr.Run(t, nil, "qmail-qread")
	if strings.Count(out, "@far.example held\n") != 2 || strings.Contains(out, "c@near.example held") {
		t.Errorf("qmail-qread with a domain hold:\n%s", out)
	}
	out, _ = ctl(t, tr, "status")
	if !strings.Contains(out, "remote: held for far.example since ") {
		t.Errorf("status with a domain hold:\n%s", out)
	}

	if out, code = ctl(t, tr, "hold", "local"); code != 0 || sys.Status()["holdlocal"] != "yes" {
		t.Fatalf("hold local: exit %d: %s; sendstatus %v", code, out, sys.Status())
	}
	if out, code = ctl(t, tr, "release", "local"); code != 0 || sys.Status()["holdlocal"] != "no" {
		t.Fatalf("release local: exit %d: %s; sendstatus %v", code, out, sys.Status())
	}
	g := sys.Status()["generation"]
	if out, code = ctl(t, tr, "flush"); code != 0 || sys.Status()["generation"] == g {
		t.Fatalf("flush: exit %d: %s", code, out)
	}
	if out, code = ctl(t, tr, "reload"); code != 0 {
		t.Fatalf("reload: exit %d: %s", code, out)
	}

	// 20 racing qmailctl processes on disjoint domains.
	var wg sync.WaitGroup
	results := make([]string, 20)
	codes := make([]int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			verb := "hold"
			if i%4 == 3 {
				verb = "release"
			}
			cmd := tr.Command("qmailctl", "-t", "60", verb, "remote", fmt.Sprintf("d%d.example", i-i%4))
			b, err := cmd.CombinedOutput()
			results[i] = string(b)
			if ee, ok := err.(*exec.ExitError); ok {
				codes[i] = ee.ExitCode()
			} else if err != nil {
				codes[i] = -1
			}
		}(i)
	}
	wg.Wait()
	for i := range codes {
		if codes[i] != 0 {
			t.Errorf("racing call %d: exit %d: %s", i, codes[i], results[i])
		}
	}
	b, err := os.ReadFile(tr.Path("control", "holdremote"))
	if err != nil {
		t.Fatal(err)
	}
	h := hold.Parse(b)
	if h.All || len(h.Junk) != 0 {
		t.Fatalf("holdremote after the race: %q", b)
	}
	// Every call that ran must be reflected by qmail-send's last re-read.
	// Releases and holds of the same domain race, so only consistency
	// between the file and qmail-send is asserted, plus far.example kept.
	if _, code = ctl(t, tr, "reload"); code != 0 {
		t.Fatal("reload after the race failed")
	}
	sent := strings.Fields(sys.Status()["holdremote"])
	sort.Strings(sent)
	file := append([]string(nil), h.Domains...)
	sort.Strings(file)
	if strings.Join(sent, " ") != strings.Join(file, " ") || !h.HoldsDomain("far.example") {
		t.Fatalf("after the race: file %v, qmail-send %v", file, sent)
	}

	// Stopped: the flag is still written, exit 3. The domains held by
	// name stay below the hold of everything.
	sys.Stop(t)
	out, code = ctl(t, tr, "hold", "remote")
	if code != 3 || !strings.Contains(out, "qmail-send is not running; the flag is set and the next start honours it") {
		t.Errorf("hold with qmail-send stopped: exit %d: %s", code, out)
	}
	if after, _ := os.ReadFile(tr.Path("control", "holdremote")); string(after) != "*\n"+string(b) {
		t.Errorf("holdremote = %q, want \"*\\n\" and %q", after, b)
	}
	if out, code = ctl(t, tr, "status"); code != 3 || !strings.Contains(out, "qmail-send: not running") {
		t.Errorf("status with qmail-send stopped: exit %d: %s", code, out)
	}
}

// TestCtlUnreadableControlDir runs qmailctl as an ordinary user on a tree
// whose control directory that user cannot read (root only: it needs a
// second uid).
func TestCtlUnreadableControlDir(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run qmailctl under another uid")
	}
	tr := harness.Install(t)
	if err := os.Chmod(tr.Path("control"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"hold", "remote"}, {"status"}, {"queue"}} {
		cmd := tr.Command("qmailctl", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 111 || !strings.Contains(string(out), "permission denied") {
			t.Errorf("%v as nobody: %v\n%s", args, err, out)
		}
	}
	if _, err := os.Stat(tr.Path("control", "holdremote")); !os.IsNotExist(err) {
		t.Errorf("holdremote appeared: %v", err)
	}
}

// TestCtlDeleteWithQmailSend deletes a held message while qmail-send is
// stopped and checks that qmail-send then removes it (through qmail-clean)
// without delivering it, and leaves the other message alone.
func TestCtlDeleteWithQmailSend(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	for _, rcpt := range []string{"a@far.example", "b@far.example"} {
		if err := tr.Queue(t, "sender@testhost.example", []string{rcpt}, []byte("Subject: x\n\nbody\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitPreprocessed(t, tr, 2)
	out, code := ctl(t, tr, "queue")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("queue: exit %d\n%s", code, out)
	}
	victim := strings.Fields(lines[0])[0]
	keep := strings.Fields(lines[1])[0]
	// (delete while qmail-send runs is tested in ctl_msg_test.go)
	sys.Stop(t)
	if out, code := ctl(t, tr, "delete", victim); code != 3 || !strings.Contains(out, "message "+victim+": 1 recipient will not be delivered") {
		t.Fatalf("delete: exit %d: %s", code, out)
	}
	sys = tr.Start(t, "./Maildir/")
	sys.WaitLog(t, "end msg "+victim, 30*time.Second)
	harness.WaitFor(t, 30*time.Second, func() bool {
		out, _ := tr.Run(t, nil, "qmail-qstat")
		return strings.HasPrefix(out, "messages in queue: 1\n")
	})
	if n := sys.Count("starting delivery"); n != 0 {
		t.Errorf("%d deliveries started; log:\n%s", n, sys.Log())
	}
	out, _ = ctl(t, tr, "queue")
	if !strings.HasPrefix(out, keep+" ") || strings.Count(out, "\n") != 1 {
		t.Errorf("queue after the delete:\n%s", out)
	}
}

// TestCtlBounceWithQmailSend bounces a held message while qmail-send is
// stopped; at the next start qmail-send returns it to its (local) sender.
func TestCtlBounceWithQmailSend(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	tr.Control("holdremote", "")
	tr.Control("smtproutes", ":[127.0.0.1]:1\n")
	sys := tr.Start(t, "./Maildir/")
	if err := tr.Queue(t, "box@testhost.example", []string{"far@far.example"}, []byte("Subject: returned\n\nbody\n")); err != nil {
		t.Fatal(err)
	}
	waitPreprocessed(t, tr, 1)
	out, _ := ctl(t, tr, "queue")
	id := strings.Fields(out)[0]
	sys.Stop(t)
	if out, code := ctl(t, tr, "bounce", id); code != 3 || !strings.Contains(out, "message "+id+": 1 recipient bounced") {
		t.Fatalf("bounce: exit %d: %s", code, out)
	}
	sys = tr.Start(t, "./Maildir/")
	sys.WaitLog(t, "end msg "+id, 30*time.Second)
	msgs := harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 1)
	m := string(msgs[0])
	if !strings.Contains(m, "<far@far.example>:\nThis message was returned by the postmaster of this host, undelivered. (#5.0.0)\n") ||
		!strings.Contains(m, "Subject: returned\n") {
		t.Errorf("bounce message:\n%s", m)
	}
	if n := sys.Count("starting delivery") - sys.Count("to local box@testhost.example"); n != 0 {
		t.Errorf("%d remote deliveries started; log:\n%s", n, sys.Log())
	}
}

// TestCtlDeleteRace: qmail-send delivers 500 local messages; it is stopped
// in the middle, 100 of the messages still queued are deleted, and it is
// started again. Every message not deleted is delivered, no deleted one is.
func TestCtlDeleteRace(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	tr.Control("holdlocal", "")
	sys := tr.Start(t, "./Maildir/")
	const total = 500
	queueN(t, tr, 0, total, "box@testhost.example", "box@testhost.example")
	waitPreprocessed(t, tr, total)
	if out, code := ctl(t, tr, "release", "local"); code != 0 {
		t.Fatalf("release local: %d %s", code, out)
	}
	harness.WaitFor(t, 60*time.Second, func() bool { return harness.MaildirCount(tr.AliasMaildir()) >= 50 })
	sys.Stop(t)
	before := harness.MaildirCount(tr.AliasMaildir())

	// Choose up to 100 messages still pending and remember their X-Seq.
	out, code := ctl(t, tr, "queue")
	if code != 0 {
		t.Fatalf("queue: %d", code)
	}
	var victims []string
	deleted := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "1/1" || len(victims) == 100 {
			continue
		}
		id := f[0]
		n, _ := strconv.ParseUint(id, 10, 64)
		b, err := os.ReadFile(tr.Path("queue", "mess", fmt.Sprint(n%23), id))
		if err != nil {
			t.Fatal(err)
		}
		m := seqRe.FindSubmatch(b)
		if m == nil {
			t.Fatalf("no X-Seq in message %s", id)
		}
		victims = append(victims, id)
		deleted[string(m[1])] = true
	}
	if len(victims) == 0 {
		t.Skip("qmail-send delivered everything before it was stopped; nothing left to delete")
	}
	if out, code := ctl(t, tr, append([]string{"delete"}, victims...)...); code != 3 { // done; qmail-send not running
		t.Fatalf("delete: %d %s", code, out)
	}
	sys = tr.Start(t, "./Maildir/")
	want := total - len(victims)
	harness.WaitFor(t, 120*time.Second, func() bool {
		out, _ := tr.Run(t, nil, "qmail-qstat")
		return strings.HasPrefix(out, "messages in queue: 0\n")
	})
	got := seqs(t, tr.AliasMaildir())
	for i := 0; i < total; i++ {
		s := strconv.Itoa(i)
		switch {
		case deleted[s] && got[s] > 0:
			t.Errorf("deleted message X-Seq %s was delivered", s)
		case !deleted[s] && got[s] == 0:
			t.Errorf("message X-Seq %s was lost", s)
		}
	}
	t.Logf("%d delivered before the stop, %d deleted, %d distinct delivered in all (want %d)",
		before, len(victims), len(got), want)
}

// TestCtlReloadReportsUnreadable: when qmail-send cannot re-read a control
// file on HUP (the old value stays in force), qmailctl reload says so and
// exits 111 instead of reporting the controls re-read.
func TestCtlReloadReportsUnreadable(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	if out, code := ctl(t, tr, "reload"); code != 0 || !strings.Contains(out, "confirmed") {
		t.Fatalf("reload: exit %d\n%s", code, out)
	}
	locals := tr.Path("control", "locals")
	if err := os.Remove(locals); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(locals, 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := ctl(t, tr, "reload")
	if code != 111 || !strings.Contains(out, "could not re-read control/locals") {
		t.Errorf("reload with control/locals a directory: exit %d\n%s", code, out)
	}
	sys.WaitLog(t, "alert: unable to reread control/locals", 10*time.Second)
	os.Remove(locals)
	os.WriteFile(locals, []byte("testhost.example\n"), 0o644)
	if out, code := ctl(t, tr, "reload"); code != 0 || !strings.Contains(out, "confirmed") {
		t.Errorf("reload after the repair: exit %d\n%s", code, out)
	}
}
