package sched

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// streamCases are reports whose bounce, streamed, must be what the
// report held whole made (refRender): paragraphs as the scheduler writes
// them and ones it never writes, lines around 998 bytes with characters
// of every length across the cut, text that is no UTF-8, a boundary
// quoted in a reply.
func streamCases() [][]byte {
	long := strings.Repeat("x", 990) + strings.Repeat("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80", 400)
	cases := []string{
		"",
		"<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n" +
			"<joe@remote.example>:\nConnected to 192.0.2.1 but sender was rejected.\nRemote host said: 553 no\n/\n\n",
		"<a@remote.example>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 M\xfcller unknown\nGiving up on 192.0.2.1.\n\n",
		"<b@remote.example>:\nRemote host said: 550 " + strings.Repeat("y", 3000) + "\n\n",
		"<c@remote.example>:\nRemote host said: 550 " + long + "\n\n",
		"<j\xc3\xb6rg@b\xc3\xbccher.example>:\nno (#5.1.1)\n\n",
		"<" + strings.Repeat("\xc3\xa9", 300) + "@x.example>:\nno\n\n",
		"<" + strings.Repeat("q", 2000) + "\r\x01@x>:\nno (#4.3.0) Remote host said: 550-5.7.1 blocked\n\n",
		"x\n\n\n<a@b>:\ntext\n\n\n\n<c@d>:\n\n\n\n\n\n<e@f>:",
		"\n<a@b>:\n--hqmail-dsn-4242-26.Nov.2026.04.05.06.-0000-n\nRemote host said: 550 5.1.10\n\n",
		"<a@b>:\nRemote host said: 550 5.1.123x (#2.0.0)\n\n<c@d>:\nRemote host said: 554 5.7.1\xc3\xa9\n\n",
		"<a@b>:\nno \xff\xfe\xe2\x82 end\n\n<no recipient>\n\n<x@y>:",
		"<a@b>:" + strings.Repeat("\n/", 600) + "\n\n",
		"<a@b>:\n" + strings.Repeat("w\xc2\xa0\xe2\x80\x83 \t", 700) + "\n\n",
		"<a@b>:\n" + strings.Repeat("z", 2500), // no newline at the end
	}
	out := make([][]byte, 0, len(cases)+40)
	for _, c := range cases {
		out = append(out, []byte(c))
	}
	// Random reports over an alphabet of the bytes and words that matter.
	words := []string{"<", ">", ":", "\n", "\n\n", ">:\n", " ", "\t", "a@b", "#5.1.1", "#4.2.2",
		"Remote host said: 550 5.7.1", "Remote host said: 551-5.1.10", "\xc3", "\xbc", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", "\xff", "--hqmail-dsn-", strings.Repeat("k", 997), strings.Repeat("m", 40)}
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 40; i++ {
		var b strings.Builder
		for n := rnd.Intn(400); n > 0; n-- {
			b.WriteString(words[rnd.Intn(len(words))])
		}
		out = append(out, []byte(b.String()))
	}
	return out
}

// TestBounceStreamSameBytes: for every report, every sender kind and
// both formats, and buffers from 16 bytes up, the streamed bounce is the
// one the whole report in memory made, byte for byte.
func TestBounceStreamSameBytes(t *testing.T) {
	date := time.Date(2026, 11, 26, 4, 5, 6, 0, time.UTC)
	origs := []string{"Subject: hi\n\nbody\n", "Subject: Gr\xc3\xbc\xc3\x9fe\n\nna\xc3\xafve\n"}
	for ci, rep := range streamCases() {
		for _, sender := range []string{"ann@example.org", "", "j\xc3\xb6rg@example.org"} {
			for _, dsn := range []bool{false, true} {
				for oi, orig := range origs {
					for _, size := range []int{16, 17, 100, 4099, 0} {
						mk := func() *bounce {
							return &bounce{date: date, nonce: "n", from: "MAILER-DAEMON", host: "mx.example.org",
								sender: sender, dbto: "postmaster@mx.example.org", dsn: dsn, id: 4242,
								reportHost: "mx.example.org", orig: strings.NewReader(orig), bufSize: size}
						}
						b := mk()
						b.report = reportOf(rep)
						head, tail := b.render()
						wantHead, wantTail := refRender(mk(), rep)
						if !bytes.Equal(head, wantHead) || !bytes.Equal(tail, wantTail) {
							t.Fatalf("case %d sender %q dsn %v orig %d buffer %d: streamed bounce differs\n--- got\n%s%s\n--- want\n%s%s",
								ci, sender, dsn, oi, size, head, tail, wantHead, wantTail)
						}
					}
				}
			}
		}
	}
}

// FuzzBounceStream: any report (paragraphs under maxParagraph) streamed
// through any buffer gives the bounce the report held whole gave.
func FuzzBounceStream(f *testing.F) {
	for _, c := range streamCases() {
		f.Add(c, uint16(16), true)
	}
	f.Add([]byte("<a@b>:\nx\n\n"), uint16(0), false)
	f.Fuzz(func(t *testing.T, rep []byte, size uint16, dsn bool) {
		if len(rep) >= maxParagraph {
			return
		}
		mk := func() *bounce {
			return &bounce{date: time.Unix(1e9, 0), from: "MAILER-DAEMON", host: "h.example", sender: "s@x.example",
				dsn: dsn, id: 7, reportHost: "h.example", bufSize: int(size)}
		}
		b := mk()
		b.report = reportOf(rep)
		head, tail := b.render()
		wantHead, wantTail := refRender(mk(), rep)
		if !bytes.Equal(head, wantHead) || !bytes.Equal(tail, wantTail) {
			t.Fatalf("report %q buffer %d: streamed bounce differs\n--- got\n%s%s\n--- want\n%s%s", rep, size, head, tail, wantHead, wantTail)
		}
	})
}

// TestBounceParagraphCap: of a paragraph longer than maxParagraph, the
// fields are made of its first maxParagraph bytes, and the text part
// still quotes it whole.
func TestBounceParagraphCap(t *testing.T) {
	words := strings.Repeat("word ", maxParagraph/5)
	para := "<a@b.example>:\n" + words + " late (#5.7.1)\n\n"
	rep := []byte(para + "<c@d.example>:\nno (#5.1.1)\n\n")
	b := &bounce{date: time.Unix(0, 0), from: "MAILER-DAEMON", host: "h.example", sender: "s@x.example",
		dsn: true, id: 7, reportHost: "h.example", report: reportOf(rep)}
	head, _ := b.render()
	cut := []byte(para[:maxParagraph] + "\n\n<c@d.example>:\nno (#5.1.1)\n\n")
	want, _ := refRender(&bounce{date: time.Unix(0, 0), from: "MAILER-DAEMON", host: "h.example", sender: "s@x.example",
		dsn: true, id: 7, reportHost: "h.example"}, cut)
	// The fields: those of the paragraph cut short (its code past the
	// cut unseen), then the next paragraph's.
	status := func(h []byte) string { return string(h[bytes.Index(h, []byte("Reporting-MTA:")):]) }
	if got, w := status(head), status(want); got != w {
		t.Errorf("fields differ from those of the paragraph's first %d bytes:\n--- got\n%.600s\n--- want\n%.600s", maxParagraph, got, w)
	}
	if !strings.Contains(strings.ReplaceAll(string(head), "\n", ""), strings.ReplaceAll(para, "\n", "")) {
		t.Error("the text part does not quote the long paragraph whole")
	}
}

// bounceSink takes a streamed bounce without keeping it: it counts its
// bytes, checks its lines (no line over 998 bytes in a DSN; every
// recipient's lines, in order), and every few MB measures the live heap
// (after a collection).
type bounceSink struct {
	n       int64
	line    []byte // the current line's first bytes
	lineLen int
	maxLine int
	// recipient lines: "<userNNNNNNN@" in the text, "Final-Recipient:
	// rfc822; userNNNNNNN@" in the fields; counted and checked in order.
	text, fields int
	want         []byte // check's buffer
	bad          []string
	next         int64
	peak         uint64
}

const sampleEvery = 4 << 20

func (s *bounceSink) Write(p []byte) (int, error) {
	for _, c := range p {
		if c != '\n' {
			if len(s.line) < 64 {
				s.line = append(s.line, c)
			}
			s.lineLen++
			continue
		}
		s.maxLine = max(s.maxLine, s.lineLen)
		switch {
		case bytes.HasPrefix(s.line, []byte("<user")):
			s.check("<user", &s.text)
		case bytes.HasPrefix(s.line, []byte("Final-Recipient: ")):
			s.check("Final-Recipient: rfc822; user", &s.fields)
		}
		s.line, s.lineLen = s.line[:0], 0
	}
	s.n += int64(len(p))
	if s.n >= s.next {
		s.sample()
		s.next += sampleEvery
	}
	return len(p), nil
}

// check counts a recipient's line, which must be the next one's: prefix,
// *count in seven digits, '@'. It allocates nothing (but a complaint):
// the sink's allocations would count as the bounce's.
func (s *bounceSink) check(prefix string, count *int) {
	want := append(s.want[:0], prefix...)
	for d := 1000000; d > 0; d /= 10 {
		want = append(want, byte('0'+*count/d%10))
	}
	want = append(want, '@')
	if !bytes.HasPrefix(s.line, want) && len(s.bad) < 5 {
		s.bad = append(s.bad, fmt.Sprintf("line %q, want %q", s.line, want))
	}
	s.want = want
	*count++
}

func (s *bounceSink) sample() {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.peak = max(s.peak, m.HeapAlloc)
}

// bigParagraph is failure i of a report: about 4.9 KB, as a remote
// reply cut by qmail-rspawn, its reply a line long enough to be broken.
func bigParagraph(i int) []byte {
	reply := strings.Repeat("mailbox unavailable ", 240)
	return BounceParagraph(fmt.Sprintf("user%07d@remote.example", i),
		"192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 "+reply+"\nGiving up on 192.0.2.1.\n")
}

// TestBounceBoundedMemory: the bounce of a 40 MB report is written with
// a live heap of a few hundred KB, not the report's size, and has the
// bytes the report held whole would have made (their count, computed
// from the bounces of one and two of its paragraphs; every recipient in
// order, in both parts of a DSN).
func TestBounceBoundedMemory(t *testing.T) {
	const paras = 8600 // 42 MB
	const limit = 4 << 20
	name := filepath.Join(t.TempDir(), "bounce")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < paras; i++ {
		w.Write(bigParagraph(i))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	orig := "Subject: hi\n\nbody\n"
	for _, dsn := range []bool{false, true} {
		mk := func() *bounce {
			return &bounce{date: time.Unix(1e9, 0), nonce: "n", from: "MAILER-DAEMON", host: "h.example",
				sender: "s@x.example", dsn: dsn, id: 7, reportHost: "h.example", orig: strings.NewReader(orig)}
		}
		one, _ := refRender(mk(), bigParagraph(0))
		two, _ := refRender(mk(), append(bigParagraph(0), bigParagraph(1)...))
		want := int64(len(one)) + int64(paras-1)*int64(len(two)-len(one))

		rf, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := rf.Stat()
		if st.Size() < 40<<20 {
			t.Fatalf("report of %d bytes", st.Size())
		}
		b := mk()
		b.report = io.NewSectionReader(rf, 0, st.Size())
		sink := &bounceSink{}
		var m0, m1, m2 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		err = b.prepare()
		runtime.ReadMemStats(&m1)
		if err == nil {
			err = b.writeHead(sink)
		}
		runtime.ReadMemStats(&m2)
		sink.sample()
		rf.Close()
		if err != nil {
			t.Fatal(err)
		}
		if sink.n != want {
			t.Errorf("dsn %v: head of %d bytes, want %d", dsn, sink.n, want)
		}
		for _, bad := range sink.bad {
			t.Errorf("dsn %v: %s", dsn, bad)
		}
		if sink.text != paras || dsn && sink.fields != paras || !dsn && sink.fields != 0 {
			t.Errorf("dsn %v: %d recipients in the text, %d in the fields; want %d", dsn, sink.text, sink.fields, paras)
		}
		if dsn && sink.maxLine > 998 {
			t.Errorf("a line of %d bytes in the DSN", sink.maxLine)
		}
		if grow := int64(sink.peak) - int64(m0.HeapAlloc); grow > limit {
			t.Errorf("dsn %v: live heap grew by %d bytes while writing a bounce of a %d-byte report (limit %d)", dsn, grow, st.Size(), limit)
		}
		// What the first pass and qmail's format allocate at all is
		// bounded too: buffers, no copy of the report. (A DSN's fields
		// are made of each paragraph in turn, garbage at once.)
		if a := m1.TotalAlloc - m0.TotalAlloc; a > limit {
			t.Errorf("dsn %v: the first pass allocated %d bytes (limit %d)", dsn, a, limit)
		}
		if a := m2.TotalAlloc - m0.TotalAlloc; !dsn && a > limit {
			t.Errorf("qmail's format: writing the bounce allocated %d bytes (limit %d)", a, limit)
		}
		t.Logf("dsn %v: report %d bytes, head %d bytes, live heap +%d KB at most, allocated %d KB (first pass %d KB)",
			dsn, st.Size(), sink.n, (int64(sink.peak)-int64(m0.HeapAlloc))>>10, (m2.TotalAlloc-m0.TotalAlloc)>>10, (m1.TotalAlloc-m0.TotalAlloc)>>10)
	}
}

// TestInjectBounceReaderGone: an injector that stops reading the bounce
// and fails (qmail-queue died) leaves bounce/ID for a later try, and the
// goroutine writing the bounce is not left blocked; one that reads it
// whole is given the bounce and bounce/ID goes.
func TestInjectBounceReaderGone(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	id := queueMsg(t, root, "ann@example.org", "nobody@local.example")
	if err := os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fann@example.org\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	var rep []byte
	for i := 0; i < 100; i++ { // 490 KB: more than the pipe's reader takes at once
		rep = append(rep, bigParagraph(i)...)
	}
	bn := filepath.Join(q, fnFlat("bounce", id))
	if err := os.WriteFile(bn, rep, 0o600); err != nil {
		t.Fatal(err)
	}
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: &log}, now: func() int64 { return 1e9 }}
	run := func() bool {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- s.injectBounce(id) }()
		select {
		case ok := <-done:
			return ok
		case <-time.After(30 * time.Second):
			t.Fatal("injectBounce did not return")
			return false
		}
	}
	s.opt.Inject = func(msg io.Reader, sender string, recips []string) (int, error) {
		io.ReadFull(msg, make([]byte, 1000))
		return 99, errors.New("qmail-queue died")
	}
	if run() {
		t.Error("injectBounce reported success")
	}
	if _, err := os.Stat(bn); err != nil {
		t.Errorf("bounce/ID gone after a failed injection: %v", err)
	}
	if !strings.Contains(log.String(), "warning: trouble injecting bounce message, will try later") {
		t.Errorf("log:\n%s", log.String())
	}

	var got []byte
	s.opt.Inject = func(msg io.Reader, sender string, recips []string) (int, error) {
		got, err = io.ReadAll(msg)
		return 4321, err
	}
	if !run() {
		t.Fatalf("injectBounce failed; log:\n%s", log.String())
	}
	if _, err := os.Stat(bn); !os.IsNotExist(err) {
		t.Errorf("bounce/ID left after the bounce: %v", err)
	}
	if !bytes.Contains(got, rep) || !bytes.HasSuffix(got, []byte("Return-Path: <ann@example.org>\nReceived: (qmail 1 invoked by uid 0); 26 Nov 2026 04:00:00 -0000\nSubject: test\n\nbody\n")) {
		t.Errorf("bounce of %d bytes lacks the report or the message", len(got))
	}
}
