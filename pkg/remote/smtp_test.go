package remote

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

// peer serves one connection on loopback: it answers each command line by
// its verb from replies (default "250 ok"), swallows the message after a
// DATA reply below 400 and answers the final dot with
// replies["."]. It returns every line it read, in order.
func peer(t *testing.T, replies map[string]string) (addr *net.TCPAddr, lines <-chan []string) {
	return serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
		say := func(k, def string) {
			r, ok := replies[k]
			if !ok {
				r = def
			}
			c.Write([]byte(r))
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
					say(".", "250 done\r\n")
				}
				continue
			}
			verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
			if verb == "QUIT" {
				return
			}
			say(verb, "250 ok\r\n")
			if r := replies[verb]; verb == "DATA" && (r == "" || r[0] < '4') {
				inData = true
			}
		}
	})
}

// serveOnce accepts one connection on loopback and runs serve on it under
// a 10 s deadline; the lines serve collects come out of the channel.
func serveOnce(t *testing.T, serve func(c net.Conn, br *bufio.Reader, got *[]string)) (*net.TCPAddr, <-chan []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan []string, 1)
	go func() {
		var got []string
		defer func() { out <- got }()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c, bufio.NewReader(c), &got)
	}()
	return ln.Addr().(*net.TCPAddr), out
}

// deliverTo runs one delivery of msg from f@x.test to rcpts at addr and
// returns its reports (the r/h/s lines, then the message report) and the
// lines the peer read.
func deliverTo(t *testing.T, addr *net.TCPAddr, lines <-chan []string, rcpts []string, msg string) (string, []string) {
	t.Helper()
	return deliverFrom(t, addr, lines, "f@x.test", rcpts, msg)
}

// deliverFrom is deliverTo with the envelope sender given.
func deliverFrom(t *testing.T, addr *net.TCPAddr, lines <-chan []string, sender string, rcpts []string, msg string) (string, []string) {
	t.Helper()
	return deliverWith(t, addr, lines, sender, rcpts, msg, 10*time.Second)
}

// deliverWith is deliverFrom with timeoutremote given.
func deliverWith(t *testing.T, addr *net.TCPAddr, lines <-chan []string, sender string, rcpts []string, msg string, timeout time.Duration) (string, []string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "msg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(msg)
	f.Seek(0, 0)
	var out strings.Builder
	bw := bufio.NewWriter(&out)
	d := &delivery{cfg: &Config{Helo: "h.test", TimeoutRemote: timeout}, sender: sender,
		rcpts: rcpts, msg: f, out: bw, policy: TLSNone}
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	err = d.smtp(conn, dnsmx.Addr{IP: addr.IP}, addr.Port, false)
	rep, ok := err.(*report)
	if !ok {
		t.Fatalf("not a report: %v", err)
	}
	bw.Flush()
	select {
	case got := <-lines:
		return out.String() + string(rep.letter) + rep.text, got
	case <-time.After(15 * time.Second):
		t.Fatal("peer did not finish")
	}
	return "", nil
}

// TestSessionDialogue drives the go-smtp based dialogue against scripted
// peers: qmail's reply rules where go-smtp's Client has its own.
func TestSessionDialogue(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		replies map[string]string
		reports string   // r/h/s reports then the message report, NUL-separated
		lines   []string // the transcript, if checked
	}{
		{"non-354 DATA reply goes ahead", "a\n", map[string]string{"DATA": "250 send it\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
		{"251 after MAIL and RCPT", "a\n", map[string]string{"MAIL": "251 fine\r\n", "RCPT": "251 forwarded\r\n", ".": "252 odd\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 252 odd\n", nil},
		{"codes below 100 are below 400", "a\n", map[string]string{"MAIL": "000 zero\r\n", "RCPT": "099 odd\r\n", "DATA": "042 go\r\n", ".": "001 fine\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 001 fine\n", nil},
		{"empty message is the dot alone", "", nil,
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", ".\r\n", "QUIT\r\n"}},
		{"one empty line", "\n", nil,
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "\r\n", ".\r\n", "QUIT\r\n"}},
		{"EHLO 550 falls back to HELO", "a\n", map[string]string{"EHLO": "550 not now\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "HELO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
		{"multi-line refusal with enhanced codes", "a\n", map[string]string{"RCPT": "550-5.1.1 no such user\r\n550 5.1.1 really\r\n"},
			"h127.0.0.1 does not like recipient.\nRemote host said: 550-5.1.1 no such user\n550 5.1.1 really\n\x00DGiving up on 127.0.0.1.\n", nil},
		{"8BITMIME offered, ASCII message", "a\n", map[string]string{"EHLO": "250-hi\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
		{"8BITMIME offered, 8-bit message", "\xe9\n", map[string]string{"EHLO": "250-hi\r\n250-8bitmime\r\n250 SIZE 10\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test> BODY=8BITMIME SIZE=2\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "\xe9\r\n", ".\r\n", "QUIT\r\n"}},
		// RFC 1870: the size is declared where the peer offers SIZE, so
		// that a message over its limit is refused at MAIL, before any
		// of it goes over the link (it was sent whole, then refused).
		{"SIZE offered, ASCII message", "abc\n", map[string]string{"EHLO": "250-hi\r\n250-8BITMIME\r\n250 SIZE 3\r\n", "MAIL": "552 5.3.4 too big\r\n"},
			"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 552 5.3.4 too big\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test> SIZE=4\r\n", "QUIT\r\n"}},
		{"SIZE and SMTPUTF8", "\xe9\n", map[string]string{"EHLO": "250-hi\r\n250-8BITMIME\r\n250-SIZE\r\n250 SMTPUTF8\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n", nil},
		{"DATA refused temporarily", "a\n", map[string]string{"DATA": "451 later\r\n"},
			"r\x00Z127.0.0.1 failed on DATA command.\nRemote host said: 451 later\n", nil},
		{"final dot refused", "a\n", map[string]string{".": "554 5.7.1 spam\r\n"},
			"r\x00D127.0.0.1 failed after I sent the message.\nRemote host said: 554 5.7.1 spam\n", nil},
		{"3000-byte reply line (go-smtp's own limit is 2000)", "a\n", map[string]string{"RCPT": "550 " + strings.Repeat("x", 3000) + "\r\n"},
			"h127.0.0.1 does not like recipient.\nRemote host said: 550 " + strings.Repeat("x", 3000) + "\n\x00DGiving up on 127.0.0.1.\n", nil},
		{"partial final line", "a\nb", nil,
			"r\x00DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, lines := peer(t, tt.replies)
			reports, got := deliverTo(t, addr, lines, []string{"a@r.test"}, tt.msg)
			if reports != tt.reports {
				t.Errorf("reports\n got %q\nwant %q", reports, tt.reports)
			}
			if tt.lines != nil && strings.Join(got, "") != strings.Join(tt.lines, "") {
				t.Errorf("transcript\n got %q\nwant %q", got, tt.lines)
			}
		})
	}
}

// TestBodyParamNotInSender: BODY=8BITMIME is taken out of the MAIL line's
// parameters only, never out of a sender that contains the same text.
func TestBodyParamNotInSender(t *testing.T) {
	for _, tc := range []struct{ sender, msg, mail string }{
		{"a BODY=8BITMIME@x.org", "a\n", `MAIL FROM:<"a BODY=8BITMIME"@x.org>` + "\r\n"},
		{"x@y BODY=8BITMIME", "a\n", "MAIL FROM:<x@y BODY=8BITMIME>\r\n"},
		{"x@y BODY=8BITMIME", "\xe9\n", "MAIL FROM:<x@y BODY=8BITMIME> BODY=8BITMIME\r\n"},
	} {
		addr, lines := peer(t, map[string]string{"EHLO": "250-hi\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"})
		_, got := deliverFrom(t, addr, lines, tc.sender, []string{"a@r.test"}, tc.msg)
		if len(got) < 2 || got[1] != tc.mail {
			t.Errorf("sender %q, message %q: sent %q, want %q", tc.sender, tc.msg, got, tc.mail)
		}
	}
}

// TestIDNWithoutSMTPUTF8: to a peer that does not offer SMTPUTF8, an
// internationalized domain after an ASCII local part goes in its A-labels
// (the same address); a UTF-8 local part has no ASCII form and goes as it
// is, quoted as qmail quotes it. With SMTPUTF8 every address goes as
// written. Pipelined RCPTs are written the same way.
func TestIDNWithoutSMTPUTF8(t *testing.T) {
	for _, tc := range []struct {
		ehlo        string
		sender      string
		rcpts       []string
		mail, rcpt1 string
	}{
		{"250-hi\r\n250 8BITMIME\r\n", "f@bücher.example", []string{"u@München.example"},
			"MAIL FROM:<f@xn--bcher-kva.example>\r\n", "RCPT TO:<u@xn--mnchen-3ya.example>\r\n"},
		{"250-hi\r\n250-PIPELINING\r\n250 8BITMIME\r\n", "f@x.test", []string{"u@bücher.example", "v@r.test"},
			"MAIL FROM:<f@x.test>\r\n", "RCPT TO:<u@xn--bcher-kva.example>\r\n"},
		{"250-hi\r\n250 8BITMIME\r\n", "jörg@bücher.example", []string{"u@r.test"},
			"MAIL FROM:<\"jörg\"@bücher.example>\r\n", "RCPT TO:<u@r.test>\r\n"},
		{"250-hi\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n", "f@bücher.example", []string{"u@münchen.example"},
			"MAIL FROM:<f@bücher.example> SMTPUTF8\r\n", "RCPT TO:<u@münchen.example>\r\n"},
	} {
		addr, lines := peer(t, map[string]string{"EHLO": tc.ehlo})
		_, got := deliverFrom(t, addr, lines, tc.sender, tc.rcpts, "a\n")
		if len(got) < 3 || got[1] != tc.mail || got[2] != tc.rcpt1 {
			t.Errorf("EHLO %q, %s -> %q: sent %q, want %q then %q", tc.ehlo, tc.sender, tc.rcpts, got, tc.mail, tc.rcpt1)
		}
	}
}

// TestSessionAuth: AUTH through go-smtp's Client on a plain session (the
// TLS requirement is checked before auth is called).
func TestSessionAuth(t *testing.T) {
	tests := []struct {
		name    string
		ehlo    string
		replies map[string]string
		err     string // the report, "" for success
		lines   []string
	}{
		{"PLAIN refused: no * after the final answer", "250-hi\r\n250 AUTH PLAIN LOGIN\r\n",
			map[string]string{"AUTH": "535 5.7.8 no\r\n"},
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 535 5.7.8 no\n",
			[]string{"EHLO h.test\r\n", "AUTH PLAIN AGpvZQBwdw==\r\n", "QUIT\r\n"}},
		{"PLAIN accepted", "250-hi\r\n250 AUTH=PLAIN\r\n",
			map[string]string{"AUTH": "235 ok\r\n"}, "",
			[]string{"EHLO h.test\r\n", "AUTH PLAIN AGpvZQBwdw==\r\n"}},
		{"LOGIN asked too often: * sent", "250-hi\r\n250 AUTH LOGIN\r\n",
			map[string]string{"AUTH": "334 VXNlcm5hbWU6\r\n", "am9l": "334 UGFzc3dvcmQ6\r\n", "cHc=": "334 UGFzc3dvcmQ6\r\n", "*": "501 cancelled\r\n"},
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 501 cancelled\n",
			[]string{"EHLO h.test\r\n", "AUTH LOGIN\r\n", "am9l\r\n", "cHc=\r\n", "cHc=\r\n", "*\r\n", "QUIT\r\n"}},
		{"neither mechanism", "250-hi\r\n250 AUTH CRAM-MD5\r\n", nil,
			"ZConnected to 127.0.0.1 but it offers neither AUTH PLAIN nor AUTH LOGIN. (#4.7.0)\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := map[string]string{"EHLO": tt.ehlo}
			for k, v := range tt.replies {
				r[k] = v
			}
			addr, lines := peer(t, r)
			conn, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			s := newSession(conn, "127.0.0.1", 10*time.Second)
			s.client()
			ext, err := s.hello("h.test")
			if err != nil {
				t.Fatal(err)
			}
			err = s.auth(ext, Credentials{User: "joe", Password: "pw"})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("got %q\nwant %q", got, tt.err)
			}
			conn.Close()
			var ls []string
			select {
			case ls = <-lines:
			case <-time.After(15 * time.Second):
				t.Fatal("peer did not finish")
			}
			if strings.Join(ls, "") != strings.Join(tt.lines, "") {
				t.Errorf("transcript\n got %q\nwant %q", ls, tt.lines)
			}
		})
	}
}

// FuzzWireView: whatever a peer sends, the canonical copy the Client is
// shown parses as one reply with the expected code.
func FuzzWireView(f *testing.F) {
	for _, s := range []string{"220 hi\r\n", "250-a\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n", "\x00\xff\r\n", "55", "334 \r\n", "250-x\n250 \n"} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		r, err := ReadReply(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		cmd := []string{"", "EHLO", "DATA", "RCPT"}[which%4]
		w := &wire{cmd: cmd, show: func(string) bool { return true }}
		v := w.view(r)
		code, _, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(v))).ReadResponse(0)
		if err != nil {
			t.Fatalf("view %q of %q: %v", v, in, err)
		}
		want := r.Code
		switch {
		case cmd == "EHLO" && r.Code >= 500 && r.Code <= 599:
			want = 502 // HELO follows only a 5xx
		case cmd == "DATA" && r.Code < 400:
			want = 354
		case r.Code < 100:
			want = 199
		}
		if code != want {
			t.Fatalf("view %q of %q: code %d, want %d", v, in, code, want)
		}
	})
}

// pipePeer is peer for PIPELINING: it offers it, and after MAIL it answers
// nothing until it has read every line up to DATA, then answers them in
// order. A client that waits for the MAIL reply before sending RCPT never
// gets one (the peer gives up after its 10 s deadline).
func pipePeer(t *testing.T, replies map[string]string) (addr *net.TCPAddr, lines <-chan []string) {
	return serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
		reply := func(line string) string { // by the whole line, else by its verb
			line = strings.TrimRight(line, "\r\n")
			if r, ok := replies[line]; ok {
				return r
			}
			verb, _, _ := strings.Cut(line, " ")
			if r, ok := replies[verb]; ok {
				return r
			}
			return "250 ok\r\n"
		}
		c.Write([]byte("220 hi\r\n"))
		var batch []string // lines read since MAIL, not answered yet
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
					c.Write([]byte(reply(".")))
				}
				continue
			}
			verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
			switch {
			case verb == "QUIT":
				return
			case verb == "EHLO":
				c.Write([]byte("250-hi\r\n250 PIPELINING\r\n"))
			case verb == "MAIL" || len(batch) > 0:
				batch = append(batch, l)
				if verb != "DATA" {
					continue
				}
				var all string
				for _, b := range batch {
					all += reply(b)
				}
				c.Write([]byte(all))
				batch = nil
				inData = reply("DATA")[0] < '4'
			default:
				c.Write([]byte(reply(l)))
			}
		}
	})
}

// TestSessionPipelining: with PIPELINING offered, MAIL, every RCPT and
// DATA go out before any reply is read, and each reply still counts for
// its own command.
func TestSessionPipelining(t *testing.T) {
	tests := []struct {
		name    string
		rcpts   []string
		replies map[string]string
		reports string
		lines   []string
	}{
		{"two recipients", []string{"a@r.test", "b@r.test"},
			map[string]string{".": "250 done\r\n"},
			"r\x00r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "RCPT TO:<b@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
		{"second of two recipients refused", []string{"a@r.test", "b@r.test"},
			map[string]string{"RCPT TO:<b@r.test>": "550 no b\r\n", ".": "250 done\r\n"},
			"r\x00h127.0.0.1 does not like recipient.\nRemote host said: 550 no b\n\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "RCPT TO:<b@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
		{"sender refused", []string{"a@r.test"},
			map[string]string{"MAIL": "553 no\r\n", "RCPT": "503 5.5.1 MAIL first\r\n", "DATA": "503 5.5.1 no recipients\r\n"},
			"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 no\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "QUIT\r\n"}},
		{"every recipient refused", []string{"a@r.test"},
			map[string]string{"RCPT": "550 no such user\r\n", "DATA": "554 5.5.1 no valid recipients\r\n"},
			"h127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n\x00DGiving up on 127.0.0.1.\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "QUIT\r\n"}},
		{"recipient with CR left out", []string{"x\r@r.test", "a@r.test"}, map[string]string{".": "250 done\r\n"},
			"hSorry, the recipient address contains a CR or LF. (#5.1.3)\n\x00r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, lines := pipePeer(t, tt.replies)
			reports, got := deliverTo(t, addr, lines, tt.rcpts, "a\n")
			if reports != tt.reports {
				t.Errorf("reports\n got %q\nwant %q", reports, tt.reports)
			}
			if strings.Join(got, "") != strings.Join(tt.lines, "") {
				t.Errorf("transcript\n got %q\nwant %q", got, tt.lines)
			}
		})
	}
}

// TestSessionPipeliningLongLine: a RCPT line longer than go-smtp's
// 4096-byte write buffer reaches the wire in two writes (the line, then
// CR LF, or the line and CR, then LF). The wire must match such a line
// piece by piece against the one it sent ahead: comparing each write with
// the whole line ended every such delivery to a PIPELINING peer as
// "connection died" (#4.4.2), where the peer without PIPELINING gets its
// answer reported.
func TestSessionPipeliningLongLine(t *testing.T) {
	// "RCPT TO:<" + address + ">" is the line without its CR LF.
	for _, lineLen := range []int{4095, 4096, 4097, 5017} {
		rcpt := strings.Repeat("a", lineLen-10-len("@r.test")) + "@r.test"
		rcptLine := "RCPT TO:<" + rcpt + ">\r\n"
		if len(rcptLine) != lineLen+2 {
			t.Fatalf("line of %d bytes, want %d", len(rcptLine), lineLen+2)
		}
		t.Run(fmt.Sprint(lineLen), func(t *testing.T) {
			addr, lines := pipePeer(t, map[string]string{".": "250 done\r\n"})
			reports, got := deliverTo(t, addr, lines, []string{rcpt}, "a\n")
			if want := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n"; reports != want {
				t.Errorf("accepted: reports %q, want %q", reports, want)
			}
			want := []string{"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", rcptLine, "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}
			if !slices.Equal(got, want) {
				t.Errorf("accepted: transcript of %d lines, want %d (%q...)", len(got), len(want), got[:min(len(got), 2)])
			}

			// Refused: the same reports as from a peer without PIPELINING.
			refuse := map[string]string{"RCPT": "550 too long\r\n", "DATA": "554 no valid recipients\r\n"}
			addr, lines = pipePeer(t, refuse)
			piped, _ := deliverTo(t, addr, lines, []string{rcpt}, "a\n")
			addr, lines = peer(t, refuse)
			plain, _ := deliverTo(t, addr, lines, []string{rcpt}, "a\n")
			if want := "h127.0.0.1 does not like recipient.\nRemote host said: 550 too long\n\x00DGiving up on 127.0.0.1.\n"; piped != want || plain != want {
				t.Errorf("refused: reports %q with PIPELINING, %q without, want %q", piped, plain, want)
			}
		})
	}
}

// TestWirePipelinedPieces: the lines sent ahead with MAIL are matched
// piece by piece, each piece against the next bytes of the line expected;
// anything else is still out of step (errPipeline), and the command a
// reply belongs to is the one the line's first piece named.
func TestWirePipelinedPieces(t *testing.T) {
	ahead := func() [][]byte { return [][]byte{[]byte("RCPT TO:<a@r.test>\r\n"), []byte("DATA\r\n")} }
	tests := []struct {
		name   string
		pieces []string
		ok     bool
	}{
		{"whole lines", []string{"RCPT TO:<a@r.test>\r\n", "DATA\r\n"}, true},
		{"line then CR LF", []string{"RCPT TO:<a@r.test>", "\r\n", "DATA\r\n"}, true},
		{"line and CR then LF", []string{"RCPT TO:<a@r.test>\r", "\n", "DATA", "\r\n"}, true},
		{"other line", []string{"RCPT TO:<b@r.test>\r\n"}, false},
		{"piece going wrong", []string{"RCPT TO:<a@r", ".tesx>\r\n"}, false},
		{"piece running past the line", []string{"RCPT TO:<a@r.test>", "\r\nDATA\r\n"}, false},
		{"next line before the end", []string{"RCPT TO:<a@r.test>", "DATA\r\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := net.Pipe()
			defer c.Close()
			go io.Copy(io.Discard, s)
			w := newWire(c, 10*time.Second)
			w.ahead = ahead()
			if _, err := w.Write([]byte("MAIL FROM:<f@x.test>\r\n")); err != nil {
				t.Fatal(err)
			}
			var err error
			for i, p := range tt.pieces {
				if _, err = w.Write([]byte(p)); err != nil {
					break
				}
				if i == 0 && w.cmd != "RCPT" {
					t.Errorf("command %q after the first piece, want RCPT", w.cmd)
				}
			}
			switch {
			case tt.ok && err != nil:
				t.Errorf("error %v", err)
			case tt.ok && (len(w.expect) != 0 || w.cmd != "DATA"):
				t.Errorf("%d lines still expected, command %q", len(w.expect), w.cmd)
			case !tt.ok && err != errPipeline:
				t.Errorf("error %v, want errPipeline", err)
			}
		})
	}
}
