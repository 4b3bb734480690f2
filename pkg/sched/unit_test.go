package sched

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qhome"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRewrite(t *testing.T) {
	cf := &config{
		envnoathost: "envnoat.example",
		locals:      setOf([]string{"local.example", "Other.Example"}),
		percenthack: setOf([]string{"hack.example"}),
		vdoms: map[string]string{
			"virt.example":      "bob",
			"joe@v2.example":    "joey",
			"v2.example":        "vtwo",
			".sub.example":      "subs",
			"remote.example":    "",
			"lists.sub.example": "",
		},
	}
	tests := []struct {
		in   string
		c    int
		want string
	}{
		{"joe", chanRemote, "joe@envnoat.example"},
		{"joe@local.example", chanLocal, "joe@local.example"},
		{"joe@OTHER.example", chanLocal, "joe@OTHER.example"},
		{"joe@virt.example", chanLocal, "bob-joe@virt.example"},
		{"joe@VIRT.Example", chanLocal, "bob-joe@VIRT.Example"},
		{"joe@v2.example", chanLocal, "joey-joe@v2.example"},
		{"ann@v2.example", chanLocal, "vtwo-ann@v2.example"},
		{"ann@a.sub.example", chanLocal, "subs-ann@a.sub.example"},
		{"ann@lists.sub.example", chanRemote, "ann@lists.sub.example"},
		{"ann@remote.example", chanRemote, "ann@remote.example"},
		{"ann@elsewhere.example", chanRemote, "ann@elsewhere.example"},
		{"a%b%local.example@hack.example", chanLocal, "a%b@local.example"},
		{"a%b%hack.example@hack.example", chanRemote, "a@b"},
		{"a%b@elsewhere.example", chanRemote, "a%b@elsewhere.example"},
	}
	for _, tc := range tests {
		c, got := cf.rewrite(tc.in)
		if c != tc.c || got != tc.want {
			t.Errorf("rewrite(%q) = %d %q, want %d %q", tc.in, c, got, tc.c, tc.want)
		}
	}
	cf.vdoms[""] = "catch"
	if c, got := cf.rewrite("x@anything.example"); c != chanLocal || got != "catch-x@anything.example" {
		t.Errorf("empty key: %d %q", c, got)
	}
}

// TestRewriteIDN: a domain listed in control/locals or virtualdomains in
// either spelling of an IDN takes mail in both (qmail compares the bytes:
// mail to the other spelling went out as remote, and came back as "not in
// my control/locals file").
func TestRewriteIDN(t *testing.T) {
	cf := &config{
		envnoathost: "envnoat.example",
		locals:      map[string]bool{idna.Fold("bücher.example"): true, idna.Fold("xn--mnchen-3ya.example"): true},
		vdoms:       VirtualDomains([]string{"köln.example:koeln", "ann@XN--WEN-ZMA.example:annie", ".zürich.example:zh"}),
	}
	tests := []struct {
		in   string
		c    int
		want string
	}{
		{"u@bücher.example", chanLocal, "u@bücher.example"},
		{"u@xn--bcher-kva.example", chanLocal, "u@xn--bcher-kva.example"},
		{"u@BÜCHER.example", chanLocal, "u@BÜCHER.example"},
		{"jörg@münchen.example", chanLocal, "jörg@münchen.example"},
		{"u@xn--kln-sna.example", chanLocal, "koeln-u@xn--kln-sna.example"},
		{"ANN@wïen.example", chanLocal, "annie-ANN@wïen.example"}, // the whole-address key
		{"bob@wïen.example", chanRemote, "bob@wïen.example"},
		{"x@a.xn--zrich-kva.example", chanLocal, "zh-x@a.xn--zrich-kva.example"},
		{"u@bucher.example", chanRemote, "u@bucher.example"},
	}
	for _, tc := range tests {
		c, got := cf.rewrite(tc.in)
		if c != tc.c || got != tc.want {
			t.Errorf("rewrite(%q) = %d %q, want %d %q", tc.in, c, got, tc.c, tc.want)
		}
	}
}

// TestPercenthackIDN: a domain listed in control/percenthack in either
// spelling of an IDN has its %-addresses rewritten in both, as locals and
// virtualdomains fold their domains (the list was keyed and looked up with
// ASCII letters folded only: u%far.example@xn--bcher-kva.example stayed
// as it was with bücher.example listed).
func TestPercenthackIDN(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "percenthack", "bücher.example\nXN--MNCHEN-3YA.example\n")
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		c    int
		want string
	}{
		{"u%far.example@xn--bcher-kva.example", chanRemote, "u@far.example"},
		{"u%far.example@bücher.example", chanRemote, "u@far.example"},
		{"u%far.example@BÜCHER.Example", chanRemote, "u@far.example"},
		{"u%local.example@münchen.example", chanLocal, "u@local.example"},
		{"u%far.example@xn--mnchen-3ya.example", chanRemote, "u@far.example"},
		{"u%v%xn--bcher-kva.example@münchen.example", chanRemote, "u@v"},
		{"u%far.example@bucher.example", chanRemote, "u%far.example@bucher.example"},
	}
	for _, tc := range tests {
		c, got := cf.rewrite(tc.in)
		if c != tc.c || got != tc.want {
			t.Errorf("rewrite(%q) = %d %q, want %d %q", tc.in, c, got, tc.c, tc.want)
		}
	}
}

func TestUnvirtual(t *testing.T) {
	cf := &config{vdoms: map[string]string{"virt.example": "bob", "joe@v2.example": "joey", ".sub.example": "s"}}
	tests := []struct{ in, want string }{
		{"bob-joe@virt.example", "joe@virt.example"},
		{"joey-joe@v2.example", "joey-joe@v2.example"}, // whole-address key is not used
		{"s-x@a.sub.example", "x@a.sub.example"},
		{"other@virt.example", "other@virt.example"},
		{"a\nb@x.example", "a_b@x.example"},
	}
	for _, tc := range tests {
		if got := cf.unvirtual(tc.in); got != tc.want {
			t.Errorf("unvirtual(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVerp(t *testing.T) {
	tests := []struct{ s, r, want string }{
		{"list-@ex.org-@[]", "joe@a.net", "list-joe=a.net@ex.org"},
		{"list-@ex.org-@[]", "joe", "list-@ex.org-@[]"},
		{"list-@[]", "joe@a.net", "list-@[]"},
		{"plain@ex.org", "joe@a.net", "plain@ex.org"},
		{"", "joe@a.net", ""},
	}
	for _, tc := range tests {
		if got := verp(tc.s, tc.r); got != tc.want {
			t.Errorf("verp(%q,%q) = %q, want %q", tc.s, tc.r, got, tc.want)
		}
	}
}

func TestNextretry(t *testing.T) {
	tests := []struct {
		age  int64
		c    int
		want int64 // next - birth
	}{
		{-5, chanLocal, 100},
		{0, chanLocal, 100},
		{99, chanLocal, 19 * 19},
		{100, chanLocal, 400},
		{399, chanLocal, 29 * 29}, // floor(sqrt(399)) = 19, +10
		{0, chanRemote, 400},
		{400, chanRemote, 1600},
		{1599, chanRemote, (39 + 20) * (39 + 20)},
	}
	birth := int64(1_000_000)
	for _, tc := range tests {
		if got := nextretry(birth, birth+tc.age, tc.c) - birth; got != tc.want {
			t.Errorf("age %d chan %d: %d, want %d", tc.age, tc.c, got, tc.want)
		}
	}
	// Large ages: exact integer square roots.
	for _, n := range []int64{1 << 20, 123456789} {
		if got := nextretry(0, n*n, chanLocal); got != (n+10)*(n+10) {
			t.Errorf("age %d^2: %d", n, got)
		}
		if got := nextretry(0, n*n-1, chanLocal); got != (n-1+10)*(n-1+10) {
			t.Errorf("age %d^2-1: %d", n, got)
		}
	}
}

func TestHeap(t *testing.T) {
	var q prioq
	dues := []int64{50, 10, 30, 20, 40, 10}
	for i, d := range dues {
		q.insert(uint64(i+1), d)
	}
	var got []int64
	for q.len() > 0 {
		got = append(got, q.delmin().due)
	}
	want := []int64{10, 10, 20, 30, 40, 50}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	q.insert(1, 100)
	q.insert(2, 5)
	q.allDue(7)
	if e, _ := q.min(); e.due != 7 {
		t.Errorf("allDue: %v", e)
	}
}

func TestSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"did 1+0+0\n", "did_1+0+0/"},
		{"100%\tok\x7f\xc3", "100__ok__"},
		{"plain@example.com", "plain@example.com"},
	}
	for _, tc := range tests {
		if got := safe(tc.in); got != tc.want {
			t.Errorf("safe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBounceParagraph(t *testing.T) {
	tests := []struct{ r, text, want string }{
		{"a@b", "Sorry, no mailbox here by that name. (#5.1.1)\n", "<a@b>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"},
		{"a@b", "no newline", "<a@b>:\nno newline\n\n"},
		{"a@b", "", "<a@b>:\n\n"},
		{"a@b", "one\n\ntwo\n\n\nthree\n\n", "<a@b>:\none\n/two\n//three\n\n\n"},
		{"a@b", "B\n\n\n\nC", "<a@b>:\nB\n///C\n\n"},
		// A line break in the address cannot forge a line of the report.
		{"a\rb\n\nc\x00@d", "x\n", "<a_b__c_@d>:\nx\n\n"},
		{"x>:\nfake@e", "x\n", "<x>:_fake@e>:\nx\n\n"},
	}
	for _, tc := range tests {
		if got := string(BounceParagraph(tc.r, tc.text)); got != tc.want {
			t.Errorf("paragraph(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

// TestUnvirtualTable: the prepend of the domain's entry (or a suffix's, or the
// empty key's; never a whole address's) comes off for a bounce paragraph,
// whichever spelling of an IDN the recipient has; qmailctl bounce uses the
// same.
func TestUnvirtualTable(t *testing.T) {
	vd := VirtualDomains([]string{"virt.example:joe", ".sub.example:sub", ":", "u@whole.example:w", "bücher.example:b"})
	tests := []struct{ in, want string }{
		{"joe-box@virt.example", "box@virt.example"},
		{"joe-box@VIRT.example", "box@VIRT.example"},
		{"other-box@virt.example", "other-box@virt.example"},
		{"sub-x@a.sub.example", "x@a.sub.example"},
		{"w-u@whole.example", "w-u@whole.example"},
		{"plain@else.example", "plain@else.example"},
		{"new\nline@else.example", "new_line@else.example"},
		{"b-x@xn--bcher-kva.example", "x@xn--bcher-kva.example"},
		{"b-x@BÜCHER.example", "x@BÜCHER.example"},
	}
	for _, tc := range tests {
		if got := Unvirtual(vd, tc.in); got != tc.want {
			t.Errorf("Unvirtual(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseHoldRemote(t *testing.T) {
	tests := []struct {
		in   string
		all  bool
		doms string
	}{
		{"", true, ""},
		{"1\n", true, ""},
		{"*\n", true, ""},
		{"\nexample.com\n", true, ""},
		{"Example.COM\n.Sub.Org\n# comment\n\n", false, "example.com .sub.org"},
		{"   \n", true, ""},
	}
	for _, tc := range tests {
		all, doms := ParseHoldRemote([]byte(tc.in))
		if all != tc.all || strings.Join(doms, " ") != tc.doms {
			t.Errorf("ParseHoldRemote(%q) = %v %q, want %v %q", tc.in, all, doms, tc.all, tc.doms)
		}
	}
	_, v6 := ParseHoldRemote([]byte("[IPv6:0:0:0:0:0:0:0:1]\n"))
	h := holdState{remoteDoms: append([]string{"example.com", ".sub.org"}, v6...)}
	for addr, want := range map[string]bool{
		"a@example.com": true, "a@EXAMPLE.com": true, "a@x.example.com": false,
		"a@x.sub.org": true, "a@sub.org": false, "a@other.net": false,
		"a@[IPv6:::1]": true, "a@[ipv6:0::1]": true, "a@[IPv6:::2]": false,
	} {
		if got := h.domainHeld(addr); got != want {
			t.Errorf("domainHeld(%q) = %v", addr, got)
		}
	}
}

// saveChange is what qmail-send does at a change of the hold flags: the
// periods from time t on, saved if they changed.
func saveChange(h *holdLog, hs holdState, t int64) error {
	if !h.change(hs, t) {
		return nil
	}
	return h.save()
}

// TestHoldLogSaveFails: a hold change that cannot be recorded is logged
// (it was dropped without a word), and the next change records both.
func TestHoldLogSaveFails(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bounce"), 0o700)
	h := loadHoldLog(dir)
	block := filepath.Join(dir, "bounce", HoldLogName+".tmp")
	os.Mkdir(block, 0o700) // the temporary file cannot be made
	if err := saveChange(h, holdState{remoteAll: true}, 1000); err == nil {
		t.Fatal("record succeeded with bounce/holdperiods.tmp a directory")
	}
	os.Remove(block)
	if err := saveChange(h, holdState{remoteAll: true, local: true}, 2000); err != nil {
		t.Fatal(err)
	}
	if got := loadHoldLog(dir).periods; len(got) != 3 || got[0] != (period{chanRemote, 1000, 0}) {
		t.Errorf("reloaded %v", got)
	}
	if _, err := os.Stat(block); err == nil {
		t.Error("temporary file left")
	}
}

func TestHoldLog(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bounce"), 0o700)
	h := loadHoldLog(dir)
	h.set(chanRemote, true, 1000)
	h.set(chanRemote, true, 1500) // no change
	h.set(chanRemote, false, 2000)
	h.set(chanLocal, true, 1200)
	h.set(chanRemote, true, 3000)
	if err := h.save(); err != nil {
		t.Fatal(err)
	}
	h2 := loadHoldLog(dir)
	if len(h2.periods) != 3 {
		t.Fatalf("reloaded %v", h2.periods)
	}
	tests := []struct {
		c          int
		birth, now int64
		want       int64
	}{
		{chanRemote, 0, 2500, 1000},
		{chanRemote, 1500, 2500, 500},
		{chanRemote, 0, 3500, 1500},
		{chanRemote, 2500, 2900, 0},
		{chanLocal, 0, 1300, 100},
	}
	for _, tc := range tests {
		if got := h2.heldWithin(tc.c, tc.birth, tc.now); got != tc.want {
			t.Errorf("heldWithin(%d,%d,%d) = %d, want %d", tc.c, tc.birth, tc.now, got, tc.want)
		}
	}
	if h2.since(chanRemote) != 3000 || h2.since(chanLocal) != 1200 {
		t.Errorf("since: %d %d", h2.since(chanRemote), h2.since(chanLocal))
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestBounceText(t *testing.T) {
	date := time.Date(2026, 11, 26, 4, 5, 6, 0, time.UTC)
	report := []byte("<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n" +
		"<joe@remote.example>:\nConnected to 192.0.2.1 but sender was rejected.\nRemote host said: 553 no\n/\n\n")
	mess := "Received: (qmail 1 invoked by uid 0); 26 Nov 2026 04:00:00 -0000\nSubject: hi\n\nbody\n"
	tests := []struct {
		name   string
		sender string
		dsn    bool
	}{
		{"single.golden", "ann@example.org", false},
		{"quoted.golden", "a b@example.org", false},
		{"double.golden", "", false},
		{"dsn.golden", "ann@example.org", true},
	}
	for _, tc := range tests {
		b := &bounce{date: date, from: "MAILER-DAEMON", host: "mx.example.org", sender: tc.sender,
			dbto: "postmaster@mx.example.org", report: reportOf(report), dsn: tc.dsn, id: 4242, reportHost: "mx.example.org"}
		head, tail := b.render()
		golden(t, tc.name, append(append(head, mess...), tail...))
	}
}

// TestDSNEmptyDiagnostic: a recipient whose failure report is empty (or
// only white space) has "Diagnostic-Code: x-qmail;" in the DSN, with no
// blank at the end of the line ("x-qmail; " before).
func TestDSNEmptyDiagnostic(t *testing.T) {
	date := time.Date(2026, 11, 26, 4, 5, 6, 0, time.UTC)
	report := []byte("<nobody@example.org>:\n\n<joe@example.org>:\n \t \n\n<ann@example.org>:\nNo mailbox. (#5.1.1)\n\n")
	b := &bounce{date: date, from: "MAILER-DAEMON", host: "mx.example.org", sender: "s@example.org",
		dbto: "postmaster@mx.example.org", report: reportOf(report), dsn: true, id: 4242, reportHost: "mx.example.org"}
	head, _ := b.render()
	_, status, ok := strings.Cut(string(head), "Content-Type: message/delivery-status\n")
	if !ok {
		t.Fatalf("no delivery-status part:\n%s", head)
	}
	status, _, _ = strings.Cut(status, "\n--")
	var diags []string
	for _, l := range strings.Split(status, "\n") {
		if strings.HasPrefix(l, "Diagnostic-Code:") {
			diags = append(diags, l)
		}
		if strings.TrimRight(l, " \t") != l {
			t.Errorf("delivery-status line with trailing white space: %q", l)
		}
	}
	want := []string{"Diagnostic-Code: x-qmail;", "Diagnostic-Code: x-qmail;", "Diagnostic-Code: x-qmail; No mailbox. (#5.1.1)"}
	if !slices.Equal(diags, want) {
		t.Errorf("Diagnostic-Code lines %q, want %q", diags, want)
	}
}

// TestWriteStatusNeverEmpty: a reader of sendstatus, while qmail-send
// rewrites it with texts of changing length, never finds it empty and
// never sees a stale line after the new ones.
func TestWriteStatusNeverEmpty(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: io.Discard}, now: func() int64 { return 1000 }}
	s.holds = loadHoldLog(q)
	s.writeStatus()
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		defer close(bad)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, _ := os.ReadFile(filepath.Join(q, "lock/sendstatus"))
			if len(b) == 0 || strings.Count(string(b), "generation ") != 1 {
				bad <- string(b)
				return
			}
		}
	}()
	for i := 0; i < 20000; i++ {
		s.generation = []int{0, 123456789}[i%2] // long and short texts
		s.writeStatus()
	}
	close(stop)
	if b, ok := <-bad; ok {
		t.Errorf("a reader saw sendstatus as %q", b)
	}
}

// TestWriteStatusTroubleLogged: a sendstatus that cannot be written (a
// full disk or a quota cuts the write short; the name is not a file) is
// said in the log, once while it fails alike and again after a write
// that worked: qmailctl, which waits for the file, cannot tell why.
func TestWriteStatusTroubleLogged(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: &log}, now: func() int64 { return 1000 }}
	s.holds = loadHoldLog(q)
	s.writeStatus()
	if log.Len() != 0 {
		t.Fatalf("a status written logged %q", log.String())
	}
	const want = "warning: unable to write lock/sendstatus: file too large; qmailctl cannot see what qmail-send holds, releases or counts until it can\n"
	testutil.WithFileSizeLimit(t, 16, func() {
		s.writeStatus()
		s.writeStatus()
	})
	if log.String() != want {
		t.Fatalf("two writes cut short logged %q, want %q once", log.String(), want)
	}
	s.writeStatus()
	testutil.WithFileSizeLimit(t, 16, func() { s.writeStatus() })
	if log.String() != want+want {
		t.Fatalf("a failure after a write that worked logged %q, want the line again", log.String())
	}

	log.Reset()
	st := filepath.Join(q, "lock/sendstatus")
	if err := os.Remove(st); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(st, 0o755); err != nil {
		t.Fatal(err)
	}
	s.writeStatus()
	if want := "warning: unable to write lock/sendstatus: is a directory;"; !strings.HasPrefix(log.String(), want) {
		t.Errorf("sendstatus a directory logged %q, want a line starting %q", log.String(), want)
	}
}

// TestDSNFields: the DSN part takes a remote reply's enhanced code when
// the report has no qmail code, keeps its fields ASCII, and folds them
// within RFC 5322's line lengths; the text part says when it is not ASCII.
func TestDSNFields(t *testing.T) {
	long := strings.Repeat("x", 3000)
	report := []byte("<a@remote.example>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 M\xfcller unknown\nGiving up on 192.0.2.1.\n\n" +
		"<b@remote.example>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 " + long + "\n\n" +
		"<c@local.example>:\nSorry, no mailbox here by that name. (#5.1.1)\nRemote host said: 550 5.7.1 not this one\n\n")
	b := &bounce{date: time.Unix(0, 0), from: "MAILER-DAEMON", host: "mx.example.org", sender: "ann@example.org",
		report: reportOf(report), dsn: true, id: 1, reportHost: "mx.example.org"}
	head, _ := b.render()
	text := string(head)
	for _, want := range []string{
		"Content-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: 8bit\n",
		"Final-Recipient: rfc822; a@remote.example\nAction: failed\nStatus: 5.1.1\n",
		"Final-Recipient: rfc822; b@remote.example\nAction: failed\nStatus: 5.0.0\n",
		"Final-Recipient: rfc822; c@local.example\nAction: failed\nStatus: 5.1.1\n", // qmail's code first
		"M?ller",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("DSN lacks %q:\n%s", want, text)
		}
	}
	// The text part quotes the 3,000-byte reply in lines of at most 998.
	for _, l := range strings.Split(text[:strings.Index(text, "message/delivery-status")], "\n") {
		if len(l) > 998 {
			t.Errorf("a text line of %d bytes", len(l))
		}
	}
	if !strings.Contains(strings.ReplaceAll(text, "\n", ""), "Remote host said: 550 "+long) {
		t.Errorf("the long reply lost bytes")
	}
	dsn := text[strings.Index(text, "message/delivery-status"):]
	for _, l := range strings.Split(dsn, "\n") {
		if len(l) > 998 {
			t.Errorf("a line of %d bytes", len(l))
		}
		if len(l) > 78 && !strings.Contains(l, long[:900]) {
			t.Errorf("a line of %d bytes that could fold: %q", len(l), l)
		}
		for _, c := range []byte(l) {
			if c >= 0x80 {
				t.Fatalf("8-bit byte in the DSN part: %q", l)
			}
		}
	}
}

// TestHoldLogWarning: qmail-send logs a hold period it cannot record.
func TestHoldLogWarning(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "holdremote", "")
	if err := os.Mkdir(filepath.Join(root, "queue", "bounce", HoldLogName+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	e := start(t, root, ok, ok)
	e.waitLog("warning: unable to write bounce/"+HoldLogName+": is a directory\n", 1)
	e.stop()
}

// TestAppendRestFlushes: a failure paragraph is flushed before
// appendRest returns, and so is bounce/'s entry for a file it made (in this
// try or an earlier one that failed), because the recipient is marked done
// next: a power cut that kept the mark, or the channel file's removal, but
// not the paragraph lost the failure notice (crash QA on a file system
// that keeps only what was flushed).
func TestAppendRestFlushes(t *testing.T) {
	var events []string
	oldFile, oldDir := syncFile, syncDir
	t.Cleanup(func() { syncFile, syncDir = oldFile, oldDir })
	failDir := false
	syncFile = func(f *os.File) error {
		events = append(events, "file "+filepath.Base(f.Name()))
		return f.Sync()
	}
	syncDir = func(dir string) error {
		events = append(events, "dir "+filepath.Base(dir))
		if failDir {
			return errors.New("flush failed")
		}
		return qhome.SyncDir(dir)
	}
	dir := filepath.Join(t.TempDir(), "bounce")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "42")
	p := []byte("<a@example.org>:\nno mailbox here\n\n")

	var a appending
	if err := a.appendRest(name, p); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(events, ", "), "file 42, dir bounce"; got != want {
		t.Errorf("new bounce file: flushes %q, want %q", got, want)
	}

	events = nil
	var b appending
	if err := b.appendRest(name, p); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(events, ", "), "file 42"; got != want {
		t.Errorf("existing bounce file: flushes %q, want %q", got, want)
	}

	// The directory flush of the try that made the file fails: the next
	// try, which finds the file there, flushes the directory again.
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	events, failDir = nil, true
	var c appending
	if err := c.appendRest(name, p); err == nil {
		t.Fatal("failed directory flush not reported")
	}
	failDir = false
	if err := c.appendRest(name, p); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(events, ", "), "file 42, dir bounce, file 42, dir bounce"; got != want {
		t.Errorf("after a failed directory flush: flushes %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(name); string(got) != string(p) {
		t.Errorf("bounce file holds %q, want the paragraph once", got)
	}
}

// TestAppendRestResumes: a bounce paragraph whose write is cut short (a
// full disk, here the file size limit) is taken up where it stopped on the
// next try, so the bounce holds it once and whole (it held its first part
// and then the whole paragraph again).
func TestAppendRestResumes(t *testing.T) {
	name := filepath.Join(t.TempDir(), "bounce")
	first := []byte("<a@example.org>:\nfirst\n\n")
	if err := os.WriteFile(name, first, 0o600); err != nil {
		t.Fatal(err)
	}
	p := []byte("<b@example.org>:\n" + strings.Repeat("x", 3000) + "\n\n")
	var a appending
	var err error
	testutil.WithFileSizeLimit(t, uint64(len(first)+1000), func() {
		err = a.appendRest(name, p)
	})
	if err == nil || a.done != 1000 {
		t.Fatalf("cut-short write: err %v, %d written, want an error after 1000", err, a.done)
	}
	if err := a.appendRest(name, p); err != nil || a.done != len(p) {
		t.Fatalf("second try: err %v, %d written of %d", err, a.done, len(p))
	}
	got, _ := os.ReadFile(name)
	if want := string(first) + string(p); string(got) != want {
		t.Errorf("bounce file is %d bytes, want %d: the paragraph once, whole", len(got), len(want))
	}
}

// TestHoldLogPrune: the periods no message can need are dropped, and a
// long hold that queued mail still needs is kept however many short holds
// follow it (a cap of 1000 lines dropped it first, and held mail bounced
// early on a link that flapped).
func TestHoldLogPrune(t *testing.T) {
	const day = 86400
	now := int64(1_000_000_000)
	h := &holdLog{lifetime: 2 * day, oldest: now} // every queued message born since
	long := period{chanRemote, now - 3*day + 60, now - day}
	h.periods = append(h.periods,
		period{chanLocal, now - 30*day, now - 29*day}, // ended before any queued message's lifetime
		period{chanRemote, now - 10*day, now - 9*day}, // same
		long,
		period{kindRemoteSome, long.start, long.end})
	for i := range int64(1500) {
		s := now - day + 10 + 2*i
		h.periods = append(h.periods, period{chanLocal, s, s + 1})
	}
	h.set(chanLocal, true, now) // a change: the log is pruned
	if h.periods[0] != long {
		t.Fatalf("first period %v, want the long remote hold %v", h.periods[0], long)
	}
	if n := len(h.periods); n != 1+1500+1 { // the closed remotesome goes
		t.Errorf("%d periods, want %d", n, 1+1500+1)
	}
	// A message born just before the long hold is not dying: it was held
	// for most of its life.
	birth := long.start - 10
	if held := h.heldWithin(chanRemote, birth, now); now > birth+h.lifetime+held {
		t.Errorf("held %d s: the message would bounce", held)
	}
	// Once the hold is old enough to matter to no message, it goes too.
	later := long.end + pruneHorizon + 100
	h.set(chanLocal, false, later)
	for _, p := range h.periods {
		if p == long {
			t.Errorf("the long hold is kept at %d, when no message can need it", later)
		}
	}
}

// TestMessDoneWhileEnding: a done entry for an id whose removal is under
// way is looked at again later, not dropped: the id (an inode) may be a new
// message's already, and its entry must not be lost.
func TestMessDoneWhileEnding(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	s := &Sched{root: root, queue: q, log: logger{w: io.Discard}, now: func() int64 { return 1000 }}
	s.inflight = map[uint64]int{42: 1}
	s.messDone(42)
	e, ok := s.done.min()
	if !ok || e.id != 42 || e.due <= 1000 {
		t.Fatalf("done list %v, %v: want 42 again, later", e, ok)
	}
}

// TestPqaddStatFails: a message whose channel file cannot be looked at
// (remote/S not a directory: ENOTDIR) goes on the fail list whole, with
// qmail's warning; its other channel is not scheduled first (it was, and
// again at each retry of the failed one: the same recipient delivered in
// parallel, once per retry).
func TestPqaddStatFails(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	id := uint64(4242)
	os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("Subject: x\n\nx\n"), 0o600)
	os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fann@example.org\x00"), 0o600)
	os.WriteFile(filepath.Join(q, fnChan(chanLocal, id)), []byte("Tbob@local.example\x00"), 0o600)
	rdir := filepath.Join(q, "remote", split(id))
	if err := os.RemoveAll(rdir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rdir, nil, 0o600)
	var log lines
	s := &Sched{root: root, queue: q, log: logger{w: &log}, now: func() int64 { return 1000 }, recent: 1000, cf: &config{}}
	for range 3 { // the first try and two retries
		s.pqadd(id)
	}
	if n := s.sched[chanLocal].len(); n != 0 {
		t.Errorf("local schedule has %d entries, want none until both channels can be read", n)
	}
	if n := s.fail.len(); n != 3 {
		t.Errorf("fail list has %d entries, want 3", n)
	}
	if n := log.count("warning: unable to stat remote/" + split(id) + "/4242; will try again later"); n != 3 {
		t.Errorf("%d warnings, want 3; log:\n%s", n, log.String())
	}
	// Readable again: both files scheduled, once.
	os.Remove(rdir)
	os.Mkdir(rdir, 0o700)
	s.pqadd(id)
	if n := s.sched[chanLocal].len(); n != 1 {
		t.Errorf("local schedule has %d entries, want 1", n)
	}
}

// TestHoldLogSqueeze: past maxPeriods the log merges the closest periods
// of a kind rather than drop the oldest: a dial-on-demand link that comes
// and goes thousands of times a week must not push out the long hold that
// queued mail still needs (it did at 5000 cycles, and held mail bounced).
func TestHoldLogSqueeze(t *testing.T) {
	const day = 86400
	now := int64(1_000_000_000)
	h := &holdLog{lifetime: 7 * day}
	long := period{chanRemote, now - 8*day + 3600, now - 5*day}
	h.periods = append(h.periods, long)
	for i := range int64(maxPeriods + 500) {
		s := now - 2*day + 10*i
		h.periods = append(h.periods, period{chanRemote, s, s + 5})
	}
	birth := now - 8*day
	before := h.heldWithin(chanRemote, birth, now)
	h.set(chanRemote, true, now)
	if n := len(h.periods); n > maxPeriods {
		t.Fatalf("%d periods, more than %d", n, maxPeriods)
	}
	if h.periods[0] != long {
		t.Fatalf("first period %v, want the long hold %v", h.periods[0], long)
	}
	if after := h.heldWithin(chanRemote, birth, now); after < before {
		t.Errorf("held time fell from %d to %d: mail could bounce early", before, after)
	}
}

// TestHoldLogOutOfOrder: after the clock went back, a later line of the
// log can lie before an earlier one in time. Neither squeeze nor prune
// loses held time for it: squeeze merged such a pair into a period that
// ended before it started, which prune then dropped with both holds.
func TestHoldLogOutOfOrder(t *testing.T) {
	const day = 86400
	now := int64(1_000_000_000)
	h := &holdLog{lifetime: 7 * day}
	for i := range int64(maxPeriods - 2) {
		s := now - 3600 + i%1000
		h.periods = append(h.periods, period{chanLocal, s, s + 1})
	}
	h.periods = append(h.periods,
		period{chanRemote, now - 10000, now - 5000},
		period{chanRemote, now - 90000, now - 89990}) // recorded after the clock went back a day
	birth := now - 100000
	before := h.heldWithin(chanRemote, birth, now)
	h.set(chanLocal, true, now) // over maxPeriods: squeezed, and pruned
	h.set(chanLocal, false, now+1)
	if after := h.heldWithin(chanRemote, birth, now); after < before {
		t.Errorf("remote held time fell from %d to %d: mail could bounce early; remote periods %v", before, after,
			slices.DeleteFunc(slices.Clone(h.periods), func(p period) bool { return p.c != chanRemote }))
	}
	// prune alone, with the lines out of order: the period that lies
	// later in time is still needed by a message born before both.
	h2 := &holdLog{lifetime: 7 * day}
	a, b := period{chanRemote, now - 3*day, now - 2*day}, period{chanRemote, now - 9*day, now - 7*day - day/2}
	h2.periods = []period{a, b}
	h2.prune(now)
	// Born at b's start: held 2.5 days, so it stays until now + day/2;
	// without b it would be dying a day ago.
	if birth := b.start; now > birth+h2.lifetime+h2.heldWithin(chanRemote, birth, now) {
		t.Errorf("pruned out of order: %v", h2.periods)
	}
}

// TestRereadHoldLogJoins: when a hold log that could not be read at start
// is read at a HUP, a period it has open (held when the last qmail-send
// stopped) joins this qmail-send's record from its start, or ends at that
// start; it was closed at the HUP instead, overlapping the periods since
// the start, and their time counted twice.
func TestRereadHoldLogJoins(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	hl := filepath.Join(q, "bounce", HoldLogName)
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: io.Discard}, now: func() int64 { return 1000 }}
	// Held local at the start (500) and released at 502; the file says
	// local was held from 496, and remote from 300, not held at 500.
	s.holds = &holdLog{path: hl, err: errors.New("unreadable"), started: 500,
		periods: []period{{chanLocal, 500, 502}}}
	// A closed remotesome period is not kept (prune), read again or not.
	if err := os.WriteFile(hl, []byte("remotesome 100 200\nremote 300 0\nlocal 496 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.rereadHoldLog()
	if s.holds.err != nil {
		t.Fatal(s.holds.err)
	}
	want := []period{{chanRemote, 300, 500}, {chanLocal, 496, 502}}
	if !slices.Equal(s.holds.periods, want) {
		t.Errorf("periods %v, want %v", s.holds.periods, want)
	}
	if got := s.holds.heldWithin(chanLocal, 0, 1000); got != 6 {
		t.Errorf("local held %d s, want 6", got)
	}
}

// TestReadReason: the reason both control alerts give (start and HUP):
// qmail's words for an errno, unchanged; plain words, spaces kept, for
// the errors pkg/qhome gives without an errno.
func TestReadReason(t *testing.T) {
	pe := func(err error) error { return &os.PathError{Op: "open", Path: "/q/control/locals", Err: err} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{pe(syscall.EACCES), "access denied"},
		{pe(syscall.EISDIR), "is a directory"},
		{pe(syscall.ELOOP), "symbolic link loop"},
		{pe(qhome.ErrNotRegular), "not a regular file"},
		{qhome.ErrNotRegular, "not a regular file"},
		{pe(errors.New("odd\nthing 100%")), "odd/thing 100_"},
	} {
		if got := readReason(tc.err); got != tc.want {
			t.Errorf("readReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if got := rereadWhy(tc.err); got != ": "+tc.want {
			t.Errorf("rereadWhy(%v) = %q, want %q", tc.err, got, ": "+tc.want)
		}
	}
	if got := rereadWhy(nil); got != "" {
		t.Errorf("rereadWhy(nil) = %q", got)
	}
}

// TestPqaddDoneWhileHeld: a message found at the start with a channel
// file that has nothing left to deliver (its last deliveries ended while
// the previous qmail-send was exiting) and a held channel is not left in
// the queue, done, for the whole hold (it was, until the release): the
// file goes and the message is on the done list. A file still to deliver
// on a held channel stays scheduled for the release, and on a channel
// that is not held every file is scheduled as before (its pass ends it).
func TestPqaddDoneWhileHeld(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	msg := func(id uint64, remote string) {
		os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("Subject: x\n\nx\n"), 0o600)
		os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fann@example.org\x00"), 0o600)
		os.WriteFile(filepath.Join(q, fnChan(chanRemote, id)), []byte(remote), 0o600)
	}
	const done, pending, notHeld = 101, 102, 103
	msg(done, "Dbob@far.example\x00Dcat@far.example\x00")
	msg(pending, "Dbob@far.example\x00Tcat@far.example\x00")
	msg(notHeld, "Dbob@far.example\x00")
	s := &Sched{root: root, queue: q, log: logger{w: io.Discard}, now: func() int64 { return 1000 }, recent: 1000, cf: &config{}}
	s.cf.hold.remoteAll = true
	s.pqadd(done)
	s.pqadd(pending)
	if _, err := os.Stat(filepath.Join(q, fnChan(chanRemote, done))); !os.IsNotExist(err) {
		t.Errorf("the done message's remote file: %v, want it removed", err)
	}
	if e, ok := s.done.min(); !ok || e.id != done || s.done.len() != 1 {
		t.Errorf("done list: %v %v (%d entries), want message %d alone", e, ok, s.done.len(), done)
	}
	if e, ok := s.sched[chanRemote].min(); !ok || e.id != pending || s.sched[chanRemote].len() != 1 {
		t.Errorf("remote schedule: %v %v (%d entries), want message %d alone", e, ok, s.sched[chanRemote].len(), pending)
	}
	s.cf.hold.remoteAll = false
	s.pqadd(notHeld)
	if _, err := os.Stat(filepath.Join(q, fnChan(chanRemote, notHeld))); err != nil {
		t.Errorf("a file on a channel not held: %v, want it kept for its pass", err)
	}
	if s.sched[chanRemote].len() != 2 {
		t.Errorf("remote schedule has %d entries, want 2", s.sched[chanRemote].len())
	}
}
