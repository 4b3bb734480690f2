package sched

import (
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// dsnLabels makes the DSN bounce of orig (sent by sender) and returns
// the Content-Transfer-Encoding of the whole and of its third part, the
// copied message, and that part's body.
func dsnLabels(t *testing.T, sender, orig string) (whole, last, body string) {
	t.Helper()
	report := []byte("<a@remote.example>:\nRemote host said: 550 5.1.1 no\n\n")
	b := &bounce{date: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), nonce: "n", from: "MAILER-DAEMON",
		host: "mx.example.org", sender: sender, dbto: "postmaster@mx.example.org", report: reportOf(report),
		dsn: true, id: 4242, reportHost: "mx.example.org", orig: strings.NewReader(orig)}
	head, tail := b.render()
	msg := string(head) + orig + string(tail)
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("bounce does not parse: %v", err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if i == 2 {
			data, _ := io.ReadAll(p)
			return m.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Transfer-Encoding"), string(data)
		}
	}
}

// TestDSNOriginalTransferEncoding: the part quoting the original message
// says binary when the message has a NUL or a line of more than 998
// bytes (RFC 2045 §2.8 keeps both out of 8bit and 7bit data), 8bit when
// it only has 8-bit bytes, nothing when it is 7-bit; the whole message
// says what its most encompassing part says (§6.4).
func TestDSNOriginalTransferEncoding(t *testing.T) {
	long := strings.Repeat("L", 1300)
	cases := []struct {
		name, sender, orig string
		want               string // of the whole and of the last part
	}{
		{"NUL", "s@x.example", "Subject: nul\n\nbefore\x00after\n", "binary"},
		{"NUL in header", "s@x.example", "Subject: n\x00l\n\nbody\n", "binary"},
		{"1300-byte line", "s@x.example", "Subject: long\n\n" + long + "\nend\n", "binary"},
		{"1300-byte header line", "s@x.example", "X-Long: " + long + "\n\nbody\n", "binary"},
		{"1300-byte last line, no LF", "s@x.example", "Subject: long\n\n" + long, "binary"},
		{"NUL and 8-bit", "s@x.example", "Subject: Gr\xc3\xbc\xc3\x9fe\n\nna\xc3\xafve\x00\n", "binary"},
		{"8-bit, then NUL past the first buffer", "s@x.example",
			"Subject: x\n\nna\xc3\xafve\n" + strings.Repeat("0123456789abcdef\n", 5000) + "\x00\n", "binary"},
		{"999-byte line", "s@x.example", "Subject: x\n\n" + strings.Repeat("m", 999) + "\n", "binary"},
		{"998-byte line", "s@x.example", "Subject: x\n\n" + strings.Repeat("m", 998) + "\n", ""},
		{"998-byte line and CR LF", "s@x.example", "Subject: x\r\n\r\n" + strings.Repeat("m", 998) + "\r\n", ""},
		{"998-byte line and bare CR", "s@x.example", "Subject: x\n\n" + strings.Repeat("m", 998) + "\rz\n", "binary"},
		{"long sender", strings.Repeat("s", 990) + "@x.example", "Subject: x\n\nbody\n", "binary"},
		{"8-bit", "s@x.example", "Subject: x\n\nna\xc3\xafve \xff\n" + strings.Repeat("k", 998) + "\n", "8bit"},
		{"ASCII", "s@x.example", "Subject: x\n\nplain body\n", ""},
	}
	for _, tc := range cases {
		whole, last, body := dsnLabels(t, tc.sender, tc.orig)
		if whole != tc.want || last != tc.want {
			t.Errorf("%s: Content-Transfer-Encoding %q of the whole, %q of the original's part; want %q for both",
				tc.name, whole, last, tc.want)
		}
		if !strings.HasSuffix(body, tc.orig) {
			t.Errorf("%s: the last part does not end in the original message", tc.name)
		}
	}
}

// TestScanOrigReadsOnce: the scan reads the message once at most, and
// stops when an 8-bit body and binary data are both found.
func TestScanOrigReadsOnce(t *testing.T) {
	lines := strings.Repeat(strings.Repeat("z", 99)+"\n", 3000)
	msg := "Subject: x\n\n\xff\x00" + lines
	r := &countingReaderAt{r: strings.NewReader(msg)}
	head8, body8, binary := scanOrig(r)
	if head8 || !body8 || !binary {
		t.Errorf("scanOrig = %v, %v, %v; want false, true, true", head8, body8, binary)
	}
	if r.n > 64<<10 {
		t.Errorf("read %d bytes, want the first buffer only", r.n)
	}
	r = &countingReaderAt{r: strings.NewReader(msg[:12] + lines)}
	if head8, body8, binary := scanOrig(r); head8 || body8 || binary {
		t.Errorf("scanOrig = %v, %v, %v; want all false", head8, body8, binary)
	}
	if r.n > int64(len(msg)) {
		t.Errorf("read %d bytes of a %d-byte message", r.n, len(msg))
	}
}

type countingReaderAt struct {
	r *strings.Reader
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}
