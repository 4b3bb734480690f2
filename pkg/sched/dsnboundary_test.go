package sched

import (
	"strings"
	"testing"
	"time"
)

// A DSN whose original message is an earlier DSN of the same id, sent in
// the same second (a bounce forwarded back and bounced again: ids are
// inode numbers and come back), must not reuse that DSN's boundary: RFC
// 2046 5.1.1. Both are made with the same nonce too, so only the scan of
// the copied message can tell them apart.
func TestDSNBoundaryNotInOriginal(t *testing.T) {
	date := time.Date(2026, 11, 27, 12, 8, 34, 0, time.UTC)
	report := []byte("<rejfw@a.test>:\nRemote host said: 550 no\n\n")
	mk := func(sender string, orig string) string {
		b := &bounce{date: date, nonce: "n", from: "MAILER-DAEMON", host: "mx.example.org", sender: sender,
			dbto: "dbl@mx.example.org", report: reportOf(report), dsn: true, id: 10264819, reportHost: "mx.example.org",
			orig: strings.NewReader(orig)}
		head, tail := b.render()
		return string(head) + orig + string(tail)
	}
	first := mk("fw@mx.example.org", "Subject: collide\n\nc\n")
	// The first bounce, forwarded with the empty sender, fails too: the
	// double bounce carries the whole first bounce.
	second := mk("", first)
	types, bodies := checkMIME8bit(t, second)
	if len(types) != 3 {
		t.Fatalf("double bounce has %d parts, want 3: %q\n%s", len(types), types, second)
	}
	if !strings.Contains(bodies[2], "Subject: collide") || !strings.Contains(bodies[2], "Remote host said: 550 no") {
		t.Errorf("last part does not carry the first bounce whole:\n%s", bodies[2])
	}
}

// The boundary is also kept out of the report's text, which quotes what
// remote hosts said.
func TestDSNBoundaryNotInReport(t *testing.T) {
	base := "hqmail-dsn-1-x"
	got := pickBoundary(base, strings.NewReader("<a@b>:\n--"+base+"\n"), strings.NewReader("--"+base+".1 at a line start\n"))
	if got != base+".2" {
		t.Errorf("pickBoundary = %q, want %q", got, base+".2")
	}
	if got := pickBoundary(base, strings.NewReader("not at a line start --"+base+"\n"), nil); got != base {
		t.Errorf("pickBoundary = %q, want %q (the delimiter only counts at a line's start)", got, base)
	}
}
