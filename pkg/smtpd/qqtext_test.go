package smtpd

import (
	"io"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// TestQueueTextLineEnds: a queue program's own failure text (fd 6, exit
// 82) with a CR LF in it is a reply of two lines, each with its code, and
// no CR of the text is left before the line's own CR LF. It was
// "554-line1\r\r\n554 250 fake\r\n" (QA rsmtpd).
func TestQueueTextLineEnds(t *testing.T) {
	old := queue
	queue = func(opt qq.Options, msg io.Reader, env *qq.Envelope) (int, error) {
		io.Copy(io.Discard, msg)
		return 1, &qerr.Error{Perm: true, Text: "line1\r\n250 fake"}
	}
	t.Cleanup(func() { queue = old })
	s := startServer(t, testRoot(t, nil), loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	var got strings.Builder
	for range 10 {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the reply: %v (so far %q)", err, got.String())
		}
		got.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			break
		}
	}
	if want := "554-line1\r\n554 250 fake\r\n"; got.String() != want {
		t.Errorf("reply %q, want %q", got.String(), want)
	}
}
