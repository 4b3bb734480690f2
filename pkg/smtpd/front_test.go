package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"math"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct{ arg, addr, rest string }{
		{"FROM:<a@b.example>", "a@b.example", ""},
		{"FROM:<>", "", ""},
		{"FROM:<a@b.example> SIZE=10 BODY=8BITMIME", "a@b.example", " SIZE=10 BODY=8BITMIME"},
		{"FROM: a@b.example SIZE=10", "a@b.example", "SIZE=10"},
		{"FROM:a@b.example", "a@b.example", ""},
		{"TO:<postmaster>", "postmaster", ""},
		{"TO:<@relay.example,@r2:u@example.org>", "u@example.org", ""},
		{"TO:<@relay.example>", "", ""},
		{`TO:<"a b>c"@example.org>`, "a b>c@example.org", ""},
		{`TO:<a\>b@example.org>`, "a>b@example.org", ""},
		{`TO:<a\"b@example.org>`, `a"b@example.org`, ""},
		{"TO:<unterminated@example.org", "unterminated@example.org", ""},
		{"garbage", "", ""},
		{"", "", ""},
		{"TO:", "", ""},
		{"junk <x@y> more", "x@y", " more"},
		{"TO:<u@example.org>trailing", "u@example.org", "trailing"},
	}
	for _, tc := range tests {
		addr, rest := parseAddr(tc.arg)
		if addr != tc.addr || rest != tc.rest {
			t.Errorf("parseAddr(%q) = %q, %q; want %q, %q", tc.arg, addr, rest, tc.addr, tc.rest)
		}
	}
}

func TestSizeParam(t *testing.T) {
	tests := []struct {
		rest string
		n    int64
	}{
		{"", 0}, {" SIZE=100", 100}, {" size=7 BODY=8BITMIME", 7}, {" SIZE=x", 0}, {" SIZE=", 0}, {" BODY=7BIT SIZE=5", 5},
		{" SIZE=18446744073709551617", math.MaxInt64}, {" SIZE=-18446744073709551617", 0},
	}
	for _, tc := range tests {
		if n := sizeParam(tc.rest); n != tc.n {
			t.Errorf("sizeParam(%q) = %d, want %d", tc.rest, n, tc.n)
		}
	}
}

// recConn records what is written to it.
type recConn struct {
	net.Conn
	out bytes.Buffer
}

func (c *recConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// TestFrontWrite: go-smtp's replies are rewritten whole, however they are
// split into writes, and never reordered, dropped or merged.
func TestFrontWrite(t *testing.T) {
	tests := []struct {
		name string
		act  replyAction
		in   string
		want string
	}{
		{"replace", expect(250, textNoop), "250 2.0.0 Roger, accepting mail from <>\r\n", "250 ok\r\n"},
		{"other code passes", expect(250, textNoop), "553 sorry (#5.7.1)\r\n", "553 sorry (#5.7.1)\r\n"},
		{"multi-line replaced", expect(250, "250-a\n250 b"), "250-Hello x\r\n250-PIPELINING\r\n250 SIZE\r\n", "250-a\r\n250 b\r\n"},
		{"only the first reply", expect(250, textNoop), "250 2.0.0 x\r\n250 2.0.0 y\r\n", "250 ok\r\n250 2.0.0 y\r\n"},
		{"drop", drop(250), "250 2.0.0 Session reset\r\n221 bye\r\n", "221 bye\r\n"},
		{"drop keeps a failure", drop(250), "451 4.0.0 no\r\n", "451 4.0.0 no\r\n"},
		{"no action", nil, "500 x\r\n", "500 x\r\n"},
	}
	for _, tc := range tests {
		for split := 0; split <= len(tc.in); split++ {
			rc := &recConn{}
			f := &front{raw: rc, act: tc.act}
			f.Write([]byte(tc.in[:split]))
			f.Write([]byte(tc.in[split:]))
			if got := rc.out.String(); got != tc.want {
				t.Errorf("%s, split at %d: %q, want %q", tc.name, split, got, tc.want)
			}
		}
	}
	// A reply that never ends is passed on once it exceeds maxReply.
	rc := &recConn{}
	f := &front{raw: rc}
	f.Write(bytes.Repeat([]byte("x"), maxReply+1))
	if rc.out.Len() != maxReply+1 || len(f.wbuf) != 0 {
		t.Errorf("unbounded reply: %d written, %d held", rc.out.Len(), len(f.wbuf))
	}
}

// TestReceivedHelo: the Received line shows the whole HELO argument (as
// qmail's, with '?' for the spaces), none before any HELO, and an empty
// one for an empty HELO.
func TestReceivedHelo(t *testing.T) {
	tests := []struct{ helo, want string }{
		{"", "Received: from localhost (127.0.0.1)\n"},
		{"HELO two words\r\n", "Received: from localhost (HELO two?words) (127.0.0.1)\n"},
		{"HELO\r\n", "Received: from localhost (HELO ) (127.0.0.1)\n"},
		{"HELO foo\x00bar\r\nNOOP\x00 x\r\n", "Received: from localhost (HELO foo) (127.0.0.1)\n"},
		// A NUL before the first space ends the line: no argument.
		{"HELO\x00 foo\r\n", "Received: from localhost (HELO ) (127.0.0.1)\n"},
		{"EHLO   LOCALHOST\r\n", "Received: from localhost (127.0.0.1)\n"},
		{"helo a\r\nhelo b\r\n", "Received: from localhost (HELO b) (127.0.0.1)\n"},
	}
	for _, tc := range tests {
		q := useMemQueue(t)
		s := startServer(t, testRoot(t, nil), loopPeer, nil)
		c := dial(t, s)
		c.last()
		c.send(tc.helo + "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
		for {
			if l := c.last(); strings.HasPrefix(l, "221 ") {
				break
			}
		}
		msgs := q.all()
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Msg, tc.want) {
			t.Errorf("%q: queued %+v, want %q", tc.helo, msgs, tc.want)
		}
	}
}

// TestPipelinedAfterData: commands sent in the same write as the end of
// the message are read as commands, in order.
func TestPipelinedAfterData(t *testing.T) {
	q := useMemQueue(t)
	s := startServer(t, testRoot(t, nil), loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
	for _, w := range []string{"250 ok", "250 ok", "354 go ahead"} {
		if got := c.last(); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
	c.send("one\r\n.\r\nRSET\r\nMAIL FROM:<c@d.example>\r\nRCPT TO:<v@example.org>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n")
	for _, w := range []string{"250 ok 1795665003 qp 4242", "250 flushed", "250 ok", "250 ok", "354 go ahead",
		"250 ok 1795665003 qp 4242", "221 mx.example.org"} {
		if got := c.last(); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
	msgs := q.all()
	if len(msgs) != 2 || !strings.HasSuffix(msgs[0].Msg, "\none\n") || !strings.HasSuffix(msgs[1].Msg, "\ntwo\n") ||
		fmtEnv(msgs[1].Env) != "Fc@d.example Tv@example.org" {
		t.Fatalf("queued %+v", msgs)
	}
}

// TestStartTLSInjection: commands pipelined after STARTTLS in clear text
// are discarded, and the session starts afresh under TLS.
func TestStartTLSInjection(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	selfSigned(t, filepath.Join(root, "control", "servercert.pem"))
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.send("EHLO x\r\n")
	if got := strings.Join(c.reply(), "|"); got != "250-mx.example.org|250-STARTTLS|250-PIPELINING|250-8BITMIME|250 SIZE" {
		t.Errorf("EHLO: %s", got)
	}
	c.expect("MAIL FROM:<before@tls.example>", "250 ok")
	c.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
	if got := c.last(); got != "220 ready for tls" {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c.conn, &tls.Config{ServerName: "mx.example.org", InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.expect("RCPT TO:<u@example.org>", "503 MAIL first (#5.5.1)")
	c.send("EHLO y\r\n")
	if got := strings.Join(c.reply(), "|"); got != "250-mx.example.org|250-PIPELINING|250-8BITMIME|250 SIZE" {
		t.Errorf("EHLO under TLS: %s", got)
	}
	c.expect("STARTTLS", "502 unimplemented (#5.5.1)")
	c.expect("MAIL FROM:<a@b.example>", "250 ok")
	c.expect("RCPT TO:<u@example.org>", "250 ok")
	c.expect("DATA", "354 go ahead")
	c.expect("secret\r\n.", "250 ok 1795665003 qp 4242")
	c.expect("QUIT", "221 mx.example.org")
	msgs := q.all()
	if len(msgs) != 1 || fmtEnv(msgs[0].Env) != "Fa@b.example Tu@example.org" ||
		!strings.HasPrefix(msgs[0].Msg, "Received: from localhost (HELO y) (127.0.0.1)\n") {
		t.Fatalf("queued %+v", msgs)
	}
}

// inData starts a server with an in-memory queue and opens a session up
// to the 354 of DATA for one local recipient.
func inData(t *testing.T) (*client, *memQueue) {
	t.Helper()
	q := useMemQueue(t)
	c := dial(t, startServer(t, testRoot(t, nil), loopPeer, nil))
	c.last()
	c.expect("MAIL FROM:<a@b.example>", "250 ok")
	c.expect("RCPT TO:<u@example.org>", "250 ok")
	c.expect("DATA", "354 go ahead")
	return c, q
}

// TestBareLFAnsweredAtOnce: the 451 for a bare LF comes while the client,
// in the middle of its message, waits (qmail answers at once), whether the
// LF ends what the client has sent so far or more text follows it.
func TestBareLFAnsweredAtOnce(t *testing.T) {
	for _, sent := range []string{"Subject: x\r\n\r\nline\n", "Subject: x\r\n\r\nline\nmore text"} {
		c, q := inData(t)
		c.send(sent) // and nothing more: no end of line, no "."
		if got := c.last(); got != "451 See https://cr.yp.to/docs/smtplf.html." {
			t.Fatalf("%q: reply %q", sent, got)
		}
		if n := len(q.all()); n != 0 {
			t.Fatalf("%q: %d queued", sent, n)
		}
	}
}

// TestDataRules: front's DATA reader gives qmail's results for the dot
// and CR cases where go-smtp's own data reader differs.
func TestDataRules(t *testing.T) {
	tests := []struct {
		name, in, reply, msg string
	}{
		{"empty", ".\r\n", "250 ok 1795665003 qp 4242", ""},
		{"dot stuffing", "..\r\n.x\r\n.\r\n", "250 ok 1795665003 qp 4242", ".\nx\n"},
		{"CR before CRLF, then the end", "a\r\r\n.\r\n", "250 ok 1795665003 qp 4242", "a\r\n"},
		{"dot CR not the end keeps both", ".\rX\r\n.\r\n", "250 ok 1795665003 qp 4242", ".\rX\n"},
		{"dot CR CR LF", ".\r\r\nb\r\n.\r\n", "250 ok 1795665003 qp 4242", ".\r\nb\n"},
		{"lone CR kept", "a\rb\r\n.\r\n", "250 ok 1795665003 qp 4242", "a\rb\n"},
		{"end needs CR LF before the dot", "a\r\n.\rb\r\n.\r\n", "250 ok 1795665003 qp 4242", "a\n.\rb\n"},
		{"bare LF after the dot", "a\r\n.\n", "451 See https://cr.yp.to/docs/smtplf.html.", ""},
		{"bare LF", "a\nb\r\n.\r\n", "451 See https://cr.yp.to/docs/smtplf.html.", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, q := inData(t)
			c.send(tc.in)
			if got := c.last(); got != tc.reply {
				t.Fatalf("reply %q, want %q", got, tc.reply)
			}
			msgs := q.all()
			if !strings.HasPrefix(tc.reply, "250 ") {
				if len(msgs) != 0 || !c.closed() {
					t.Fatalf("queued %d, or still open", len(msgs))
				}
				return
			}
			c.expect("QUIT", "221 mx.example.org")
			if len(msgs) != 1 {
				t.Fatalf("queued %d", len(msgs))
			}
			if _, body, _ := strings.Cut(msgs[0].Msg, "-0000\n"); body != tc.msg {
				t.Errorf("message %q, want %q", body, tc.msg)
			}
		})
	}
}

// closeConn is a recConn that notes Close.
type closeConn struct {
	recConn
	closed bool
}

func (c *closeConn) Close() error { c.closed = true; return nil }

// TestFrontContainsPanic: a panic inside front ends this session with an
// error, not the process.
func TestFrontContainsPanic(t *testing.T) {
	cc := &closeConn{}
	f := &front{cs: &connState{log: log.New(io.Discard, "", 0)}, raw: cc,
		act: func([]byte) []byte { panic("boom") }}
	n, err := f.Write([]byte("250 x\r\n"))
	if err != errPanic || n != 0 || !cc.closed || !f.cs.failed.Load() {
		t.Fatalf("Write after panic: %d, %v, closed %v", n, err, cc.closed)
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after panic: %d, %v", n, err)
	}
}

func TestScanIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" when not an address
	}{
		{"127.0.0.1", "127.0.0.1"}, {"127.000.000.001", "127.0.0.1"}, {"192.0.2.300", "192.0.2.44"},
		{"1.2.3", ""}, {"1.2.3.4.5", ""}, {"1..3.4", ""}, {"a.b.c.d", ""}, {"::1", ""}, {"", ""},
	}
	for _, tc := range tests {
		ip, ok := scanIPv4(tc.in)
		if got := ""; ok {
			got = ip.String()
			if got != tc.want {
				t.Errorf("scanIPv4(%q) = %s, want %q", tc.in, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("scanIPv4(%q) failed, want %s", tc.in, tc.want)
		}
	}
}

// TestTLSFailureLogBounded: the reason logged for a failed handshake is
// cut, whatever the client sent: crypto/tls lists every cipher suite a
// ClientHello offered in its error, so a client offering thousands wrote
// a log line 2.5 times the size of what it sent, on every connection.
func TestTLSFailureLogBounded(t *testing.T) {
	root := testRoot(t, nil)
	selfSigned(t, filepath.Join(root, "control", "servercert.pem"))
	cfg, _, err := LoadConfig(root, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var logb bytes.Buffer
	srv, cli := net.Pipe()
	done := make(chan bool, 1)
	go func() { done <- Serve(srv, cfg, loopPeer, log.New(&logb, "", 0)) }()
	defer cli.Close()
	r := bufio.NewReader(cli)
	r.ReadString('\n') // the greeting
	io.WriteString(cli, "STARTTLS\r\n")
	if l, err := r.ReadString('\n'); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("STARTTLS: %q %v", l, err)
	}
	// A TLS 1.2 ClientHello offering 8000 cipher suites the server does
	// not know, in one record.
	const n = 8000
	var body []byte
	body = append(body, 3, 3)                         // version
	body = append(body, make([]byte, 32)...)          // random
	body = append(body, 0)                            // session id
	body = append(body, byte(2*n>>8), byte(2*n&0xff)) // cipher suites
	for i := range n {
		body = append(body, byte((0x1000+i)>>8), byte(0x1000+i))
	}
	body = append(body, 1, 0) // compression: null
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	rec := append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
	go func() { cli.Write(rec); io.Copy(io.Discard, cli) }()
	if ok := <-done; ok {
		t.Error("session ok after a failed handshake")
	}
	line := logb.String()
	if !strings.Contains(line, "TLS handshake with 127.0.0.1: tls: ") {
		t.Fatalf("log %.300q: no handshake failure", line)
	}
	if len(line) > 400 {
		t.Errorf("log line of %d bytes for a failed handshake: %.300q", len(line), line)
	}
}

// TestNulInVerb: a NUL in the verb ends the command line there, as qmail
// reads it (a C string with no space in it): "MAIL\x00 FROM:<a@b>" is MAIL
// with an empty argument, the null sender, and "RCPT\x00 TO:<u@x>" is the
// empty recipient, which rcpthosts lets through as it lets any name
// without '@' (qmail's addrallowed). The argument was taken from after
// the NUL.
func TestNulInVerb(t *testing.T) {
	q := useMemQueue(t)
	s := startServer(t, testRoot(t, nil), loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL\x00 FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT\x00 TO:<v@example.org>", "250 ") // "": no '@', as a local name
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	msgs := q.all()
	if len(msgs) != 1 || msgs[0].Env.Sender != "" || strings.Join(msgs[0].Env.Recipients, ",") != ",u@example.org" {
		t.Fatalf("queued %+v, want sender <> and the recipients \"\" and u@example.org", msgs[0].Env)
	}
}
