package sched

import (
	"strings"
	"testing"
	"time"
)

// TestBounceHostLineBreak: a CR (or LF) in control/bouncefrom or
// bouncehost, which qmail keeps as part of the value, is made '_' in
// every line of the bounce that names it: the From: line did it, and the
// "Hi." line wrote the CR as it was, a line break in the text (qmail-remote
// then sent the rest as a line of its own, its dot doubled).
func TestBounceHostLineBreak(t *testing.T) {
	for _, dsn := range []bool{false, true} {
		b := &bounce{date: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), nonce: "n",
			from: "Mail Delivery System\r", host: "bh.test\r", sender: "s@x.example",
			dbto: "postmaster@bh.test", report: reportOf([]byte("<a@x.example>:\nno\n\n")),
			dsn: dsn, id: 7, reportHost: "bh.test\r", orig: strings.NewReader("Subject: x\n\nx\n")}
		head, _ := b.render()
		h := string(head)
		if strings.Contains(h, "\r") {
			t.Errorf("dsn %v: the bounce has a CR: %q", dsn, h)
		}
		for _, want := range []string{"From: \"Mail Delivery System_\"@bh.test_\n", "Hi. This is the qmail-send program at bh.test_.\n"} {
			if !strings.Contains(h, want) {
				t.Errorf("dsn %v: no line %q in %q", dsn, want, h)
			}
		}
	}
}
