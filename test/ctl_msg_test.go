package test

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/sched"
	"github.com/hqmail/hqmail/test/harness"
)

// mkAliasMaildir makes ~alias/NAME/{cur,new,tmp} owned by the alias user.
func mkAliasMaildir(t *testing.T, tr *harness.Tree, name string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(tr.Path("alias"), &st); err != nil {
		t.Fatal(err)
	}
	dir := tr.Path("alias", name)
	for _, d := range []string{dir, dir + "/cur", dir + "/new", dir + "/tmp"} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, int(st.Uid), int(st.Gid))
	}
	return dir
}

// queueSeqs maps the id of every queued message to its X-Seq header.
func queueSeqs(t *testing.T, tr *harness.Tree) map[string]string {
	t.Helper()
	out, code := ctl(t, tr, "queue")
	if code != 0 {
		t.Fatalf("queue: exit %d\n%s", code, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		id := strings.Fields(line)[0]
		n, _ := strconv.ParseUint(id, 10, 64)
		b, err := os.ReadFile(tr.Path("queue", "mess", fmt.Sprint(n%23), id))
		if err != nil {
			t.Fatal(err)
		}
		s := seqRe.FindSubmatch(b)
		if s == nil {
			t.Fatalf("no X-Seq in message %s", id)
		}
		m[id] = string(s[1])
	}
	return m
}

// answerRe splits qmailctl's per-id answers: "message ID: ..." or
// "qmailctl: message ID ...".
var answerRe = regexp.MustCompile(`(?m)^(?:qmailctl: )?message (\d+)(.*)$`)

// TestCtlMsgRace is the race test of issue 7: qmail-send delivers 500
// local messages (slowly: a .qmail program sleeps, concurrency 3) while
// qmailctl holds some (by id and by sender), deletes some and bounces some.
// Nothing is lost; nothing deleted or bounced before its delivery started is
// delivered; every bounced message comes back to its sender; every message
// held while no delivery of it ran stays queued until released and is
// delivered after the release.
func TestCtlMsgRace(t *testing.T) {
	tr := schedTree(t, map[string]string{
		"box":    "|sleep 0.02\n./Maildir/\n",
		"sender": "./bounces/\n",
		"other":  "./bounces/\n",
	})
	bounces := mkAliasMaildir(t, tr, "bounces")
	tr.Control("concurrencylocal", "3\n")
	tr.Control("holdlocal", "")
	sys := tr.Start(t, "./Maildir/")
	const total = 500
	queueN(t, tr, 0, 50, "other@testhost.example", "box@testhost.example")
	queueN(t, tr, 50, total-50, "sender@testhost.example", "box@testhost.example")
	waitPreprocessed(t, tr, total)
	seqOf := queueSeqs(t, tr)
	idOf := map[string]string{}
	for id, s := range seqOf {
		idOf[s] = id
	}
	if out, code := ctl(t, tr, "release", "local"); code != 0 {
		t.Fatalf("release local: %d %s", code, out)
	}
	harness.WaitFor(t, 60*time.Second, func() bool { return harness.MaildirCount(tr.AliasMaildir()) >= 10 })

	// Hold everything from other@ (seq 0-49).
	out, code := ctl(t, tr, "hold", "from", "other@testhost.example")
	if code != 0 || !regexp.MustCompile(`^\d+ messages from <other@testhost.example> held\n$`).MatchString(out) {
		t.Fatalf("hold from: exit %d: %q", code, out)
	}

	// Requests on the others, in batches of 10, in random order.
	var cand []string
	for i := 50; i < total; i++ {
		cand = append(cand, idOf[strconv.Itoa(i)])
	}
	rng := rand.New(rand.NewSource(7))
	rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	plan := []struct {
		verb string
		n    int
	}{{"delete", 100}, {"bounce", 50}, {"hold", 50}}
	gone := 0
	next := 0
	done := [3]int{}
	for round := 0; done[0] < plan[0].n || done[1] < plan[1].n || done[2] < plan[2].n; round++ {
		k := round % 3
		if next >= len(cand) {
			break
		}
		if done[k] >= plan[k].n {
			continue
		}
		batch := cand[next:min(next+10, len(cand))]
		next += len(batch)
		done[k] += len(batch)
		out, code := ctl(t, tr, append([]string{plan[k].verb}, batch...)...)
		if code != 0 && code != 100 {
			t.Fatalf("%s: exit %d\n%s", plan[k].verb, code, out)
		}
		answers := answerRe.FindAllStringSubmatch(out, -1)
		if len(answers) != len(batch) {
			t.Fatalf("%s %v: %d answers:\n%s", plan[k].verb, batch, len(answers), out)
		}
		for _, a := range answers {
			if a[2] == " is not in the queue" {
				gone++
			}
		}
	}
	// Everything not held finishes; the held ones stay.
	harness.WaitFor(t, 180*time.Second, func() bool {
		out, _ := tr.Run(t, nil, "qmail-qstat")
		h, _ := sched.LoadHeld(tr.Path("queue"))
		return out == fmt.Sprintf("messages in queue: %d\nmessages in queue but not yet preprocessed: 0\n", len(h))
	})
	lg := readLedger(sys.Lines(), seqOf)
	held, err := sched.LoadHeld(tr.Path("queue"))
	if err != nil {
		t.Fatal(err)
	}
	got := plainSeqs(t, tr.AliasMaildir())
	for s := range lg.heldQuiet {
		switch {
		case !held[mustID(idOf[s])]:
			t.Errorf("message X-Seq %s held without a delivery running left the queue", s)
		case got[s] > 0:
			t.Errorf("held message X-Seq %s was delivered while held", s)
		}
	}
	for id := range held {
		sid := strconv.FormatUint(id, 10)
		if n, _ := strconv.Atoi(seqOf[sid]); lg.original(sid) && n < 50 && got[seqOf[sid]] > 0 {
			t.Errorf("message X-Seq %s held by sender was delivered while held", seqOf[sid])
		}
	}
	// Delete a few messages held while idle; release the rest (by sender,
	// then by id: held bounces whose id was reused too).
	var dropHeld []string
	for s := range lg.heldQuiet {
		if len(dropHeld) < 5 {
			dropHeld = append(dropHeld, idOf[s])
		}
	}
	if len(dropHeld) > 0 {
		out, code := ctl(t, tr, append([]string{"delete"}, dropHeld...)...)
		if code != 0 || strings.Count(out, ": 1 recipient deleted\n") != len(dropHeld) {
			t.Errorf("delete held: exit %d\n%s", code, out)
		}
		for _, id := range dropHeld {
			lg.deleted[seqOf[id]] = true
		}
	}
	if out, code := ctl(t, tr, "release", "from", "other@testhost.example"); code != 0 {
		t.Errorf("release from: %d %s", code, out)
	}
	held, _ = sched.LoadHeld(tr.Path("queue"))
	var rest []string
	for id := range held {
		rest = append(rest, strconv.FormatUint(id, 10))
	}
	if len(rest) > 0 {
		if out, code := ctl(t, tr, append([]string{"release"}, rest...)...); code != 0 {
			t.Errorf("release: %d %s", code, out)
		}
	}
	harness.WaitFor(t, 180*time.Second, func() bool {
		out, _ := tr.Run(t, nil, "qmail-qstat")
		return strings.HasPrefix(out, "messages in queue: 0\n")
	})
	final := readLedger(sys.Lines(), seqOf)
	got = plainSeqs(t, tr.AliasMaildir())
	returned := seqs(t, bounces)
	for i := 0; i < total; i++ {
		s := strconv.Itoa(i)
		switch {
		case got[s] > 1:
			t.Errorf("X-Seq %s delivered %d times", s, got[s])
		case lg.deleted[s] && got[s] > 0:
			t.Errorf("X-Seq %s (id %s) deleted before its delivery started, but delivered", s, idOf[s])
		case lg.bounced[s] && got[s] > 0:
			t.Errorf("X-Seq %s (id %s) bounced before its delivery started, but delivered", s, idOf[s])
		case lg.bounced[s] && returned[s] == 0 && !final.tainted[s]:
			t.Errorf("X-Seq %s (id %s) bounced, but no bounce came back", s, idOf[s])
		case !lg.deleted[s] && !lg.bounced[s] && !final.tainted[s] && got[s] == 0 && returned[s] == 0:
			t.Errorf("X-Seq %s lost", s)
		}
	}
	for _, b := range harness.MaildirMessages(t, bounces) {
		if !strings.Contains(string(b), sched.AdminBounceText) {
			t.Errorf("bounce without the administrator's text:\n%s", b)
			break
		}
	}
	if h, _ := sched.LoadHeld(tr.Path("queue")); len(h) != 0 {
		t.Errorf("held set not empty at the end: %v", h)
	}
	t.Logf("%d deleted and %d bounced before delivery, %d held with no delivery running, %d already gone, "+
		"%d delivered, %d bounces returned, %d requests hit a message that reused an id, %d bounces acted on",
		len(lg.deleted), len(lg.bounced), len(lg.heldQuiet), gone, len(got), len(returned), final.hitReused, len(final.tainted))
	if t.Failed() {
		os.WriteFile(tr.Path("send.log"), []byte(sys.Log()), 0o644)
	}
	if n := sys.Count("qmailctl: "); n == 0 {
		t.Errorf("qmail-send logged no request")
	}
}

// plainSeqs counts the X-Seq numbers of the messages in a Maildir that are
// not bounces (a double bounce to the postmaster quotes the original).
func plainSeqs(t *testing.T, dir string) map[string]int {
	m := map[string]int{}
	for _, b := range harness.MaildirMessages(t, dir) {
		head, _, _ := strings.Cut(string(b), "\n\n")
		if strings.Contains(head, "\nSubject: failure notice\n") {
			continue
		}
		if s := seqRe.FindStringSubmatch(head); s != nil {
			m[s[1]]++
		}
	}
	return m
}

func mustID(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// TestCtlMsgBadInput: unknown ids, a damaged info file and bad arguments
// give clear messages and documented exit codes, and remove nothing; a
// hold made while qmail-send is stopped is honoured at its start.
func TestCtlMsgBadInput(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	for _, rcpt := range []string{"a@far.example", "b@far.example"} {
		if err := tr.Queue(t, "sender@testhost.example", []string{rcpt}, []byte("Subject: x\n\nbody\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitPreprocessed(t, tr, 2)
	out, _ := ctl(t, tr, "queue")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	damaged, good := strings.Fields(lines[0])[0], strings.Fields(lines[1])[0]
	n := mustID(damaged)
	info := tr.Path("queue", "info", fmt.Sprint(n%23), damaged)
	if err := os.WriteFile(info, []byte("garbage without a record"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := queueFiles(t, tr)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"delete", "4242"}, 100, "qmailctl: message 4242 is not in the queue\n"},
		{[]string{"bounce", "4242"}, 100, "qmailctl: message 4242 is not in the queue\n"},
		{[]string{"hold", "4242"}, 100, "qmailctl: message 4242 is not in the queue\n"},
		{[]string{"release", "4242"}, 100, "qmailctl: message 4242 is not in the queue\n"},
		{[]string{"bounce", damaged}, 100, "qmailctl: message " + damaged + ": info file damaged (no sender): not bounced; delete it instead\n"},
		{[]string{"delete", "12x"}, 100, "qmailctl: not a message id: \"12x\"\n"},
		{[]string{"hold", "to", "\"a\nb\"@x"}, 100, "cannot send hold-to"}, // a bare newline reads as a space, as in sendmail
		{[]string{"release", good}, 0, "message " + good + " was not held\n"},
	}
	for _, tc := range tests {
		out, code := ctl(t, tr, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d %q, want %d %q", tc.args, code, out, tc.code, tc.want)
		}
	}
	if after := queueFiles(t, tr); after != before {
		t.Errorf("queue changed:\n%s\n---\n%s", before, after)
	}

	// Hold while stopped, start: the message stays held after a release
	// of remote delivery; releasing the message lets it go.
	sys.Stop(t)
	if out, code := ctl(t, tr, "hold", good); code != 3 || !strings.Contains(out, "message "+good+" held\n") {
		t.Fatalf("hold while stopped: exit %d %q", code, out)
	}
	sys = tr.Start(t, "./Maildir/")
	if out, code := ctl(t, tr, "release", "remote"); code != 0 {
		t.Fatalf("release remote: %d %s", code, out)
	}
	if out, code := ctl(t, tr, "flush"); code != 0 {
		t.Fatalf("flush: %d %s", code, out)
	}
	// The damaged one is tried (and fails to open); the held one is not.
	if out, code := ctl(t, tr, "hold", good); code != 0 || out != "message "+good+" is already held\n" {
		t.Errorf("hold again: %d %q", code, out)
	}
	if c := sys.Count("msg " + good + " to remote"); c != 0 {
		t.Errorf("held message started %d deliveries", c)
	}
	if out, code := ctl(t, tr, "release", good); code != 0 || out != "message "+good+" released\n" {
		t.Errorf("release: %d %q", code, out)
	}
	sys.WaitLog(t, "msg "+good+" to remote ", 60*time.Second)
	// delete of the damaged message works (it was asked for).
	if out, code := ctl(t, tr, "delete", damaged); code != 0 || !strings.Contains(out, "message "+damaged+": 1 recipient deleted") {
		t.Errorf("delete damaged: %d %q", code, out)
	}
	sys.WaitLog(t, "end msg "+damaged, 60*time.Second)
}

// queueFiles lists every file under queue/ except lock/ and bounce/
// holdperiods, with sizes, for before/after comparisons.
func queueFiles(t *testing.T, tr *harness.Tree) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(tr.Path("queue"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.Contains(p, "/lock/") || strings.HasSuffix(p, "holdperiods") {
			return nil
		}
		fmt.Fprintf(&b, "%s %d\n", strings.TrimPrefix(p, tr.Root), fi.Size())
		return nil
	})
	return b.String()
}

// ledger is what qmail-send's log says the requests did to the original
// messages. Message ids are inode numbers: a bounce queued during the run
// may get the id of a message that has left the queue, and a later request
// for that id acts on the bounce. So requests are attributed by reading
// the log in order: a request counts for an original message only while
// its id has been seen in one "new msg" line; a request that hits a
// bounce carrying an original's X-Seq taints that X-Seq (its bounce may be
// deleted or double-bounced to the postmaster).
type ledger struct {
	gen       map[string]int
	deleted   map[string]bool // deleted before any delivery started
	bounced   map[string]bool // bounced before any delivery started
	heldQuiet map[string]bool // held while no delivery of it ran
	tainted   map[string]bool
	hitReused int
}

func (l *ledger) original(id string) bool { return l.gen[id] == 1 }

var (
	reqLine    = regexp.MustCompile(`^qmailctl: (\S+) (\d+): (\w+): (.*)$`)
	infoLine   = regexp.MustCompile(`^info msg (\d+): .* qp (\d+) `)
	bounceLine = regexp.MustCompile(`^bounce msg (\d+) qp (\d+)$`)
)

func readLedger(lines []string, seqOf map[string]string) *ledger {
	l := &ledger{gen: map[string]int{}, deleted: map[string]bool{}, bounced: map[string]bool{},
		heldQuiet: map[string]bool{}, tainted: map[string]bool{}}
	carrier := map[string]string{} // id of a bounce -> X-Seq it quotes
	byQP := map[string]string{}    // qp of an injected bounce -> X-Seq
	for _, line := range lines {
		if id, ok := strings.CutPrefix(line, "new msg "); ok {
			l.gen[id]++
			delete(carrier, id)
			continue
		}
		if m := infoLine.FindStringSubmatch(line); m != nil {
			if s, ok := byQP[m[2]]; ok {
				carrier[m[1]] = s
			}
			continue
		}
		if m := bounceLine.FindStringSubmatch(line); m != nil {
			if l.original(m[1]) {
				byQP[m[2]] = seqOf[m[1]]
			} else if s, ok := carrier[m[1]]; ok {
				byQP[m[2]] = s
			}
			continue
		}
		m := reqLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		verb, id, word, text := m[1], m[2], m[3], m[4]
		if !l.original(id) {
			if s, ok := carrier[id]; ok && word == "ok" {
				l.tainted[s] = true
			}
			if l.gen[id] > 1 {
				l.hitReused++
			}
			continue
		}
		s := seqOf[id]
		if s == "" || word != "ok" || strings.Contains(text, "in_progress") {
			continue
		}
		switch {
		case verb == "delete" && strings.HasSuffix(text, "_1_recipient_deleted"):
			l.deleted[s] = true
		case verb == "bounce" && strings.HasSuffix(text, "_1_recipient_bounced"):
			l.bounced[s] = true
		case verb == "hold" && text == "message_"+id+"_held":
			l.heldQuiet[s] = true
		}
	}
	return l
}
