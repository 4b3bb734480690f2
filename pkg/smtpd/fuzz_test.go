package smtpd

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// refDecode is the DATA rule written the simple way: CRLF -> LF, a bare
// LF is an error.
func refDecode(in []byte) ([]byte, bool) {
	var out []byte
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '\r' && i+1 < len(in) && in[i+1] == '\n':
			out = append(out, '\n')
			i++
		case c == '\n':
			return out, false
		default:
			out = append(out, c)
		}
	}
	return out, true
}

// FuzzBody holds the streaming decoder to the simple rule, for every read
// size.
func FuzzBody(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n"), uint16(0), uint8(7))
	f.Add([]byte("a\rb\r\r\n\n"), uint16(3), uint8(1))
	f.Add([]byte(strings.Repeat("Received: x\r\n", 101)), uint16(0), uint8(200))
	f.Fuzz(func(t *testing.T, in []byte, limit uint16, rs uint8) {
		size := int(rs)%64 + 1
		b := newBody(bytes.NewReader(in), int64(limit), nil)
		var out bytes.Buffer
		buf := make([]byte, size)
		var err error
		for i := 0; i <= 2*len(in)+4; i++ {
			var n int
			n, err = b.Read(buf)
			if n > len(buf) || n < 0 {
				t.Fatalf("Read returned %d for a buffer of %d", n, len(buf))
			}
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if err == nil {
			t.Fatalf("no end after %d reads", 2*len(in)+5)
		}
		want, ok := refDecode(in)
		switch {
		case !ok:
			if err != errBareLF {
				t.Fatalf("bare LF not reported: %v", err)
			}
		case err == io.EOF:
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("decoded %q, want %q", out.Bytes(), want)
			}
			if limit > 0 && len(want) > int(limit) {
				t.Fatalf("%d bytes passed a limit of %d", len(want), limit)
			}
		case err == replyDatabytes:
			if limit == 0 || len(want) <= int(limit) {
				t.Fatalf("552 for %d bytes, limit %d", len(want), limit)
			}
		case err == replyTooManyHops:
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// FuzzSession feeds arbitrary command lines (the SMTP command and address
// parser) to a whole session and checks what may be queued: no relaying
// without RELAYCLIENT, no NUL/CR/LF inside envelope addresses, at most
// MaxRcpt recipients, and the session always ends.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nSubject: y\r\n\r\nz\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<@r:a@b> SIZE=10\r\nRCPT TO:<\"a@far\"@example.org>\r\nDATA\r\n.\r\n",
		"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<a%b@[127.0.0.1]>\r\nRCPT TO:<x@far.example>\r\nBDAT 5 LAST\r\nab\r\nc",
		"helo x\nmail from:a@b\nrcpt to:u@EXAMPLE.ORG\ndata\n.\n",
		"HELO x\r\nMAIL FROM:<a\x00b@c>\r\nRCPT TO:<u@example.org\x00Tx@far>\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		q := &memQueue{}
		old := queue
		queue = q.queue
		defer func() { queue = old }()
		cfg := &Config{
			Greeting: "mx.example.org", LocalIPHost: "example.org", Timeout: 2 * time.Second,
			Databytes: 1000, RcptHosts: NewRcptHosts([]string{"example.org"}, "/nonexistent/more.cdb"),
			MaxRcpt: 5, MaxLine: 4096, Now: time.Now,
		}
		srvEnd, cliEnd := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			Serve(srvEnd, cfg, loopPeer, nil)
		}()
		go io.Copy(io.Discard, cliEnd)
		cliEnd.SetWriteDeadline(time.Now().Add(5 * time.Second))
		cliEnd.Write(in)
		cliEnd.Write([]byte("\r\n.\r\nQUIT\r\n"))
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session did not end")
		}
		cliEnd.Close()
		for _, m := range q.all() {
			if len(m.Env.Recipients) == 0 || len(m.Env.Recipients) > cfg.MaxRcpt {
				t.Fatalf("queued with %d recipients", len(m.Env.Recipients))
			}
			if strings.ContainsAny(m.Env.Sender, "\x00\r\n") {
				t.Fatalf("sender %q", m.Env.Sender)
			}
			for _, r := range m.Env.Recipients {
				if ok, _ := cfg.RcptHosts.Allowed(r); !ok || strings.ContainsAny(r, "\x00\r\n") {
					t.Fatalf("relayed to %q", r)
				}
			}
			if !strings.HasPrefix(m.Msg, "Received: from localhost (") {
				t.Fatalf("no Received line: %q", m.Msg)
			}
		}
	})
}

// refHops is qmail-smtpd's hop rule written on the whole message: the
// lines of the header (up to the first CR LF alone) that start with
// "received" or "delivered" in any ASCII case.
func refHops(msg []byte) int {
	lower := func(b []byte) string {
		l := make([]byte, len(b))
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			l[i] = c
		}
		return string(l)
	}
	n := 0
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if string(line) == "\r\n" {
			break
		}
		l := lower(line)
		if strings.HasPrefix(l, "received") || strings.HasPrefix(l, "delivered") {
			n++
		}
	}
	return n
}

// FuzzHopCount holds the byte-at-a-time hop counter front feeds (on the
// wire form of the message) to the whole-message rule.
func FuzzHopCount(f *testing.F) {
	f.Add([]byte("Received: a\r\nDELIVERED-To: b\r\n received: c\r\n\r\nReceived: d\r\n"))
	f.Add([]byte("ReceivedX\nDeliver\r\nrecEIVE\r\n\n\r\r\nReceived"))
	f.Add([]byte(".Received: x\r\nReceived-SPF: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var h hopCount
		for _, c := range msg {
			h.add(c)
		}
		if want := refHops(msg); h.n != want {
			t.Fatalf("%q: %d hops, want %d", msg, h.n, want)
		}
	})
}
