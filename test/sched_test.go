package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// schedTree installs a tree whose alias home has .qmail-<name> files with
// the given contents (owned by the alias user), for local test recipients
// <name>@testhost.example.
func schedTree(t *testing.T, dotqmails map[string]string) *harness.Tree {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	var st syscall.Stat_t
	if err := syscall.Stat(tr.Path("alias"), &st); err != nil {
		t.Fatal(err)
	}
	for name, content := range dotqmails {
		p := tr.Path("alias", ".qmail-"+name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, int(st.Uid), int(st.Gid))
	}
	return tr
}

// queueN queues n messages numbered from first, one recipient each.
func queueN(t *testing.T, tr *harness.Tree, first, n int, sender, rcpt string) {
	t.Helper()
	for i := first; i < first+n; i++ {
		msg := fmt.Sprintf("Subject: msg %d\nX-Seq: %d\n\nbody %d\n", i, i, i)
		if err := tr.Queue(t, sender, []string{rcpt}, []byte(msg)); err != nil {
			t.Fatalf("queue %d: %v", i, err)
		}
	}
}

var seqRe = regexp.MustCompile(`(?m)^X-Seq: (\d+)$`)

// seqs counts the X-Seq numbers found in a Maildir.
func seqs(t *testing.T, dir string) map[string]int {
	m := map[string]int{}
	for _, b := range harness.MaildirMessages(t, dir) {
		if s := seqRe.FindSubmatch(b); s != nil {
			m[string(s[1])]++
		}
	}
	return m
}

func TestSchedDeliverAndBounce(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	sys := tr.Start(t, "./Maildir/")
	queueN(t, tr, 0, 10, "box@testhost.example", "box@testhost.example")
	harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 10)
	// An unknown local part bounces back to box.
	queueN(t, tr, 10, 1, "box@testhost.example", "nobody@testhost.example")
	sys.WaitLog(t, "bounce msg ", 30*time.Second)
	msgs := harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 11)
	found := false
	for _, m := range msgs {
		s := string(m)
		if strings.Contains(s, "Subject: failure notice\n") &&
			strings.Contains(s, "I'm afraid I wasn't able to deliver your message to the following addresses.\n") &&
			strings.Contains(s, "<nobody@testhost.example>:\n") &&
			strings.Contains(s, "--- Below this line is a copy of the message.\n\nReturn-Path: <box@testhost.example>\n") {
			found = true
		}
	}
	if !found {
		t.Errorf("no QSBMF bounce in the Maildir; log:\n%s", sys.Log())
	}
	sys.WaitLogCount(t, "end msg ", 12, 30*time.Second) // 11 messages + the bounce
	sys.Stop(t)
	if left := tr.QueueFiles("mess"); len(left) != 0 {
		t.Errorf("messages left in the queue: %v", left)
	}
}

func TestHoldLocal50(t *testing.T) {
	tr := schedTree(t, map[string]string{
		"box":   "./Maildir/\n",
		"flaky": "|test -f " + "../flag" + " || exit 111\n./Maildir/\n",
	})
	sys := tr.Start(t, "./Maildir/")
	// A message that fails temporarily before the hold.
	queueN(t, tr, 1000, 1, "box@testhost.example", "flaky@testhost.example")
	sys.WaitLog(t, "deferral:", 30*time.Second)
	tr.Control("holdlocal", "")
	sys.HUP(t)
	sys.WaitLog(t, "hold: local held, 1 message waiting", 10*time.Second)
	queueN(t, tr, 0, 50, "box@testhost.example", "box@testhost.example")
	harness.WaitFor(t, 30*time.Second, func() bool { return sys.Count("new msg ") >= 51 })
	time.Sleep(3 * time.Second)
	if n := harness.MaildirCount(tr.AliasMaildir()); n != 0 {
		t.Fatalf("%d messages delivered while held", n)
	}
	if st := sys.Status(); st["holdlocal"] != "yes" || st["since-local"] == "0" {
		t.Errorf("sendstatus while held: %v", st)
	}
	// The program will now succeed; its retry time is ~100 s away.
	if err := os.WriteFile(tr.Path("flag"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tr.RemoveControl("holdlocal")
	released := time.Now()
	sys.HUP(t)
	harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 51)
	took := time.Since(released)
	t.Logf("all 51 messages delivered %v after rm holdlocal + HUP (target: 2 s)", took)
	sys.WaitLog(t, "hold: local released, 51 messages due now", time.Second)
	if took > 10*time.Second {
		t.Errorf("release took %v", took)
	}
	got := seqs(t, tr.AliasMaildir())
	if got["1000"] != 1 {
		t.Errorf("the temporarily failed message was not delivered once: %v", got["1000"])
	}
	sys.Stop(t)
}

func TestKill9Resume(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	const total = 300
	queueN(t, tr, 0, total, "box@testhost.example", "box@testhost.example")
	sys := tr.Start(t, "./Maildir/")
	harness.WaitFor(t, 60*time.Second, func() bool { return harness.MaildirCount(tr.AliasMaildir()) >= total/3 })
	sys.Kill9()
	before := harness.MaildirCount(tr.AliasMaildir())
	sys2 := tr.Start(t, "./Maildir/")
	harness.WaitFor(t, 120*time.Second, func() bool { return len(seqs(t, tr.AliasMaildir())) >= total })
	sys2.WaitLogCount(t, "end msg ", 1, 30*time.Second)
	// Every message leaves the queue, except that a kill -9 between
	// "unlink info" and qmail-clean's removal of mess/ (elimination)
	// leaves an S2 leftover: mess/ without info/ or todo/, which qmail
	// removes only after 36 hours (queue.md §6). Such a leftover is not
	// delivered again. qmail-send's removers (4) each have at most one
	// message between those two steps, so one kill -9 leaves at most 4
	// (qmail, removing in its loop, at most one).
	harness.WaitFor(t, 60*time.Second, func() bool {
		return len(tr.QueueFiles("info")) == 0 && len(tr.QueueFiles("todo")) == 0 &&
			len(tr.QueueFiles("local")) == 0 && len(tr.QueueFiles("remote")) == 0
	})
	if left := tr.QueueFiles("mess"); len(left) > 4 {
		t.Errorf("%d S2 leftovers in mess/ (%v); one kill -9 can leave at most 4", len(left), left)
	}
	sys2.Stop(t)
	got := seqs(t, tr.AliasMaildir())
	dups := 0
	for i := 0; i < total; i++ {
		n := got[fmt.Sprint(i)]
		if n == 0 {
			t.Errorf("message %d lost", i)
		}
		dups += max(n-1, 0)
	}
	t.Logf("kill -9 after %d of %d deliveries: all delivered, %d duplicates", before, total, dups)
}

func TestCorruptQueueFiles(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	// A todo file with an unknown record and an info file that is garbage.
	q := func(p ...string) string { return tr.Path(append([]string{"queue"}, p...)...) }
	mk := func(p string, content string) {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk(q("mess", "5", "28"), "Subject: x\n\nx\n")
	mk(q("todo", "28"), "u0\x00p1\x00Fa@b\x00Xjunk\x00")
	mk(q("mess", "6", "29"), "Subject: y\n\ny\n")
	mk(q("info", "6", "29"), "garbage")
	mk(q("local", "6", "29"), "Tbox@testhost.example\x00")
	if os.Geteuid() == 0 {
		ids := tr.IDs()
		for _, p := range []string{q("info", "6", "29"), q("local", "6", "29")} {
			os.Chown(p, ids.Qmails.UID, ids.Qmail)
		}
	}
	sys := tr.Start(t, "./Maildir/")
	sys.WaitLog(t, "warning: unknown record type in todo/28", 30*time.Second)
	sys.WaitLog(t, "warning: trouble opening info/6/29; will try again later", 30*time.Second)
	// Good mail still flows.
	queueN(t, tr, 0, 3, "box@testhost.example", "box@testhost.example")
	harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 3)
	sys.Stop(t)
	for _, p := range []string{q("todo", "28"), q("info", "6", "29"), q("local", "6", "29")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v (must be left for the admin)", filepath.Base(p), err)
		}
	}
}
