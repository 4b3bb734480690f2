package remote

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

// TestEHLORefusal: a refusal of EHLO the peer closes the connection after
// (it will hear no HELO), and any 421 to EHLO (RFC 5321 §3.8: the server
// is closing), is the report, quoting the refusal, as qmail reports a
// refused HELO; a refusal of another code on a connection left open still
// gets the fallback to HELO.
func TestEHLORefusal(t *testing.T) {
	closing := func(reply string) func(c net.Conn, br *bufio.Reader, got *[]string) {
		return func(c net.Conn, br *bufio.Reader, got *[]string) {
			c.Write([]byte("220 hi\r\n"))
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			*got = append(*got, l)
			c.Write([]byte(reply)) // and close
		}
	}
	tests := []struct {
		name    string
		serve   func(c net.Conn, br *bufio.Reader, got *[]string)
		replies map[string]string // for peer, when serve is nil
		reports string
		lines   []string
	}{
		{"EHLO 421 and close", closing("421 go away\r\n"), nil,
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 421 go away\n",
			[]string{"EHLO h.test\r\n"}},
		{"EHLO 421 multi-line with enhanced code and close", closing("421-4.3.2 busy\r\n421 4.3.2 go away\r\n"), nil,
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 421-4.3.2 busy\n421 4.3.2 go away\n",
			[]string{"EHLO h.test\r\n"}},
		{"EHLO 554 and close (temporary, as qmail's refused HELO)", closing("554 5.7.1 not you\r\n"), nil,
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 554 5.7.1 not you\n",
			[]string{"EHLO h.test\r\n"}},
		{"EHLO 451 and close", closing("451 try later\r\n"), nil,
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 451 try later\n",
			[]string{"EHLO h.test\r\n"}},
		{"EHLO 421, connection left open: no HELO", nil, map[string]string{"EHLO": "421 not now\r\n"},
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 421 not now\n",
			[]string{"EHLO h.test\r\n", "QUIT\r\n"}},
		{"EHLO 500, connection left open: HELO", nil, map[string]string{"EHLO": "500 what\r\n"},
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n",
			[]string{"EHLO h.test\r\n", "HELO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}},
		{"EHLO 550 then HELO 421: HELO's reply", nil, map[string]string{"EHLO": "550 no\r\n", "HELO": "421 bye\r\n"},
			"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 421 bye\n",
			[]string{"EHLO h.test\r\n", "HELO h.test\r\n", "QUIT\r\n"}},
		{"no reply to EHLO: connection died", func(c net.Conn, br *bufio.Reader, got *[]string) {
			c.Write([]byte("220 hi\r\n"))
			l, _ := br.ReadString('\n')
			*got = append(*got, l)
		}, nil,
			"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n",
			[]string{"EHLO h.test\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr *net.TCPAddr
			var lines <-chan []string
			if tt.serve != nil {
				addr, lines = serveOnce(t, tt.serve)
			} else {
				addr, lines = peer(t, tt.replies)
			}
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

// selfSignedCert is a throw-away server certificate for 127.0.0.1.
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return certFor(t, key)
}

// certFor is a throw-away server certificate for 127.0.0.1 with key.
func certFor(t *testing.T, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tls.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsPeer serves every connection made to it on loopback (one at a time):
// on the first it offers STARTTLS and, after the handshake, answers the
// EHLO said over TLS with afterTLS (then closes, when close is set; else it
// answers any further command with 250 until QUIT). Any later connection
// (a plain-text retry) is a plain dialogue that takes the message. Each
// connection's lines come out of the channel when the listener is closed.
func tlsPeer(t *testing.T, afterTLS string, closeAfter bool) (*net.TCPAddr, func() [][]string) {
	t.Helper()
	cert := selfSignedCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns [][]string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var got []string
			serveTLSPeer(c, cert, n == 0, afterTLS, closeAfter, &got)
			c.Close()
			mu.Lock()
			conns = append(conns, got)
			mu.Unlock()
		}
	}()
	return ln.Addr().(*net.TCPAddr), func() [][]string {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return conns
	}
}

func serveTLSPeer(c net.Conn, cert tls.Certificate, first bool, afterTLS string, closeAfter bool, got *[]string) {
	var conn net.Conn = c
	br := bufio.NewReader(c)
	c.Write([]byte("220 hi\r\n"))
	inData, tlsOn := false, false
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		*got = append(*got, l)
		if inData {
			if l == ".\r\n" {
				inData = false
				conn.Write([]byte("250 done\r\n"))
			}
			continue
		}
		verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
		switch {
		case verb == "QUIT":
			return
		case verb == "EHLO" && tlsOn:
			conn.Write([]byte(afterTLS))
			if closeAfter {
				return
			}
		case verb == "EHLO" && first:
			conn.Write([]byte("250-hi\r\n250 STARTTLS\r\n"))
		case verb == "STARTTLS":
			conn.Write([]byte("220 go ahead\r\n"))
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
			if tc.Handshake() != nil {
				return
			}
			conn, br, tlsOn = tc, bufio.NewReader(tc), true
			*got = append(*got, "(TLS)\r\n")
		case verb == "DATA":
			conn.Write([]byte("354 go\r\n"))
			inData = true
		default:
			conn.Write([]byte("250 ok\r\n"))
		}
	}
}

// TestEHLORefusalAfterSTARTTLS: a refusal of the EHLO said over TLS, after
// a handshake that worked, is the server's answer, not a failed TLS
// session: under "try" the message is not sent again in plain text, and
// under "encrypt" it is the report (not a TLS-policy refusal that passes
// the host over for the next address), quoting the refusal. A session
// that fails on that first reply without one (a TLS 1.3 server that wants
// a client certificate, a server that closes) is still a failed TLS
// session.
func TestEHLORefusalAfterSTARTTLS(t *testing.T) {
	rejected := func(said string) string {
		return "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: " + said + "\n"
	}
	tlsThenEHLO := []string{"EHLO h.test\r\n", "STARTTLS\r\n", "(TLS)\r\n", "EHLO h.test\r\n"}
	tests := []struct {
		name     string
		policy   string
		afterTLS string
		close    bool
		reports  string
		conns    [][]string // the lines of each connection made
	}{
		{"try: 421 and close", TLSTry, "421 go away\r\n", true, rejected("421 go away"),
			[][]string{tlsThenEHLO}},
		{"encrypt: 421 and close", TLSEncrypt, "421 go away\r\n", true, rejected("421 go away"),
			[][]string{tlsThenEHLO}},
		{"try: 554 and close", TLSTry, "554 5.7.1 not you\r\n", true, rejected("554 5.7.1 not you"),
			[][]string{tlsThenEHLO}},
		{"encrypt: 554 and close", TLSEncrypt, "554 5.7.1 not you\r\n", true, rejected("554 5.7.1 not you"),
			[][]string{tlsThenEHLO}},
		{"try: 421, connection left open", TLSTry, "421 not now\r\n", false, rejected("421 not now"),
			[][]string{append(tlsThenEHLO[:4:4], "QUIT\r\n")}},
		{"encrypt: 421, connection left open", TLSEncrypt, "421 not now\r\n", false, rejected("421 not now"),
			[][]string{append(tlsThenEHLO[:4:4], "QUIT\r\n")}},
		{"try: closed without a reply: plain-text retry", TLSTry, "", true,
			"r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\nSent without TLS: the TLS session failed after the handshake (connection closed).\n",
			[][]string{tlsThenEHLO, {"EHLO h.test\r\n", "MAIL FROM:<f@x.test>\r\n", "RCPT TO:<a@r.test>\r\n", "DATA\r\n", "a\r\n", ".\r\n", "QUIT\r\n"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns := tlsPeer(t, tt.afterTLS, tt.close)
			f, err := os.Create(filepath.Join(t.TempDir(), "msg"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.WriteString("a\n")
			f.Seek(0, 0)
			var out strings.Builder
			bw := bufio.NewWriter(&out)
			d := &delivery{cfg: &Config{Helo: "h.test", TimeoutRemote: 5 * time.Second, TimeoutConnect: 5 * time.Second},
				root: t.TempDir(), sender: "f@x.test", rcpts: []string{"a@r.test"}, msg: f, out: bw,
				routed: true, route: Route{Relay: "127.0.0.1", Port: addr.Port}, policy: tt.policy}
			// The address twice: a TLS-policy refusal would move on to the
			// second one.
			a := dnsmx.Addr{IP: addr.IP, Name: "127.0.0.1"}
			rep := d.connect([]dnsmx.Addr{a, a})
			bw.Flush()
			if got := out.String() + string(rep.letter) + rep.text; got != tt.reports {
				t.Errorf("reports\n got %q\nwant %q", got, tt.reports)
			}
			if got := conns(); !equalLines(got, tt.conns) {
				t.Errorf("connections\n got %q\nwant %q", got, tt.conns)
			}
		})
	}
}

func equalLines(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "") != strings.Join(b[i], "") {
			return false
		}
	}
	return true
}

// TestSTARTTLS421: a 421 to STARTTLS is the server closing the connection
// (RFC 5321 §3.8), not a refusal to go on with in plain text: under "try"
// it is the report, quoting it (before, MAIL found the connection gone);
// where TLS is required it stays a TLS-policy refusal (the next address is
// tried).
func TestSTARTTLS421(t *testing.T) {
	for _, tc := range []struct {
		policy    string
		tlsPolicy bool
	}{{TLSTry, false}, {TLSEncrypt, true}} {
		t.Run(tc.policy, func(t *testing.T) {
			addr, lines := serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
				c.Write([]byte("220 hi\r\n"))
				for _, r := range []string{"250-hi\r\n250 STARTTLS\r\n", "421 4.7.0 bye\r\n"} {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					*got = append(*got, l)
					c.Write([]byte(r))
				}
			})
			d := &delivery{cfg: &Config{Helo: "h.test", TimeoutRemote: 5 * time.Second},
				sender: "f@x.test", rcpts: []string{"a@r.test"}, out: bufio.NewWriter(&strings.Builder{}), policy: tc.policy}
			rep := smtpOnce(t, d, addr)
			want := "ZConnected to 127.0.0.1 but STARTTLS was rejected.\nRemote host said: 421 4.7.0 bye\n"
			if rep.Error() != want || rep.tlsPolicy != tc.tlsPolicy {
				t.Errorf("got %q (TLS policy %v)\nwant %q (TLS policy %v)", rep.Error(), rep.tlsPolicy, want, tc.tlsPolicy)
			}
			if got := <-lines; strings.Join(got, "") != "EHLO h.test\r\nSTARTTLS\r\n" {
				t.Errorf("transcript %q", got)
			}
		})
	}
}

// TestSTARTTLSRefusedTryNote: a peer that offers STARTTLS and refuses it
// (454) gets the mail in plain text under "try", as the policy allows, and
// the success report says so, as it does after a failed handshake (the log
// said nothing, as if the mail had gone encrypted or never been offered
// TLS).
func TestSTARTTLSRefusedTryNote(t *testing.T) {
	addr, lines := peer(t, map[string]string{"EHLO": "250-hi\r\n250 STARTTLS\r\n", "STARTTLS": "454 4.7.0 TLS not available\r\n"})
	f, err := os.Create(filepath.Join(t.TempDir(), "msg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("a\n")
	f.Seek(0, 0)
	d := &delivery{cfg: &Config{Helo: "h.test", TimeoutRemote: 5 * time.Second},
		sender: "f@x.test", rcpts: []string{"a@r.test"}, msg: f, out: bufio.NewWriter(&strings.Builder{}), policy: TLSTry}
	rep := smtpOnce(t, d, addr)
	want := "K127.0.0.1 accepted message.\nRemote host said: 250 done\nSent without TLS: STARTTLS was rejected (454 4.7.0 TLS not available).\n"
	if rep.Error() != want {
		t.Errorf("got %q\nwant %q", rep.Error(), want)
	}
	<-lines
}

// smtpOnce runs d's dialogue, TLS tried, on a new connection to addr and
// returns its report.
func smtpOnce(t *testing.T, d *delivery, addr *net.TCPAddr) *report {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	err = d.smtp(conn, dnsmx.Addr{IP: addr.IP, Name: "127.0.0.1"}, addr.Port, true)
	rep, ok := err.(*report)
	if !ok {
		t.Fatalf("not a report: %v", err)
	}
	return rep
}
