package sched

import (
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// injectSenders are envelope senders with a line break (qmail-inject -f,
// qmail-queue run directly), the To: line their bounce must have, and
// the header fields they try to add.
var injectSenders = []struct {
	sender, to string
	fields     []string
}{
	{"a\nSubject: forged@sink.test", `"a_Subject: forged"@sink.test`, []string{"Subject: forged"}},
	// The LF in the domain: the last '@' is the injected field's.
	{"a@sink.test\nBcc: victim@x", `"a@sink.test_Bcc: victim"@x`, []string{"Bcc:"}},
	{"a\rX-Inj: 1@localhost", `"a_X-Inj: 1"@localhost`, []string{"X-Inj:"}},
	{"a\r\nX-Inj: 1@localhost", `"a__X-Inj: 1"@localhost`, []string{"X-Inj:"}},
	{"a@b.test\r\nContent-Type: text/html\nX-Inj: 2", `a@b.test__Content-Type: text/html_X-Inj: 2`, []string{"Content-Type: text/html", "X-Inj:"}},
}

// physLines splits text at every LF and every CR: a line of the bounce is
// what any reader may take for one.
func physLines(s string) []string {
	return strings.FieldsFunc(strings.ReplaceAll(s, "\r\n", "\n"), func(r rune) bool { return r == '\n' || r == '\r' })
}

// A sender with a CR or LF must not add header fields to its bounce, in
// either format: its To: line and the copied message's Return-Path line
// are one line each, the address's line breaks shown as '_'.
func TestBounceSenderLineBreak(t *testing.T) {
	date := time.Date(2026, 11, 26, 4, 5, 6, 0, time.UTC)
	// A recipient with a CR too (qmail-inject lets one into a quoted
	// local part): the DSN's fields keep it on its line.
	report := []byte("<r\rX-Inj: 3@rej.test>:\nRemote host said: 550 5.1.1 no\n\n" +
		"<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n")
	orig := "Subject: x\n\nb\n"
	for _, tc := range injectSenders {
		for _, dsn := range []bool{false, true} {
			b := &bounce{date: date, nonce: "n", from: "MAILER-DAEMON", host: "mx.example.org", sender: tc.sender,
				dbto: "postmaster@mx.example.org", report: reportOf(report), dsn: dsn, id: 4242,
				reportHost: "mx.example.org", orig: strings.NewReader(orig)}
			head, tail := b.render()
			msg := string(head) + orig + string(tail)
			top, _, ok := strings.Cut(string(head), "\n\n")
			if !ok {
				t.Fatalf("sender %q dsn %v: no header block:\n%s", tc.sender, dsn, head)
			}
			var to, subject int
			for _, l := range physLines(top) {
				for _, f := range tc.fields {
					if strings.HasPrefix(l, f) {
						t.Errorf("sender %q dsn %v: header line %q injected:\n%s", tc.sender, dsn, l, top)
					}
				}
				if strings.HasPrefix(l, "To:") {
					to++
					if l != "To: "+tc.to {
						t.Errorf("sender %q dsn %v: %q, want %q", tc.sender, dsn, l, "To: "+tc.to)
					}
				}
				if strings.HasPrefix(l, "Subject:") {
					subject++
				}
			}
			if to != 1 || subject != 1 {
				t.Errorf("sender %q dsn %v: %d To: and %d Subject: lines, want 1 each:\n%s", tc.sender, dsn, to, subject, top)
			}
			// The head ends with the Return-Path line, after an empty one.
			i := strings.LastIndex(string(head), "\n\n")
			rp := physLines(string(head[i+2:]))
			if want := "Return-Path: <" + tc.to + ">"; len(rp) != 1 || rp[0] != want {
				t.Errorf("sender %q dsn %v: Return-Path lines %q, want [%q]", tc.sender, dsn, rp, want)
			}
			if !dsn {
				continue
			}
			types, bodies := checkMIME8bit(t, msg)
			for _, l := range physLines(bodies[1]) {
				if strings.HasPrefix(l, "X-Inj") {
					t.Errorf("sender %q: %s part has line %q:\n%s", tc.sender, types[1], l, bodies[1])
				}
			}
			if !strings.Contains(bodies[1], "Final-Recipient: rfc822; \"r_X-Inj: 3\"@rej.test\n") {
				t.Errorf("sender %q: recipient field not on one line:\n%s", tc.sender, bodies[1])
			}
			if got := physLines(bodies[2]); len(got) < 1 || got[0] != "Return-Path: <"+tc.to+">" {
				t.Errorf("sender %q: message part starts %q", tc.sender, got)
			}
		}
	}
}

// Addresses without CR, LF or NUL are shown as qmail shows them, byte for
// byte (scheduler spec §8).
func TestHeaderAddressUnchanged(t *testing.T) {
	for _, a := range []string{"", "ann@example.org", "a b@example.org", "\"q\"@x", "a\\b@x", "\x01\t@x",
		".a@x", "j\xc3\xb6rg@example.org", "noat", "@x", "a@b@c", "postmaster@mx.example.org"} {
		if got, want := headerAddress(a), address.Quote(a); got != want {
			t.Errorf("headerAddress(%q) = %q, want %q", a, got, want)
		}
	}
	if got := headerAddress("a\x00b@x"); got != "a_b@x" {
		t.Errorf("headerAddress with NUL = %q, want %q", got, "a_b@x")
	}
}

// End to end: the bounce of a sender with a line break goes to the
// sender as it is (only the header lines show it otherwise).
func TestBounceSenderLineBreakEnvelope(t *testing.T) {
	for _, format := range []string{"", "dsn\n"} {
		root := newTree(t)
		if format != "" {
			ctl(t, root, "bounceformat", format)
		}
		sender := "a@sink.test\nBcc: victim@x"
		queueMsgText(t, root, "Subject: x\n\nb\n", sender, "nobody@local.example")
		local := func(spawnproto.Request) (byte, string) { return 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n" }
		e := start(t, root, local, nil)
		var inj injected
		select {
		case inj = <-e.injects:
		case <-time.After(30 * time.Second):
			t.Fatalf("no bounce; log:\n%s", e.log.String())
		}
		if inj.sender != "" || len(inj.recips) != 1 || inj.recips[0] != sender {
			t.Errorf("format %q: bounce from %q to %q, want from \"\" to %q", format, inj.sender, inj.recips, sender)
		}
		top, _, _ := strings.Cut(inj.msg, "\n\n")
		for _, l := range physLines(top) {
			if strings.HasPrefix(l, "Bcc:") {
				t.Errorf("format %q: header line %q injected:\n%s", format, l, top)
			}
		}
	}
}

// A line of the report longer than 998 bytes is broken in the DSN's text
// part, and the piece after the break starts a line: a delimiter there
// ends the part (RFC 2046 5.1.1), so the boundary must not be that one.
func TestDSNBoundaryNotAtLineBreak(t *testing.T) {
	base := "hqmail-dsn-4242-26.Nov.2026.04.05.06.-0000-n"
	cases := []string{
		// The delimiter at the 999th byte of a line.
		"<a@b>:\nRemote host said: 550 " + strings.Repeat("x", 998-len("Remote host said: 550 ")) + "--" + base + "--\ntail\n\n",
		// At the second break of a longer line.
		"<a@b>:\n" + strings.Repeat("y", 2*998) + "--" + base + "\n\n",
		// After a bare CR, a line break for some readers.
		"<a@b>:\nRemote host said: 550 no\r--" + base + "\n\n",
	}
	for i, rep := range cases {
		if got := pickBoundary(base, strings.NewReader(rep), nil); got == base {
			t.Errorf("case %d: pickBoundary = %q, a line of the text part starts with its delimiter", i, got)
		}
		date := time.Date(2026, 11, 26, 4, 5, 6, 0, time.UTC)
		b := &bounce{date: date, nonce: "n", from: "MAILER-DAEMON", host: "mx.example.org", sender: "ann@example.org",
			report: reportOf([]byte(rep)), dsn: true, id: 4242, reportHost: "mx.example.org",
			orig: strings.NewReader("Subject: x\n\nb\n")}
		head, tail := b.render()
		if b.boundary == base {
			t.Errorf("case %d: the bounce's boundary is %q", i, base)
		}
		if i < 2 { // Go's multipart reader takes no bare CR for a line break
			checkMIME8bit(t, string(head)+"Subject: x\n\nb\n"+string(tail))
		}
	}
	// A delimiter inside a line no break reaches still does not count.
	rep := "<a@b>:\n" + strings.Repeat("z", 500) + "--" + base + "\n\n"
	if got := pickBoundary(base, strings.NewReader(rep), nil); got != base {
		t.Errorf("pickBoundary = %q, want %q", got, base)
	}
}
