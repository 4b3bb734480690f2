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
)

// FuzzBounceReport: bounce/ID paragraphs as the scheduler writes them
// (BounceParagraph) are read back by parseReport as the same recipients,
// and the DSN that render makes of them is a multipart/report whose
// delivery-status part has one recipient group per failure, with no CR
// and no line over 998 bytes.
func FuzzBounceReport(f *testing.F) {
	f.Add("a@b", "Remote host said: 550 5.1.1 no such user\n", "c@d", "")
	f.Add("", "x\n\n\ny", "\xc3\xa9@x", "Remote host said: 550-a\n550 b\n")
	f.Add("a\"b@c", "#5.0.0\r\n", "x@y", "\n<z@w>:\nfake")
	f.Add("\r", "0", "0", "0")
	f.Fuzz(func(t *testing.T, r1, t1, r2, t2 string) {
		// A paragraph shows CR, LF and NUL of an address as '_' (a CR
		// had reached Final-Recipient as it was, found by this target).
		for _, r := range []string{r1, r2} {
			if len(r) > 900 {
				return
			}
		}
		rep := append(BounceParagraph(r1, t1), BounceParagraph(r2, t2)...)
		fails := parseReport(rep)
		if len(fails) != 2 || fails[0].recip != noLineBreak(r1) || fails[1].recip != noLineBreak(r2) {
			t.Fatalf("report %q read as %+v", rep, fails)
		}
		b := &bounce{date: time.Unix(1e9, 0), from: "MAILER-DAEMON", host: "h.example", sender: "s@x.example",
			report: reportOf(rep), dsn: true, id: 7, reportHost: "h.example"}
		head, tail := b.render()
		msg := append(append(head, "Subject: orig\n\nbody\n"...), tail...)
		for _, l := range bytes.Split(head, []byte("\n")) {
			if len(l) > 998 {
				t.Fatalf("line of %d bytes in %q", len(l), head)
			}
		}
		m, err := mail.ReadMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("%q: %v", msg, err)
		}
		_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(m.Body, params["boundary"])
		if _, err := mr.NextPart(); err != nil { // the text part
			t.Fatalf("%q: %v", msg, err)
		}
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("%q: no delivery-status part: %v", msg, err)
		}
		ds, _ := io.ReadAll(p)
		if bytes.IndexByte(ds, '\r') >= 0 {
			t.Fatalf("CR in the delivery-status part %q", ds)
		}
		groups := strings.Split(strings.TrimRight(string(ds), "\n"), "\n\n")
		if len(groups) != 3 {
			t.Fatalf("%d groups in the delivery-status part %q", len(groups), ds)
		}
		for _, g := range groups[1:] {
			if !strings.HasPrefix(g, "Final-Recipient: ") {
				t.Fatalf("group %q in %q", g, ds)
			}
		}
	})
}
