package sched

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

func has8bit(b []byte) bool { return !isASCII(b) }

// checkMIME8bit parses a DSN bounce as MIME and fails when an entity
// (the whole, or one of its three parts) carries 8-bit bytes without
// Content-Transfer-Encoding: 8bit (RFC 2045 §6.1: it would be read as
// 7bit; §6.4: a multipart is 8bit when a part is). It returns the parts'
// content types and bodies.
func checkMIME8bit(t *testing.T, msg string) (types []string, bodies []string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("bounce does not parse: %v\n%s", err, msg)
	}
	body, _ := io.ReadAll(m.Body)
	if has8bit(body) && !strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "8bit") {
		t.Errorf("multipart/report carries 8-bit bytes without Content-Transfer-Encoding: 8bit\n%s", msg)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		if has8bit(b) && !strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "8bit") {
			t.Errorf("part %q carries 8-bit bytes without Content-Transfer-Encoding: 8bit:\n%s", ct, b)
		}
		types = append(types, ct)
		bodies = append(bodies, string(b))
	}
	if len(types) != 3 {
		t.Fatalf("%d parts, want 3:\n%s", len(types), msg)
	}
	return types, bodies
}

// TestDSNUTF8Envelope is QA's report: a UTF-8 sender, a UTF-8 local
// recipient and a remote one whose local part has a space, 8-bit body.
// The report part is message/global-delivery-status with RFC 6533's utf-8
// address type (quoted where RFC 6531 needs it), the original is
// message/global (its Return-Path line is UTF-8), and every 8-bit entity
// says 8bit.
func TestDSNUTF8Envelope(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "bounceformat", "dsn\n")
	queueMsgText(t, root, "Subject: x\n\nna\xc3\xafve\n", "j\xc3\xb6rg@mx.example.org",
		"f\xc3\xa4il@local.example", "Jos\xc3\xa9 \xc3\x91@rej.test")
	local := func(spawnproto.Request) (byte, string) { return 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n" }
	remote := func(spawnproto.Request) (byte, string) {
		return 'D', "192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 Gr\xc3\xbc\xc3\x9fe, unknown\nGiving up on 192.0.2.1.\n"
	}
	e := start(t, root, local, remote)
	var inj injected
	select {
	case inj = <-e.injects:
	case <-time.After(30 * time.Second):
		t.Fatalf("no bounce; log:\n%s", e.log.String())
	}
	msg := inj.msg
	if !strings.Contains(msg, "Content-Type: multipart/report; report-type=global-delivery-status;\n") {
		t.Errorf("report-type is not global-delivery-status (RFC 6522: the second part's subtype):\n%s", msg)
	}
	types, bodies := checkMIME8bit(t, msg)
	want := []string{"text/plain; charset=utf-8", "message/global-delivery-status", "message/global"}
	for i := range want {
		if types[i] != want[i] {
			t.Errorf("part %d is %q, want %q", i+1, types[i], want[i])
		}
	}
	status := strings.ReplaceAll(bodies[1], "\n ", " ") // unfolded
	for _, w := range []string{
		"\nFinal-Recipient: utf-8; f\xc3\xa4il@local.example\nAction: failed\nStatus: 5.1.1\n",
		"\nFinal-Recipient: utf-8; \"Jos\xc3\xa9 \xc3\x91\"@rej.test\nAction: failed\nStatus: 5.1.1\n",
		// One '?' per byte, as qmail-send(8) says.
		"Diagnostic-Code: x-qmail; 192.0.2.1 does not like recipient. Remote host said: 550 5.1.1 Gr????e, unknown",
	} {
		if !strings.Contains(status, w) {
			t.Errorf("status part lacks %q:\n%s", w, status)
		}
	}
	if !strings.HasPrefix(bodies[2], "Return-Path: <") || !strings.Contains(bodies[2], "\n\nna\xc3\xafve\n") {
		t.Errorf("original part:\n%s", bodies[2])
	}
}

// TestDSNQuotedRecipient: an ASCII address whose local part needs quotes
// is quoted in the rfc822 address type, and the DSN stays 7-bit.
func TestDSNQuotedRecipient(t *testing.T) {
	report := []byte("<Jose N@rej.test>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 no\n\n" +
		"<plain@rej.test>:\nno (#5.1.1)\n\n")
	b := &bounce{date: time.Unix(0, 0), from: "MAILER-DAEMON", host: "mx.example.org", sender: "ann@example.org",
		report: reportOf(report), dsn: true, id: 1, reportHost: "mx.example.org"}
	head, tail := b.render()
	msg := string(head) + "Subject: x\n\nbody\n" + string(tail)
	for _, w := range []string{
		"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n",
		"\nFinal-Recipient: rfc822; \"Jose N\"@rej.test\n",
		"\nFinal-Recipient: rfc822; plain@rej.test\n",
		"report-type=delivery-status;",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("DSN lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "Content-Transfer-Encoding") {
		t.Errorf("a 7-bit DSN labelled 8bit:\n%s", msg)
	}
	checkMIME8bit(t, msg)
}

// TestDSN8BitOriginal: with an ASCII envelope, an original with 8-bit
// bytes only in its body is message/rfc822 labelled 8bit; one with 8-bit
// header fields is RFC 6532's message/global; the status part stays
// RFC 3464's message/delivery-status. An ASCII original read through
// orig gives today's output byte for byte.
func TestDSN8BitOriginal(t *testing.T) {
	report := []byte("<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n")
	tests := []struct {
		mess, part string
	}{
		{"Subject: x\n\nna\xc3\xafve\n", "message/rfc822"},
		{"Subject: Gr\xc3\xbc\xc3\x9fe\n\nbody\n", "message/global"},
		{"Subject: x\r\n\r\nna\xefve\n", "message/rfc822"},
		{"\nSubject: na\xc3\xafve\n", "message/rfc822"}, // no header: all body
	}
	for _, tc := range tests {
		b := &bounce{date: time.Unix(0, 0), from: "MAILER-DAEMON", host: "mx.example.org", sender: "ann@example.org",
			report: reportOf(report), dsn: true, id: 1, reportHost: "mx.example.org", orig: strings.NewReader(tc.mess)}
		head, tail := b.render()
		msg := string(head) + tc.mess + string(tail)
		types, _ := checkMIME8bit(t, msg)
		if types[1] != "message/delivery-status" || types[2] != tc.part {
			t.Errorf("%q: parts %q, want message/delivery-status and %s", tc.mess, types, tc.part)
		}
	}

	date := time.Date(2026, 11, 26, 4, 5, 6, 0, time.UTC)
	report = []byte("<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n" +
		"<joe@remote.example>:\nConnected to 192.0.2.1 but sender was rejected.\nRemote host said: 553 no\n/\n\n")
	mess := "Received: (qmail 1 invoked by uid 0); 26 Nov 2026 04:00:00 -0000\nSubject: hi\n\nbody\n"
	b := &bounce{date: date, from: "MAILER-DAEMON", host: "mx.example.org", sender: "ann@example.org",
		dbto: "postmaster@mx.example.org", report: reportOf(report), dsn: true, id: 4242, reportHost: "mx.example.org",
		orig: strings.NewReader(mess)}
	head, tail := b.render()
	golden(t, "dsn.golden", append(append(head, mess...), tail...))
}

// TestDSNBreakLinesUTF8: the text part breaks a long line of a remote
// reply at a character boundary, never inside a UTF-8 sequence; text
// that is no UTF-8 is broken at 998 bytes as before.
func TestDSNBreakLinesUTF8(t *testing.T) {
	for pad := 0; pad < 4; pad++ {
		reply := strings.Repeat("x", 990+pad) + strings.Repeat("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80", 400)
		report := []byte("<a@remote.example>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 " + reply + "\n\n")
		b := &bounce{date: time.Unix(0, 0), from: "MAILER-DAEMON", host: "mx.example.org", sender: "ann@example.org",
			report: reportOf(report), dsn: true, id: 1, reportHost: "mx.example.org"}
		head, tail := b.render()
		msg := string(head) + "Subject: x\n\nbody\n" + string(tail)
		types, bodies := checkMIME8bit(t, msg)
		if types[0] != "text/plain; charset=utf-8" {
			t.Errorf("text part is %q", types[0])
		}
		text := bodies[0]
		for _, l := range strings.Split(text, "\n") {
			if len(l) > 998 {
				t.Errorf("a text line of %d bytes", len(l))
			}
			if !utf8.ValidString(l) {
				t.Errorf("pad %d: a line broken inside a character: ...%q", pad, l[max(0, len(l)-8):])
			}
		}
		if !strings.Contains(strings.ReplaceAll(text, "\n", ""), "Remote host said: 550 "+reply) {
			t.Errorf("the long reply lost bytes")
		}
	}
	// Not UTF-8 (Latin-1): 998 bytes a line, as before.
	latin := strings.Repeat("\xfc", 2500)
	got := breakLines(latin, 998)
	if want := latin[:998] + "\n" + latin[998:1996] + "\n" + latin[1996:]; got != want {
		t.Errorf("Latin-1 line broken elsewhere than every 998 bytes")
	}
	ascii := strings.Repeat("y", 2500)
	if got := breakLines(ascii, 998); got != ascii[:998]+"\n"+ascii[998:1996]+"\n"+ascii[1996:] {
		t.Errorf("ASCII line broken elsewhere than every 998 bytes")
	}
}

// TestDSNDiagnosticPerByte: Diagnostic-Code shows each byte outside
// printable ASCII as one '?' (qmail-send(8)), UTF-8 or not.
func TestDSNDiagnosticPerByte(t *testing.T) {
	report := []byte("<a@remote.example>:\nRemote host said: 550 5.1.1 Gr\xc3\xbc\xc3\x9fe M\xfcller\n\n")
	f := parseReport(report)
	if len(f) != 1 {
		t.Fatalf("%d paragraphs", len(f))
	}
	if want := "Remote host said: 550 5.1.1 Gr????e M?ller"; f[0].diag != want {
		t.Errorf("diag %q, want %q", f[0].diag, want)
	}
}
