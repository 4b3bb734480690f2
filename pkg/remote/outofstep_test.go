package remote

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

// A peer that says more than one reply to a command (a second greeting, a
// reply whose continuation line has no code, a duplicated EHLO reply) puts
// a client that reads one reply per command one reply behind: qmail-remote
// read the 250 for DATA as the reply to RCPT, sent the message on the
// 250 of RCPT, and took the 354 for DATA as the final answer, reporting
// accepted a message the peer refused. Such a peer is out of step: the
// session ends with a temporary failure before the next command (or the
// message) is written.
func TestOutOfStep(t *testing.T) {
	const spam = "554 5.7.1 rejected as spam\r\n"
	oos := "ZConnected to 127.0.0.1 but it sent more than its reply (out of step). (#4.4.2)\n"
	tests := []struct {
		name    string
		replies map[string]string
		pipe    bool
		reports string
		lines   []string
	}{
		{"double greeting", map[string]string{"greeting": "220 first greeting\r\n220 second greeting\r\n", ".": spam}, false,
			oos + "Remote host said: 220 first greeting\nand then, unasked: 220 second greeting\n", nil},
		{"greeting continued by a line without a code", map[string]string{"greeting": "220-a\r\nfoo\r\n220 b\r\n", ".": spam}, false,
			oos + "Remote host said: 220-a\nfoo\nand then, unasked: 220 b\n", nil},
		{"EHLO reply continued by a line without a code", map[string]string{"EHLO": "250-srv\r\nSIZE 1000000\r\n250 8BITMIME\r\n", ".": spam}, false,
			oos + "Remote host said: 250-srv\nSIZE 1000000\nand then, unasked: 250 8BITMIME\n", []string{"EHLO h.test\r\n"}},
		{"EHLO reply twice", map[string]string{"EHLO": "250-srv\r\n250 8BITMIME\r\n250 again\r\n", ".": spam}, false,
			oos + "Remote host said: 250-srv\n250 8BITMIME\nand then, unasked: 250 again\n", []string{"EHLO h.test\r\n"}},
		{"RCPT reply twice", map[string]string{"RCPT": "250 ok\r\n250 ok again\r\n", ".": spam}, false,
			"r\x00" + oos + "Remote host said: 250 ok\nand then, unasked: 250 ok again\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n"}},
		{"more after 354", map[string]string{"DATA": "354 go\r\n250 extra\r\n", ".": spam}, false,
			"r\x00" + oos + "Remote host said: 354 go\nand then, unasked: 250 extra\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n"}},
		// Pipelined: the replies to the batch are read in order; one
		// more than the batch asked for is left when the message is due.
		{"pipelined: MAIL reply twice", map[string]string{"MAIL": "250 ok\r\n250 ok again\r\n", ".": spam}, true,
			"r\x00" + oos + "Remote host said: 250 ok\nand then, unasked: 250 ok\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n"}},
		{"pipelined: more after 354", map[string]string{"DATA": "354 go\r\n250 extra\r\n", ".": spam}, true,
			"r\x00" + oos + "Remote host said: 354 go\nand then, unasked: 250 extra\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr *net.TCPAddr
			var lines <-chan []string
			if tt.pipe {
				addr, lines = pipePeer(t, tt.replies)
			} else {
				addr, lines = peer(t, tt.replies)
			}
			reports, got := deliverTo(t, addr, lines, []string{"a@r.test"}, "a\n")
			if strings.Contains(reports, "K") && strings.Contains(reports, "accepted message") {
				t.Errorf("refused message reported accepted: %q", reports)
			}
			if slices.Contains(got, ".\r\n") {
				t.Errorf("message sent to a peer out of step: %q", got)
			}
			if reports != tt.reports {
				t.Errorf("reports\n got %q\nwant %q", reports, tt.reports)
			}
			if tt.lines != nil && strings.Join(got, "") != strings.Join(tt.lines, "") {
				t.Errorf("transcript\n got %q\nwant %q", got, tt.lines)
			}
		})
	}
}

// TestEHLOOnlyFallsBackOn5xx: HELO follows only a 5xx to EHLO (the
// command not recognised or not implemented). Any other reply but 250 (a
// stray 220, a 354, a 4xx) is a refusal of the name, as qmail takes any
// reply but 250 to HELO: read as a refusal of EHLO, a stray 220 put the
// HELO's reply in the place of MAIL's.
func TestEHLOOnlyFallsBackOn5xx(t *testing.T) {
	helo := []string{"EHLO h.test\r\n", "HELO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}
	tests := []struct {
		ehlo    string
		reports string
		lines   []string
	}{
		{"502 not implemented\r\n", "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n", helo},
		{"500 what\r\n", "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n", helo},
		{"504 no\r\n", "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n", helo},
		{"220 second greeting\r\n", "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 220 second greeting\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
		{"251 odd\r\n", "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 251 odd\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
		{"354 what\r\n", "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 354 what\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
		{"451 later\r\n", "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 451 later\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
		{"no code\r\n", "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: no code\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.ehlo), func(t *testing.T) {
			addr, lines := peer(t, map[string]string{"EHLO": tt.ehlo})
			reports, got := deliverTo(t, addr, lines, []string{"a@r.test"}, "a\n")
			if reports != tt.reports {
				t.Errorf("reports\n got %q\nwant %q", reports, tt.reports)
			}
			if strings.Join(got, "") != strings.Join(tt.lines, "") {
				t.Errorf("transcript\n got %q\nwant %q", got, tt.lines)
			}
		})
	}
}

// deliverTimeout is deliverTo with timeoutremote given.
func deliverTimeout(t *testing.T, addr *net.TCPAddr, lines <-chan []string, timeout time.Duration) (string, []string) {
	t.Helper()
	return deliverWith(t, addr, lines, "f@x.test", []string{"a@r.test"}, "a\n", timeout)
}

// stallPeer is peer with the final reply's first part, final, written at
// once, and nothing more until the client ends the connection.
func stallPeer(t *testing.T, final string) (*net.TCPAddr, <-chan []string) {
	return tricklePeer(t, final, 0)
}

// tricklePeer is stallPeer with final written one byte every every (at
// once when every is 0).
func tricklePeer(t *testing.T, final string, every time.Duration) (*net.TCPAddr, <-chan []string) {
	return serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
		c.Write([]byte("220 hi\r\n"))
		inData := false
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			*got = append(*got, l)
			if inData {
				if l == ".\r\n" {
					if every == 0 {
						c.Write([]byte(final))
					}
					for i := 0; every > 0 && i < len(final); i++ {
						time.Sleep(every)
						if _, err := c.Write([]byte{final[i]}); err != nil {
							return
						}
					}
					for { // until the client goes
						if _, err := br.ReadString('\n'); err != nil {
							return
						}
					}
				}
				continue
			}
			switch verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " "); verb {
			case "QUIT":
				return
			case "DATA":
				c.Write([]byte("354 go\r\n"))
				inData = true
			default:
				c.Write([]byte("250 ok\r\n"))
			}
		}
	})
}

// TestFinalReplyDecidedByFirstLine: after the final dot, a reply whose
// first line has given its code is that code's answer even when the rest
// is over MaxReply (qmail, keeping 5000 bytes and reading on, takes it):
// "Possible duplicate!" there was a certain duplicate. Before its code,
// and before the dot, qmail-remote's own limits still stand. A final reply
// is timed per read, as qmail times each read: one that goes silent for
// timeoutremote is a connection that died, "Possible duplicate!", whatever
// its code (a 554- then silence is no bounce, a 250- no delivery), and
// one that keeps trickling in is read to its end however long it takes.
func TestFinalReplyDecidedByFirstLine(t *testing.T) {
	long := strings.Repeat("250-"+strings.Repeat("y", 1000)+"\r\n", 200) + "250 end\r\n"
	t.Run("250 then 200 KB", func(t *testing.T) {
		addr, lines := peer(t, map[string]string{".": long})
		reports, got := deliverTo(t, addr, lines, []string{"a@r.test"}, "a\n")
		if !strings.HasPrefix(reports, "r\x00K127.0.0.1 accepted message.\nRemote host said: 250-yyy") ||
			!strings.HasSuffix(reports, "y\n(I did not read the rest of the reply: it was too long.)\n") {
			t.Errorf("reports %q", short(reports))
		}
		if !slices.Contains(got, ".\r\n") {
			t.Errorf("transcript %q", got)
		}
	})
	t.Run("554 then 200 KB", func(t *testing.T) {
		addr, lines := peer(t, map[string]string{".": strings.ReplaceAll(long, "250", "554")})
		reports, _ := deliverTo(t, addr, lines, []string{"a@r.test"}, "a\n")
		if !strings.HasPrefix(reports, "r\x00D127.0.0.1 failed after I sent the message.\nRemote host said: 554-yyy") {
			t.Errorf("reports %q", short(reports))
		}
	})
	t.Run("no code then 200 KB", func(t *testing.T) {
		addr, lines := peer(t, map[string]string{".": strings.ReplaceAll(long, "250", "xyz")})
		reports, _ := deliverTo(t, addr, lines, []string{"a@r.test"}, "a\n")
		if want := "r\x00ZConnected to 127.0.0.1 but its SMTP reply was too long. Possible duplicate! (#4.4.2)\n"; reports != want {
			t.Errorf("reports %q, want %q", reports, want)
		}
	})
	t.Run("before the dot: too long", func(t *testing.T) {
		addr, lines := peer(t, map[string]string{"RCPT": long})
		reports, _ := deliverTo(t, addr, lines, []string{"a@r.test"}, "a\n")
		if want := "ZConnected to 127.0.0.1 but its SMTP reply was too long. (#4.4.2)\n"; reports != want {
			t.Errorf("reports %q, want %q", reports, want)
		}
	})
	died := "r\x00ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n"
	for _, final := range []string{
		"554-rejected for policy\r\n",
		"250-accepted\r\n",
		"250-first line\r\n250-and",
		"250 ok trick",
		"451-wait\r\n",
		"250",
	} {
		t.Run("stalled "+final, func(t *testing.T) {
			addr, lines := stallPeer(t, final)
			reports, got := deliverTimeout(t, addr, lines, time.Second)
			if reports != died {
				t.Errorf("reports\n got %q\nwant %q", reports, died)
			}
			if !slices.Contains(got, ".\r\n") {
				t.Errorf("transcript %q", got)
			}
		})
	}
	// 17 bytes, one every 300 ms: some 5 s in all, over the 1 s of
	// timeoutremote, but never 1 s without a byte.
	t.Run("trickled", func(t *testing.T) {
		addr, lines := tricklePeer(t, "250 ok trickled\r\n", 300*time.Millisecond)
		reports, got := deliverTimeout(t, addr, lines, time.Second)
		if want := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok trickled\n"; reports != want {
			t.Errorf("reports\n got %q\nwant %q", reports, want)
		}
		if !slices.Contains(got, ".\r\n") {
			t.Errorf("transcript %q", got)
		}
	})
	t.Run("trickled multi-line", func(t *testing.T) {
		addr, lines := tricklePeer(t, "554-no\r\n554 pol\r\n", 300*time.Millisecond)
		reports, _ := deliverTimeout(t, addr, lines, time.Second)
		if want := "r\x00D127.0.0.1 failed after I sent the message.\nRemote host said: 554-no\n554 pol\n"; reports != want {
			t.Errorf("reports\n got %q\nwant %q", reports, want)
		}
	})
}

// corkConn keeps what is written to it while corked and sends it in one
// write when uncorked: TLS records written one by one through a tls.Conn
// over it reach the peer in one TCP segment.
type corkConn struct {
	net.Conn
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	if c.corked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkConn) uncork() error {
	c.corked = false
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	return err
}

// tlsTwicePeer is a peer that offers STARTTLS (and not PIPELINING) and,
// over TLS, answers the command verb ("." for the final dot) with the
// replies twice, each written as a TLS record of its own, all in one TCP
// segment; the final dot is otherwise answered with final, any other
// command as usual.
func tlsTwicePeer(t *testing.T, verb string, twice []string, final string) (*net.TCPAddr, <-chan []string) {
	t.Helper()
	cert := selfSignedCert(t)
	return serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
		cc := &corkConn{Conn: c}
		var conn net.Conn = c
		tlsOn := false
		say := func(v, r string) {
			if tlsOn && v == verb {
				cc.corked = true
				for _, r := range twice {
					conn.Write([]byte(r))
				}
				cc.uncork()
				return
			}
			conn.Write([]byte(r))
		}
		say("greeting", "220 hi\r\n")
		inData := false
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			*got = append(*got, l)
			if inData {
				if l == ".\r\n" {
					inData = false
					say(".", final)
				}
				continue
			}
			v, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
			switch {
			case v == "QUIT":
				return
			case v == "STARTTLS":
				c.Write([]byte("220 go ahead\r\n"))
				tc := tls.Server(cc, &tls.Config{Certificates: []tls.Certificate{cert}})
				if tc.Handshake() != nil {
					return
				}
				conn, br, tlsOn = tc, bufio.NewReader(tc), true
				*got = append(*got, "(TLS)\r\n")
			case v == "EHLO" && !tlsOn:
				say(v, "250-hi\r\n250 STARTTLS\r\n")
			case v == "DATA":
				say(v, "354 go\r\n")
				inData = true
			default:
				say(v, "250 ok\r\n")
			}
		}
	})
}

// tlsDelivery is a delivery of "a\n" from f@x.test to a@r.test with
// opportunistic TLS.
func tlsDelivery(t *testing.T) *delivery {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "msg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.WriteString("a\n")
	f.Seek(0, 0)
	return &delivery{cfg: &Config{Helo: "h.test", TimeoutRemote: 10 * time.Second, TimeoutConnect: 10 * time.Second},
		sender: "f@x.test", rcpts: []string{"a@r.test"}, msg: f, out: bufio.NewWriter(&strings.Builder{}), policy: TLSTry}
}

// peerLines is the lines the peer read, once it has finished.
func peerLines(t *testing.T, lines <-chan []string) []string {
	t.Helper()
	select {
	case got := <-lines:
		return got
	case <-time.After(15 * time.Second):
		t.Fatal("peer did not finish")
	}
	return nil
}

// TestOutOfStepTLS: over TLS a reply said twice is out of step as in
// plain text. crypto/tls returns one record at a time: a second reply
// that came as a record of its own in the same TCP segment was held in
// the tls.Conn, neither in the reader's buffer nor on the socket, and
// went unseen; the session went on one reply behind and reported
// accepted ("K... Remote host said: 354 go") a message the peer refused.
func TestOutOfStepTLS(t *testing.T) {
	tlsOn := []string{"EHLO h.test\r\n", "STARTTLS\r\n", "(TLS)\r\n", "EHLO h.test\r\n"}
	t.Run("MAIL reply twice", func(t *testing.T) {
		addr, lines := tlsTwicePeer(t, "MAIL", []string{"250 sender ok\r\n", "250 sender ok again\r\n"}, "554 5.7.1 no\r\n")
		rep := smtpOnce(t, tlsDelivery(t), addr)
		want := "ZConnected to 127.0.0.1 but it sent more than its reply (out of step). (#4.4.2)\n" +
			"Remote host said: 250 sender ok\nand then, unasked: 250 sender ok again\n"
		if rep.Error() != want {
			t.Errorf("report\n got %q\nwant %q", rep.Error(), want)
		}
		got := peerLines(t, lines)
		if slices.Contains(got, ".\r\n") {
			t.Errorf("message sent to a peer out of step: %q", got)
		}
		if want := append(tlsOn, "MAIL FROM:<f@x.test>\r\n"); strings.Join(got, "") != strings.Join(want, "") {
			t.Errorf("transcript\n got %q\nwant %q", got, want)
		}
	})
	t.Run("in step", func(t *testing.T) {
		addr, lines := tlsTwicePeer(t, "", nil, "250 done\r\n")
		rep := smtpOnce(t, tlsDelivery(t), addr)
		if want := "K127.0.0.1 accepted message.\nRemote host said: 250 done\n"; rep.Error() != want {
			t.Errorf("report\n got %q\nwant %q", rep.Error(), want)
		}
		want := append(tlsOn, "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n")
		if got := peerLines(t, lines); strings.Join(got, "") != strings.Join(want, "") {
			t.Errorf("transcript\n got %q\nwant %q", got, want)
		}
	})
}

// TestKeptOutOfStepTLS: a connection kept (qmail-remote -k) after a final
// reply said twice over TLS, the second as a record of its own in the same
// segment, is not idle: the record held in the tls.Conn counts as unread,
// as bytes on the socket do. It was reused, and the next delivery went on
// one reply behind.
func TestKeptOutOfStepTLS(t *testing.T) {
	addr, lines := tlsTwicePeer(t, ".", []string{"250 ok\r\n", "250 ok again\r\n"}, "")
	k := &keeper{}
	d := tlsDelivery(t)
	d.keep = k
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	err = d.smtp(conn, dnsmx.Addr{IP: addr.IP, Name: "127.0.0.1"}, addr.Port, true)
	if rep, ok := err.(*report); !ok || rep.letter != 'K' || k.s == nil || !k.s.tls {
		t.Fatalf("first delivery: %v, kept %v", err, k.s != nil)
	}
	d2 := tlsDelivery(t)
	d2.keep = k
	if rep, ok := d2.reuse(); ok {
		t.Fatalf("a kept connection with a reply left unread was reused: %+v", rep)
	}
	want := []string{"EHLO h.test\r\n", "STARTTLS\r\n", "(TLS)\r\n", "EHLO h.test\r\n",
		"MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}
	if got := peerLines(t, lines); strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("transcript\n got %q\nwant %q", got, want)
	}
}
