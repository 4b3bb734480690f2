package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// openData runs HELO, MAIL, RCPT, DATA and leaves the client inside DATA.
func openData(t *testing.T, s *server) *client {
	t.Helper()
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO client.example", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expectPrefix("DATA", "354 ")
	return c
}

// TestDatabytes: a message one byte over databytes gets 552 and is not
// queued; exactly databytes is fine. Size counts LF line ends, without the
// Received line.
func TestDatabytes(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"databytes": "20\n"})
	s := startServer(t, root, loopPeer, nil)
	// 20 bytes after decoding: "Subject: x\n\n" (12) + "1234567\n" (8).
	for _, tc := range []struct {
		msg   string
		reply string
	}{
		{"Subject: x\n\n1234567\n", "250 ok "},
		{"Subject: x\n\n12345678\n", "552 sorry, that message size exceeds my databytes limit (#5.3.4)"},
	} {
		c := openData(t, s)
		c.send(textprotoDot(tc.msg))
		if got := c.last(); !strings.HasPrefix(got, tc.reply) {
			t.Errorf("%q: %q, want %q", tc.msg, got, tc.reply)
		}
		c.expectPrefix("QUIT", "221 ")
	}
	if n := len(q.all()); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}
	// MAIL SIZE= (which counts CR LF) is refused at once only when no
	// message of that size could fit once CRLF became LF: 40 bytes of
	// empty lines are 20.
	c := dial(t, s)
	c.last()
	c.expectPrefix("EHLO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example> SIZE=41", "552 ")
	c.expectPrefix("MAIL FROM:<a@b.example> SIZE=40", "250 ")
	// A client's SIZE for the accepted message above counts its CRs: 23.
	c.expectPrefix("MAIL FROM:<a@b.example> SIZE=23", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("Subject: x\n\n1234567\n"))
	if got := c.last(); !strings.HasPrefix(got, "250 ok ") {
		t.Errorf("SIZE=23 message of 20 bytes: %q, want 250", got)
	}
	// A MAIL refused for its SIZE= leaves the transaction before it
	// alone, as one refused with 555 does (QA rinject): its DATA goes on.
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expectPrefix("MAIL FROM:<c@d.example> SIZE=41", "552 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("Subject: y\n\n1\n"))
	if got := c.last(); !strings.HasPrefix(got, "250 ok ") {
		t.Errorf("message after a MAIL refused for SIZE=: %q, want 250", got)
	}
	if all := q.all(); len(all) != 3 || all[2].Env.Sender != "a@b.example" {
		t.Errorf("queued %+v, want a third message from a@b.example", all)
	}
}

// TestDatabytesHuge streams 100 MB over a 1 MB limit: 552, nothing queued,
// and the server does not buffer the message.
func TestDatabytesHuge(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100 MB; skipped with -short")
	}
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"databytes": "1000000\n"})
	s := startServer(t, root, loopPeer, nil)
	c := openData(t, s)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	line := strings.Repeat("x", 998) + "\r\n"
	block := strings.Repeat(line, 1024) // 1 MB
	blocks := 101                       // 100 MB over the 1 MB limit
	if raceEnabled {
		blocks = 11 // 10 MB: the point (nothing buffered, 552) stands
	}
	go func() {
		io.WriteString(c.conn, "Subject: big\r\n\r\n")
		for i := 0; i < blocks; i++ {
			if _, err := io.WriteString(c.conn, block); err != nil {
				return
			}
		}
		io.WriteString(c.conn, ".\r\n")
	}()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	if got := c.last(); got != "552 sorry, that message size exceeds my databytes limit (#5.3.4)" {
		t.Errorf("got %q", got)
	}
	runtime.ReadMemStats(&after)
	if len(q.all()) != 0 {
		t.Errorf("something was queued")
	}
	// The in-memory fake qmail-queue reads the first MB into memory; the
	// server itself must not hold the other 100 MB.
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 32<<20 {
		t.Errorf("heap grew by %d bytes while receiving 100 MB", grown)
	}
	c.expectPrefix("QUIT", "221 ")
}

// TestHops: 100 Received/Delivered header lines is a loop (554); 99 is not.
// Lines in the body do not count.
func TestHops(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	hdr := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i%2 == 0 {
				b.WriteString("Received: from x\n")
			} else {
				b.WriteString("DELIVERED-To: y\n")
			}
		}
		return b.String()
	}
	// stuffed is n header lines sent on the wire with a leading dot,
	// ".Received: x", which qmail does not count (it counts the lines as
	// sent), although the dot is removed and "Received: x" is queued.
	stuffed := func(n int) string { return strings.Repeat(".Received: x\r\n", n) }
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	const loop = "554 too many hops, this message is looping (#5.4.6)"
	for _, tc := range []struct {
		name, msg, reply string
		wire             string // sent as it is instead of msg, dot-stuffed
	}{
		{"99", hdr(98) + "Received: z\n\nbody\n", "250 ok ", ""},
		{"100", hdr(99) + "received:\tz\n\nbody\n", loop, ""},
		{"Received-SPF counts", hdr(99) + "Received-SPF: pass\n\nbody\n", loop, ""},
		{"body", "Subject: x\n\n" + hdr(150), "250 ok ", ""},
		{"continuation", "X: y\n" + strings.Repeat(" Received: x\n", 150) + "\n", "250 ok ", ""},
		{"dot-stuffed lines", "", "250 ok ", stuffed(100) + crlf(hdr(99)) + "\r\nbody\r\n.\r\n"},
		{"dot-stuffed and 100", "", loop, stuffed(50) + crlf(hdr(100)) + "\r\nbody\r\n.\r\n"},
	} {
		c := openData(t, s)
		if tc.wire != "" {
			c.send(tc.wire)
		} else {
			c.send(textprotoDot(tc.msg))
		}
		if got := c.last(); !strings.HasPrefix(got, tc.reply) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.reply)
		}
	}
	msgs := q.all()
	if n := len(msgs); n != 4 {
		t.Fatalf("%d queued, want 4", n)
	}
	// The dot-stuffed lines were queued without their dot.
	if m := msgs[3].Msg; strings.Count(m, "Received: x\n") != 100 || strings.Contains(m, ".Received") {
		t.Errorf("dot-stuffed lines queued as %q", m)
	}
}

// TestHopCount: the hop count on the lines as sent over the wire, as
// qmail's: any case, "received"/"delivered" at the start of a header line
// (Received-SPF too), no continuation lines, nothing after the empty line,
// and no line sent with a leading dot.
func TestHopCount(t *testing.T) {
	for _, tc := range []struct {
		wire string
		want int
	}{
		{"Received: a\r\nDelivered-To: b\r\nX: c\r\n\r\nReceived: d\r\n", 2},
		{"RECEIVED: a\r\nrEcEiVeD: b\r\nDELIVERED-TO: c\r\n", 3},
		{"Received-SPF: pass\r\nReceivedX\r\nDeliveredX\r\n", 3},
		{"Receive: a\r\nDeliver: b\r\nX-Received: c\r\n", 0},
		{"X: y\r\n Received: a\r\n\tDelivered-To: b\r\n", 0},
		{".Received: a\r\n..Received: b\r\n.Delivered-To: c\r\nReceived: d\r\n", 1},
		{"\r\nReceived: a\r\n", 0},                            // empty header
		{"X: a\r\r\nReceived: b\r\n\r\r\nReceived: c\r\n", 2}, // CR CR LF is no empty line
		{"Rec\reived: a\r\n", 0},
	} {
		var h hopCount
		for i := 0; i < len(tc.wire); i++ {
			h.add(tc.wire[i])
		}
		if h.n != tc.want {
			t.Errorf("%q: %d hops, want %d", tc.wire, h.n, tc.want)
		}
	}
}

// TestBareLF: a LF without CR in DATA gets qmail's 451 at once (even while
// the client waits) and the connection is closed; nothing is queued.
func TestBareLF(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	for _, data := range []string{
		"Subject: x\n",                // the client then waits: no end marker
		"Subject: x\r\n\r\nbody\n.\n", // a bare-LF end marker
		"Subject: x\r\n\r\n.\n.\r\n",
	} {
		c := openData(t, s)
		c.send(data)
		if got := c.last(); got != "451 See https://cr.yp.to/docs/smtplf.html." {
			t.Errorf("%q: got %q", data, got)
		}
		if !c.closed() {
			t.Errorf("%q: connection still open", data)
		}
	}
	oks := s.sessionsDone(t, 3)
	for _, ok := range oks {
		if ok {
			t.Errorf("bare LF session reported success (qmail-smtpd exits 1)")
		}
	}
	if n := len(q.all()); n != 0 {
		t.Errorf("%d queued", n)
	}
}

// TestDisconnectMidData: a client that goes away inside DATA queues nothing.
func TestDisconnectMidData(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c := openData(t, s)
	c.send("Subject: x\r\n\r\nsome body\r\nmore")
	c.conn.Close()
	s.sessionsDone(t, 1)
	if n := len(q.all()); n != 0 {
		t.Errorf("%d queued after disconnect", n)
	}
}

// TestEightBitAndNUL: NUL bytes, invalid UTF-8, lone CRs pass through
// unchanged.
func TestEightBitAndNUL(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	body := "Subject: \xff\xfe bad \xc3\x28 utf8\r\nX-Nul: a\x00b\r\n\r\nline\x00with NUL\r\nlone\rCR\r\n\xe9t\xe9\r\n"
	c := openData(t, s)
	c.send(body + ".\r\n")
	c.expectPrefix("", "250 ok ")
	msgs := q.all()
	if len(msgs) != 1 {
		t.Fatalf("queued %d", len(msgs))
	}
	want := strings.ReplaceAll(body, "\r\n", "\n")
	if got := msgs[0].Msg[strings.Index(msgs[0].Msg, "Subject"):]; got != want {
		t.Errorf("message\n%q\nwant\n%q", got, want)
	}
}

// TestLongLine: a message with a line over the limit (a 1 MB header line,
// a 5 MB body line) is read to its end and then refused with a clear reply,
// as databytes is: a reply sent while the client was still sending reached
// no client (it saw a reset connection and tried again later). Nothing is
// queued, and the session goes on. A line just under the limit passes.
func TestLongLine(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c := openData(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c.conn, "Subject: "+strings.Repeat("y", 1<<20)+"\r\n\r\nx\r\n"+
			strings.Repeat("z", 5<<20)+"\r\n.\r\n")
		done <- err
	}()
	if got := c.last(); got != "552 sorry, that message has a line longer than my limit (#5.3.4)" {
		t.Errorf("got %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("the client could not send the whole message: %v", err)
	}
	if n := len(q.all()); n != 0 {
		t.Errorf("%d queued", n)
	}
	c.expect("MAIL FROM:<a@example.org>", "250 ok")
	c.expect("RCPT TO:<b@example.org>", "250 ok")
	c.expect("DATA", "354 go ahead")
	c.send("Subject: " + strings.Repeat("y", DefaultMaxLine-len("Subject: \r\n")) + "\r\n\r\nx\r\n.\r\n")
	c.expectPrefix("", "250 ok ")
	if n := len(q.all()); n != 1 {
		t.Errorf("%d queued, want the message with the line at the limit", n)
	}
	c.conn.Close()
	// A long command line ends the session too.
	c = dial(t, s)
	c.last()
	go io.WriteString(c.conn, "HELO "+strings.Repeat("h", 1<<20)+"\r\n")
	if got := c.last(); got != "500 sorry, that command line is longer than my limit (#5.5.2)" {
		t.Errorf("long command: %q", got)
	}
	if !c.closed() {
		t.Errorf("connection still open after a too long command")
	}
}

// TestTimeout: a silent client is dropped after timeoutsmtpd, idle
// between commands (its session fails) or inside DATA (qmail's 451
// there too, the session fails, nothing is queued). The client never
// has to act in time itself: in the second session everything up to the
// start of the message is sent in one write before the server takes the
// connection, so the only wait for the client that can run out is the
// one being tested, however slowly this process runs.
func TestTimeout(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"timeoutsmtpd": "1\n"})
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	if got := c.last(); got != "451 timeout (#4.4.2)" {
		t.Errorf("after idling: %q", got)
	}
	if oks := s.sessionsDone(t, 1); oks[0] {
		t.Errorf("timed-out session reported success")
	}
	c, result := serveSent(t, s.cfg, "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nSubject: x\r\n")
	for _, want := range []string{"220 ", "250 ", "250 ", "250 ", "354 "} {
		if got := c.last(); !strings.HasPrefix(got, want) {
			t.Fatalf("before the message: %q, want %q...", got, want)
		}
	}
	if got := c.last(); got != "451 timeout (#4.4.2)" {
		t.Errorf("timeout in DATA: %q", got)
	}
	if !c.closed() {
		t.Errorf("connection still open after the timeout in DATA")
	}
	select {
	case ok := <-result:
		if ok {
			t.Errorf("session timed out in DATA reported success")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("session not over 20s after its timeout")
	}
	if n := len(q.all()); n != 0 {
		t.Errorf("%d messages queued from a DATA that timed out", n)
	}
}

// serveSent connects a client that sends input first, then serves the
// connection with Serve. The session's result comes on the channel.
func serveSent(t *testing.T, cfg *Config, input string) (*client, <-chan bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := &client{t: t, conn: conn, r: bufio.NewReaderSize(conn, 1<<16)}
	c.send(input)
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ok := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		ok <- Serve(sc, cfg, loopPeer, nil)
	}()
	t.Cleanup(func() {
		conn.Close()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("session still running 30s after the test")
		}
	})
	return c, ok
}

// TestSlowSteadyClient: timeoutsmtpd (5 s) bounds each wait for the
// client, not a whole command or the whole DATA transfer: a client that
// types a command a piece a second, and one that sends its message a
// line a second, for longer than the timeout, are both served. The two
// sessions run side by side so that the test takes the time once; the
// 4 s between a send and the timeout leave room for a slow test process.
func TestSlowSteadyClient(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"timeoutsmtpd": "5\n"})
	s := startServer(t, root, loopPeer, nil)
	data := openData(t, s)
	cmd := dial(t, s)
	cmd.last()
	// Seven pieces, each followed by a second's pause: the command and
	// the message both take more than 7 s, over the 5 s timeout.
	for i, piece := range []string{"N", "OO", "P ", "sl", "ow", "ly", "\r"} {
		cmd.send(piece)
		data.send(fmt.Sprintf("line %d\r\n", i))
		time.Sleep(time.Second)
	}
	cmd.send("\n")
	data.send(".\r\n")
	if got := cmd.last(); got != "250 ok" {
		t.Errorf("after a slow, steady command: %q", got)
	}
	if got := data.last(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("after a slow, steady DATA: %q", got)
	}
	if msgs := q.all(); len(msgs) != 1 || !strings.Contains(msgs[0].Msg, "line 0\nline 1\n") || !strings.Contains(msgs[0].Msg, "line 6\n") {
		t.Errorf("queued %+v", msgs)
	}
}

// TestBody checks the DATA decoder on its own.
func TestBody(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int64
		out   string
		err   error
	}{
		{"crlf", "a\r\nb\r\n", 0, "a\nb\n", nil},
		{"lone cr kept", "a\rb\r\r\n", 0, "a\rb\r\n", nil},
		{"bare lf", "a\r\nb\nc", 0, "a\n", errBareLF},
		{"limit exact", "1234\r\n", 5, "1234\n", nil},
		{"limit over", "12345\r\n", 5, "", replyDatabytes},
		{"empty", "", 0, "", nil},
	}
	for _, tc := range tests {
		for _, size := range []int{1, 2, 3, 64 << 10} {
			b := newBody(strings.NewReader(tc.in), tc.limit, nil)
			var out bytes.Buffer
			buf := make([]byte, size)
			var err error
			for i := 0; i < 1e6; i++ {
				var n int
				n, err = b.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if err == io.EOF {
				err = nil
			}
			if err != tc.err {
				t.Errorf("%s/%d: err %v, want %v", tc.name, size, err, tc.err)
			}
			// With a limit, what was passed on before the overflow is
			// irrelevant (the message is not queued).
			if tc.err == nil && out.String() != tc.out {
				t.Errorf("%s/%d: %q, want %q", tc.name, size, out.String(), tc.out)
			}
		}
	}
}

// TestBDAT: CHUNKING is not offered and BDAT is an unknown command, as
// in qmail; the chunk that follows is read as commands.
func TestBDAT(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.send("EHLO x\r\n")
	if ehlo := strings.Join(c.reply(), "|"); strings.Contains(ehlo, "CHUNKING") {
		t.Errorf("EHLO offers CHUNKING: %s", ehlo)
	}
	c.expect("MAIL FROM:<a@b.example>", "250 ok")
	c.expect("RCPT TO:<u@example.org>", "250 ok")
	c.send("BDAT 7 LAST\r\nx\r\n")
	c.expect("", "502 unimplemented (#5.5.1)")
	c.expect("", "502 unimplemented (#5.5.1)")
	c.expectPrefix("QUIT", "221 ")
	if msgs := q.all(); len(msgs) != 0 {
		t.Fatalf("queued %+v", msgs)
	}
}

// TestVerbFoldsASCIIOnly: a verb matches its command in any case of its
// ASCII letters, and only those, as qmail compares them: "MA\u0130L" (a
// capital I with a dot, which Unicode lowers to i) is no MAIL.
func TestVerbFoldsASCIIOnly(t *testing.T) {
	useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("eHlO x", "250")
	c.expect("MA\u0130L FROM:<a@b.example>", "502 unimplemented (#5.5.1)")
	c.expect("mAiL FROM:<a@b.example>", "250 ok")
	c.expectPrefix("QUIT", "221 ")
}
