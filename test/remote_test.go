package test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/test/dnstest"
)

const testMsg = "From: a@b.test\nSubject: hi\n\n.dot line\nline\r\nbare\rcr\n..two\n"

// testMsgWire is testMsg as the peer must receive it (dots undone by the
// server's DATA reader, line ends CRLF).
const testMsgWire = "From: a@b.test\r\nSubject: hi\r\n\r\n.dot line\r\nline\r\nbare\r\ncr\r\n..two\r\n"

func accepted(ip string) string {
	return "K" + ip + " accepted message.\nRemote host said: 250 2.0.0 OK: queued\n"
}

func checkReports(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("reports:\n got %q\nwant %q", got, want)
	}
}

func TestRemoteMXPreference(t *testing.T) {
	needRoot(t)
	tr := newRTree(t)
	dns := dnstest.Start(t)
	tr.UseDNS(dns)
	ips := loopbackIPs(1)
	refused := ips[0] // nothing listens there: connection refused
	ln := listen(t, "", 25)
	s := startSink(t, ln, sinkOpts{})
	dns.Add("mx.test. MX 10 mx1.mx.test.", "mx.test. MX 20 mx2.mx.test.",
		"mx1.mx.test. A "+refused, "mx2.mx.test. A "+s.IP)
	got := tr.Remote(testMsg, "mx.test", "from@x.test", "to@mx.test")
	checkReports(t, got, "r", accepted(s.IP))
	ms := s.Messages()
	if len(ms) != 1 || ms[0].From != "from@x.test" || strings.Join(ms[0].To, ",") != "to@mx.test" {
		t.Fatalf("sink got %+v", ms)
	}
	if string(ms[0].Data) != testMsgWire {
		t.Fatalf("data %q", ms[0].Data)
	}
	if ms[0].Helo != "testhost.example" || ms[0].TLS {
		t.Fatalf("helo %q tls %v", ms[0].Helo, ms[0].TLS)
	}
	// A refused connection is not a timeout: tcpto stays empty.
	out, err := runTool(tr, "qmail-tcpto")
	if err != nil || out != "" {
		t.Fatalf("qmail-tcpto: %q %v", out, err)
	}
}

func TestRemoteNoMXUsesA(t *testing.T) {
	needRoot(t)
	tr := newRTree(t)
	dns := dnstest.Start(t)
	tr.UseDNS(dns)
	s := startSink(t, listen(t, "", 25), sinkOpts{})
	dns.Add("amx.test. A " + s.IP)
	checkReports(t, tr.Remote(testMsg, "amx.test", "", "u@amx.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 1 || ms[0].From != "" {
		t.Fatalf("sink %+v", ms)
	}
}

func TestRemoteDNSFailures(t *testing.T) {
	tr := newRTree(t)
	dns := dnstest.Start(t)
	tr.UseDNS(dns)
	dns.Silent("slow.test.")
	dns.ServFail("broken.test.")
	dns.Exists("empty.test.")
	dns.Add("self.test. MX 10 me.self.test.", "me.self.test. A 127.0.0.1")
	// A better exchanger that cannot be looked up for now, then this host:
	// a temporary failure, not the loop bounce (qmail bounced it).
	dns.Add("selfsoft.test. MX 10 sf.selfsoft.test.", "selfsoft.test. MX 20 me.selfsoft.test.", "me.selfsoft.test. A 127.0.0.1")
	dns.ServFail("sf.selfsoft.test.")
	tests := []struct{ host, want string }{
		{"nx.test", "DSorry, I couldn't find any host named nx.test. (#5.1.2)\n"},
		{"slow.test", "ZSorry, I couldn't find any host by that name. (#4.1.2)\n"},
		{"broken.test", "ZSorry, I couldn't find any host by that name. (#4.1.2)\n"},
		{"empty.test", "DSorry, I couldn't find any host named empty.test. (#5.1.2)\n"},
		{"self.test", "DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"},
		{"selfsoft.test", "ZSorry, I couldn't find any host by that name. (#4.1.2)\n"},
		{"[127.0.0.1]", "DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			checkReports(t, tr.Remote(testMsg, tt.host, "f@x.test", "a@"+tt.host), tt.want)
		})
	}
	// A relay of smtproutes that exists without an address is no such
	// host, as qmail's dns_ip makes it (it was #5.4.4, "no mail exchanger").
	dns.Exists("emptyrelay.test.")
	tr.Control("smtproutes", "relayed.test:emptyrelay.test\n")
	checkReports(t, tr.Remote(testMsg, "relayed.test", "f@x.test", "a@relayed.test"),
		"DSorry, I couldn't find any host named emptyrelay.test. (#5.1.2)\n")
}

func TestRemoteUsageAndControls(t *testing.T) {
	tr := newRTree(t)
	checkReports(t, tr.Remote(testMsg, "x.test", "f@x.test"), "DI (qmail-remote) was invoked improperly. (#5.3.5)\n")
	// A resolver file that control/resolvconf names must exist: no quiet
	// fall back to a nameserver on 127.0.0.1.
	tr.Control("resolvconf", "etc/no-such-resolv.conf\n")
	checkReports(t, tr.Remote(testMsg, "x.test", "f", "t@x.test"),
		"ZUnable to read "+filepath.Join(tr.Root, "etc", "no-such-resolv.conf")+": file does not exist. (#4.3.0)\n")
	os.Remove(filepath.Join(tr.Root, "control", "me"))
	checkReports(t, tr.Remote(testMsg, "x.test", "f", "t@x.test"), "ZUnable to read control files. (#4.3.0)\n")
}

// routeTo makes every domain go to ip:port through control/smtproutes.
func routeTo(tr *rtree, ip string, port int) {
	tr.Control("smtproutes", fmt.Sprintf(":[%s]:%d\n", ip, port))
}

func TestRemoteRecipientCodes(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{RcptErr: map[string]*smtp.SMTPError{
		"b@r.test": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try later"},
		"c@r.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	routeTo(tr, s.IP, s.Port)
	got := tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test", "b@r.test", "d@r.test")
	checkReports(t, got, "r", "s"+s.IP+" does not like recipient.\nRemote host said: 451 4.2.0 try later\n", "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 1 || strings.Join(ms[0].To, ",") != "a@r.test,d@r.test" {
		t.Fatalf("sink %+v", ms)
	}
	got = tr.Remote(testMsg, "r.test", "f@x.test", "c@r.test", "b@r.test")
	checkReports(t, got,
		"h"+s.IP+" does not like recipient.\nRemote host said: 550 5.1.1 no such user\n",
		"s"+s.IP+" does not like recipient.\nRemote host said: 451 4.2.0 try later\n",
		"DGiving up on "+s.IP+".\n")
}

func TestRemoteSenderAndDataRejections(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{DataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}})
	routeTo(tr, s.IP, s.Port)
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"r", "D"+s.IP+" failed after I sent the message.\nRemote host said: 554 5.7.1 spam\n")

	tr2 := newRTree(t)
	s2 := startSink(t, listen(t, "", 0), sinkOpts{MailErr: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 8}, Message: "bad sender"}})
	routeTo(tr2, s2.IP, s2.Port)
	checkReports(t, tr2.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"DConnected to "+s2.IP+" but sender was rejected.\nRemote host said: 553 5.1.8 bad sender\n")

	// DATA itself refused (a scripted peer: go-smtp never refuses DATA).
	tr3 := newRTree(t)
	ln := listen(t, "", 0)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		fmt.Fprintf(c, "220 hi\r\n")
		for _, step := range []struct{ cmd, reply string }{
			{"EHLO", "250 ok"}, {"MAIL", "250 ok"}, {"RCPT", "250 ok"}, {"DATA", "554 5.7.1 no data for you"},
		} {
			if !expect(br, step.cmd) {
				return
			}
			fmt.Fprintf(c, "%s\r\n", step.reply)
		}
		expect(br, "QUIT")
	})
	routeTo(tr3, hostOf(ln), portOf(ln))
	ip := hostOf(ln)
	checkReports(t, tr3.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"r", "D"+ip+" failed on DATA command.\nRemote host said: 554 5.7.1 no data for you\n")
}

func TestRemotePartialLineAnd8bit(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{})
	routeTo(tr, s.IP, s.Port)
	checkReports(t, tr.Remote("Subject: x\n\nno newline", "r.test", "f@x.test", "a@r.test"),
		"r", "DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n")
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("partial message delivered (%d)", n)
	}
	checkReports(t, tr.Remote("Subject: \xe9t\xe9\n\nb\xf6dy\n", "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	checkReports(t, tr.Remote("Subject: plain\n\nbody\n", "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	checkReports(t, tr.Remote("Subject: utf8\n\nbody\n", "r.test", "f\xc3\xa9@x.test", "a@r.test"), "r", accepted(s.IP))
	ms := s.Messages()
	if len(ms) != 3 || ms[0].Body != smtp.Body8BitMIME || ms[1].Body != "" || !ms[2].UTF8 || ms[1].UTF8 {
		t.Fatalf("bodies %+v", ms)
	}
	if string(ms[0].Data) != "Subject: \xe9t\xe9\r\n\r\nb\xf6dy\r\n" {
		t.Fatalf("8bit data %q", ms[0].Data)
	}
}

func TestRemoteNoConnection(t *testing.T) {
	tr := newRTree(t)
	ln := listen(t, "", 0)
	ip, port := hostOf(ln), portOf(ln)
	ln.Close() // refused from now on
	routeTo(tr, ip, port)
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")
}

func TestRemoteQuotingAndRoutes(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{})
	other := startSink(t, listen(t, "", 0), sinkOpts{})
	tr.Control("smtproutes", fmt.Sprintf(".sub.test:[%s]:%d\nexact.sub.test:[%s]:%d\n", s.IP, s.Port, other.IP, other.Port))
	checkReports(t, tr.Remote(testMsg, "a.sub.test", "f@x.test", "john doe@a.sub.test"), "r", accepted(s.IP))
	checkReports(t, tr.Remote(testMsg, "exact.sub.test", "f@x.test", "x@exact.sub.test"), "r", accepted(other.IP))
	if ms := s.Messages(); len(ms) != 1 || ms[0].To[0] != `john doe@a.sub.test` {
		t.Fatalf("sink %q", ms[0].To)
	}
}

func TestRemoteSTARTTLS(t *testing.T) {
	needRoot(t) // MX path: port 25
	cert, certPEM := selfSigned(t, "mx.tls.test")
	tr := newRTree(t)
	dns := dnstest.Start(t)
	tr.UseDNS(dns)
	s := startSink(t, listen(t, "", 25), sinkOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	dns.Add("tls.test. MX 10 mx.tls.test.", "mx.tls.test. A "+s.IP)

	// Opportunistic: the self-signed certificate is accepted.
	checkReports(t, tr.Remote(testMsg, "tls.test", "f@x.test", "a@tls.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 1 || !ms[0].TLS {
		t.Fatalf("not over TLS: %+v", ms)
	}
	// Required and verified: a self-signed certificate fails temporarily.
	tr.Control("tlsroutes", "tls.test:require\n")
	got := tr.Remote(testMsg, "tls.test", "f@x.test", "a@tls.test")
	if len(got) != 1 || !strings.HasPrefix(got[0], "ZConnected to "+s.IP+" but the TLS handshake failed: ") || !strings.HasSuffix(got[0], ". (#4.7.5)\n") {
		t.Fatalf("got %q", got)
	}
	// ...and works once control/tlsca trusts it.
	tr.Control("tlsca", string(certPEM))
	checkReports(t, tr.Remote(testMsg, "tls.test", "f@x.test", "a@tls.test"), "r", accepted(s.IP))
	// "none" never starts TLS.
	tr.Control("tlsroutes", ".test:none\n")
	checkReports(t, tr.Remote(testMsg, "tls.test", "f@x.test", "a@tls.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 3 || ms[2].TLS {
		t.Fatalf("messages %+v", ms)
	}
}

// TestRemoteTLS13RefusedAfterHandshake: a TLS 1.3 server that wants a
// client certificate refuses after the client's side of the handshake is
// done, on the first read (the EHLO reply). Under the default policy that
// is a failed handshake too: the same address again in plain text.
func TestRemoteTLS13RefusedAfterHandshake(t *testing.T) {
	cert, _ := selfSigned(t, "cc.test")
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13}})
	routeTo(tr, s.IP, s.Port)
	// The report (and so qmail-send's log) says the mail went in clear.
	if got := tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"); len(got) != 2 || got[0] != "r" ||
		!strings.HasPrefix(got[1], accepted(s.IP)+"Sent without TLS: the TLS session failed after the handshake (") {
		t.Fatalf("reports %q", got)
	}
	if ms := s.Messages(); len(ms) != 1 || ms[0].TLS {
		t.Fatalf("messages %+v", ms)
	}
	// Where TLS is required, a temporary failure that says what failed
	// (and the next address would be tried).
	tr.Control("tlsroutes", "r.test:encrypt\n")
	got := tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test")
	if len(got) != 1 || !strings.HasPrefix(got[0], "ZConnected to "+s.IP+" but the TLS session failed after the handshake: ") {
		t.Fatalf("encrypt: %q", got)
	}
	if ms := s.Messages(); len(ms) != 1 {
		t.Fatalf("delivered without TLS under encrypt: %+v", ms)
	}
}

// TestRemoteRequiredTLSNextMX: where control/tlsroutes asks for TLS, an MX
// that does not offer it is passed over for the next one, as other MTAs do
// (RFC 7672 §2.2): the mail goes to the MX that speaks TLS. With no MX
// offering it, the last refusal is the report.
func TestRemoteRequiredTLSNextMX(t *testing.T) {
	needRoot(t) // MX path: port 25
	cert, _ := selfSigned(t, "mx2.tls2.test")
	tr := newRTree(t)
	dns := dnstest.Start(t)
	tr.UseDNS(dns)
	plain := startSink(t, listen(t, "", 25), sinkOpts{})
	secure := startSink(t, listen(t, "", 25), sinkOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	dns.Add("tls2.test. MX 10 mx1.tls2.test.", "mx1.tls2.test. A "+plain.IP,
		"tls2.test. MX 20 mx2.tls2.test.", "mx2.tls2.test. A "+secure.IP,
		"plain2.test. MX 10 mx1.tls2.test.")
	tr.Control("tlsroutes", ".test:encrypt\n")
	checkReports(t, tr.Remote(testMsg, "tls2.test", "f@x.test", "a@tls2.test"), "r", accepted(secure.IP))
	if ms := secure.Messages(); len(ms) != 1 || !ms[0].TLS || len(plain.Messages()) != 0 {
		t.Fatalf("secure %+v, plain %+v", ms, plain.Messages())
	}
	checkReports(t, tr.Remote(testMsg, "plain2.test", "f@x.test", "a@plain2.test"),
		"ZConnected to "+plain.IP+" but it does not offer STARTTLS, which control/tlsroutes requires. (#4.7.0)\n")
}

func TestRemoteRequiredTLSNotOffered(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{})
	routeTo(tr, s.IP, s.Port)
	tr.Control("tlsroutes", ":encrypt\n")
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZConnected to "+s.IP+" but it does not offer STARTTLS, which control/tlsroutes requires. (#4.7.0)\n")
}

// offerSTARTTLS plays a scripted server's greeting and an EHLO reply that
// offers STARTTLS, then reads the client's next command: tlsAsked says it
// was STARTTLS (then "220 go ahead" has been sent); otherwise it was the
// plain session's MAIL, still to be answered. ok is false when the client
// went away.
func offerSTARTTLS(c net.Conn, br *bufio.Reader) (tlsAsked, ok bool) {
	fmt.Fprintf(c, "220 hi\r\n")
	if !expect(br, "EHLO") {
		return false, false
	}
	fmt.Fprintf(c, "250-hi\r\n250 STARTTLS\r\n")
	l, err := br.ReadString('\n')
	if err != nil {
		return false, false
	}
	if strings.HasPrefix(l, "STARTTLS") {
		fmt.Fprintf(c, "220 go ahead\r\n")
		return true, true
	}
	return false, true
}

func TestRemoteOpportunisticHandshakeFallsBack(t *testing.T) {
	tr := newRTree(t)
	ln := listen(t, "", 0)
	ip := hostOf(ln)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		tlsAsked, ok := offerSTARTTLS(c, br)
		if !ok {
			return
		}
		if tlsAsked {
			c.Write([]byte("this is not a TLS server hello\r\n"))
			return
		}
		fmt.Fprintf(c, "250 ok\r\n") // MAIL
		for _, r := range []string{"250 ok", "354 go", ""} {
			if r == "" {
				break
			}
			if !expect(br, "") {
				return
			}
			fmt.Fprintf(c, "%s\r\n", r)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if l == ".\r\n" {
				fmt.Fprintf(c, "250 plain ok\r\n")
				expect(br, "QUIT")
				return
			}
		}
	})
	routeTo(tr, ip, portOf(ln))
	// The reason depends on when the client reads the junk (EOF, or "first
	// record does not look like a TLS handshake"): only the form is checked.
	got := tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test")
	if len(got) != 2 || got[0] != "r" ||
		!strings.HasPrefix(got[1], "K"+ip+" accepted message.\nRemote host said: 250 plain ok\nSent without TLS: the TLS handshake failed (") ||
		!strings.HasSuffix(got[1], ").\n") {
		t.Fatalf("reports %q", got)
	}
}

// TestRemoteTLSSilentAfterHandshake: a server that completes the
// handshake and then never answers (the EHLO over TLS times out) gets the
// plain-text retry too, and the note says what happened: the handshake
// itself worked. timeoutremote is what ends the silent TLS session, so it
// is short, but 3 s: every reply before it and in the plain-text retry has
// to come in time too, and a peer goroutine slow to answer on a loaded
// machine must not end the retry as well.
func TestRemoteTLSSilentAfterHandshake(t *testing.T) {
	cert, _ := selfSigned(t, "quiet.test")
	tr := newRTree(t)
	tr.Control("timeoutremote", "3\n")
	ln := listen(t, "", 0)
	ip := hostOf(ln)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		tlsAsked, ok := offerSTARTTLS(c, br)
		if !ok {
			return
		}
		if tlsAsked {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
			if tc.Handshake() == nil {
				io.Copy(io.Discard, tc) // never a word; until the client goes
			}
			return
		}
		for _, r := range []string{"250 ok", "250 ok", "354 go"} {
			fmt.Fprintf(c, "%s\r\n", r)
			if !expect(br, "") {
				return
			}
		}
		readToDot(br)
		fmt.Fprintf(c, "250 plain ok\r\n")
		expect(br, "QUIT")
	})
	routeTo(tr, ip, portOf(ln))
	got := tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test")
	if len(got) != 2 || got[0] != "r" ||
		!strings.HasPrefix(got[1], "K"+ip+" accepted message.\nRemote host said: 250 plain ok\nSent without TLS: the TLS session failed after the handshake (") {
		t.Fatalf("reports %q", got)
	}
}

// TestRemoteAuthSmarthost: a relay with a login. With no tlsroutes line,
// the password goes only over TLS whose certificate verified against the
// relay as smtproutes names it (QA: it went to a relay showing a
// self-signed certificate, as it would to a man in the middle); a
// tlsroutes line "encrypt" sends it over unverified TLS, as before.
func TestRemoteAuthSmarthost(t *testing.T) {
	ln := listen(t, "", 0)
	cert, certPEM := selfSigned(t, hostOf(ln))
	tr := newRTree(t)
	s := startSink(t, ln, sinkOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, User: "joe", Password: "s3cr:et"})
	relay := fmt.Sprintf("[%s]", s.IP)
	tr.Control("smtproutes", fmt.Sprintf(":%s:%d\n", relay, s.Port))
	auth := filepath.Join(tr.Root, "control", "smtpauth")
	os.WriteFile(auth, []byte(relay+":joe:s3cr:et\n"), 0o600)
	checkReports(t, tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test"),
		"ZConnected to "+s.IP+" but its certificate did not verify (x509: certificate signed by unknown authority); "+
			"I will not send a password to it. The certificate of its CA (its own, if self-signed) in control/tlsca, "+
			"or a control/tlsroutes line :encrypt (for every domain without a line of its own), allows it. (#4.7.5)\n")
	if ms := s.Messages(); len(ms) != 0 {
		t.Fatalf("sink %+v", ms)
	}
	tr.Control("tlsroutes", "any.test:encrypt\n")
	checkReports(t, tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test"), "r", accepted(s.IP))
	tr.Control("tlsroutes", "")
	tr.Control("tlsca", string(certPEM))
	checkReports(t, tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 2 || ms[0].AuthUser != "joe" || !ms[0].TLS || ms[1].AuthUser != "joe" || !ms[1].TLS {
		t.Fatalf("sink %+v", ms)
	}
	// A wrong password is a temporary failure and is never echoed.
	os.WriteFile(auth, []byte(relay+":joe:wrong-pw\n"), 0o600)
	got := tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test")
	checkReports(t, got, "ZConnected to "+s.IP+" but my login was rejected.\nRemote host said: 535 5.7.8 Authentication failed\n")
	// A credentials file others can read is refused.
	os.Chmod(auth, 0o644)
	got = tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test")
	if len(got) != 1 || !strings.HasPrefix(got[0], "ZSorry, control/smtpauth is readable by group or others") || strings.Contains(got[0], "wrong-pw") {
		t.Fatalf("got %q", got)
	}
}

func TestRemoteAuthNeedsTLS(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{User: "joe", Password: "pw"})
	relay := fmt.Sprintf("[%s]", s.IP)
	tr.Control("smtproutes", fmt.Sprintf(":%s:%d\n", relay, s.Port))
	os.WriteFile(filepath.Join(tr.Root, "control", "smtpauth"), []byte(relay+":joe:pw\n"), 0o600)
	checkReports(t, tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test"),
		"ZConnected to "+s.IP+" but I will not send a password without TLS: it does not offer STARTTLS. (#4.7.0)\n")
}

func TestRemoteImplicitTLS465(t *testing.T) {
	needRoot(t)
	cert, _ := selfSigned(t, "smtps.test")
	tr := newRTree(t)
	ln := tls.NewListener(listen(t, "", 465), &tls.Config{Certificates: []tls.Certificate{cert}})
	s := startSink(t, ln, sinkOpts{})
	routeTo(tr, s.IP, 465)
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 1 {
		t.Fatalf("sink %+v", ms)
	}
}

// TestRemoteImplicitTLS465LoginNone: a relay on port 465 with a login
// under "tlsroutes ...:none" gets no password (reg14 QA: the implicit TLS
// session, unverified, carried AUTH PLAIN, where qmail-smtproutes(5) says
// "none" never sends it).
func TestRemoteImplicitTLS465LoginNone(t *testing.T) {
	needRoot(t)
	cert, _ := selfSigned(t, "smtps.test")
	tr := newRTree(t)
	ln := tls.NewListener(listen(t, "", 465), &tls.Config{Certificates: []tls.Certificate{cert}})
	s := startSink(t, ln, sinkOpts{User: "joe", Password: "pw"})
	relay := fmt.Sprintf("[%s]", s.IP)
	tr.Control("smtproutes", fmt.Sprintf(":%s:465\n", relay))
	tr.Control("tlsroutes", "any.test:none\n")
	os.WriteFile(filepath.Join(tr.Root, "control", "smtpauth"), []byte(relay+":joe:pw\n"), 0o600)
	checkReports(t, tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test"),
		"ZConnected to "+s.IP+" but I will not send a password: control/tlsroutes says none for any.test. (#4.7.0)\n")
	if ms := s.Messages(); len(ms) != 0 {
		t.Fatalf("sink %+v", ms)
	}
}

// runTool runs a program of the tree and returns its stdout.
func runTool(tr *rtree, name string) (string, error) {
	out, err := exec.Command(filepath.Join(tr.Root, "bin", name)).Output()
	return string(out), err
}

func TestRemoteIPv6Route(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback: ", err)
	}
	t.Cleanup(func() { ln.Close() })
	tr := newRTree(t)
	s := startSink(t, ln, sinkOpts{})
	tr.Control("smtproutes", fmt.Sprintf("v6.test:[IPv6:::1]:%d\n", s.Port))
	checkReports(t, tr.Remote(testMsg, "v6.test", "f@x.test", "a@v6.test"), "r", accepted("::1"))
}

func TestRemoteIPv6MX(t *testing.T) {
	needRoot(t)
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback: ", err)
	}
	ln.Close()
	// ::1 is this host: an MX pointing there is a loop unless a better MX
	// exists; the IPv4 MX at preference 5 wins.
	tr := newRTree(t)
	dns := dnstest.Start(t)
	tr.UseDNS(dns)
	s := startSink(t, listen(t, "", 25), sinkOpts{})
	dns.Add("six.test. MX 10 self.six.test.", "self.six.test. AAAA ::1", "six.test. MX 5 four.six.test.", "four.six.test. A "+s.IP)
	checkReports(t, tr.Remote(testMsg, "six.test", "f@x.test", "a@six.test"), "r", accepted(s.IP))
}

func TestRemoteTcptoSkipAndTcpok(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{})
	routeTo(tr, s.IP, s.Port)
	// Two recent timeouts recorded for the sink's address: it is skipped.
	rec := make([]byte, 1024)
	copy(rec, net.ParseIP(s.IP).To4())
	rec[4] = 2
	now := uint32(time.Now().Unix())
	rec[8], rec[9], rec[10], rec[11] = byte(now), byte(now>>8), byte(now>>16), byte(now>>24)
	os.WriteFile(filepath.Join(tr.Root, "queue/lock/tcpto"), rec, 0o644)
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")
	out, err := runTool(tr, "qmail-tcpto")
	if err != nil || !strings.HasPrefix(out, s.IP+" timed out ") || !strings.HasSuffix(out, " seconds ago; # recent timeouts: 2\n") {
		t.Fatalf("qmail-tcpto: %q %v", out, err)
	}
	if out, err := runTool(tr, "qmail-tcpok"); err != nil || out != "" {
		t.Fatalf("qmail-tcpok: %q %v", out, err)
	}
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	if out, _ := runTool(tr, "qmail-tcpto"); out != "" {
		t.Fatalf("qmail-tcpto after tcpok: %q", out)
	}
}

// TestRemoteConnectTimeout makes a connection attempt time out (a listener
// whose backlog is full drops new SYNs) and checks that tcpto records it.
func TestRemoteConnectTimeout(t *testing.T) {
	ip := loopbackIPs(1)[0]
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], net.ParseIP(ip).To4())
	if err := unix.Bind(fd, sa); err != nil {
		t.Skip("bind: ", err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	lsa, _ := unix.Getsockname(fd)
	port := lsa.(*unix.SockaddrInet4).Port
	// Fill the accept queue: these connections are never accepted.
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, port), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	probe, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", ip, port), 300*time.Millisecond)
	if err == nil {
		probe.Close()
		t.Skip("kernel accepted a connection beyond the backlog; cannot provoke a connect timeout here")
	}
	tr := newRTree(t)
	tr.Control("timeoutconnect", "1\n")
	routeTo(tr, ip, port)
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")
	out, err := runTool(tr, "qmail-tcpto")
	if err != nil || !strings.HasPrefix(out, ip+" timed out ") || !strings.HasSuffix(out, "# recent timeouts: 1\n") {
		t.Fatalf("qmail-tcpto: %q %v", out, err)
	}
}

// TestRemoteSTARTTLSRoute is the STARTTLS case through a route (no root
// needed): the certificate is checked against the relay's literal address.
func TestRemoteSTARTTLSRoute(t *testing.T) {
	ln := listen(t, "", 0)
	cert, certPEM := selfSigned(t, hostOf(ln))
	tr := newRTree(t)
	s := startSink(t, ln, sinkOpts{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	routeTo(tr, s.IP, s.Port)
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	tr.Control("tlsroutes", "r.test:require\n")
	got := tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test")
	if len(got) != 1 || !strings.HasPrefix(got[0], "ZConnected to "+s.IP+" but the TLS handshake failed: ") {
		t.Fatalf("got %q", got)
	}
	tr.Control("tlsca", string(certPEM))
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	tr.Control("tlsroutes", "r.test:encrypt\n")
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	ms := s.Messages()
	if len(ms) != 3 {
		t.Fatalf("%d messages", len(ms))
	}
	for i, m := range ms {
		if !m.TLS {
			t.Errorf("message %d not over TLS", i)
		}
	}
}

// TestRemoteTranscript checks the exact bytes qmail-remote sends.
func TestRemoteTranscript(t *testing.T) {
	tr := newRTree(t)
	tr.Control("helohost", "helo.example\n")
	ln := listen(t, "", 0)
	lines := make(chan string, 100)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		fmt.Fprintf(c, "220 hi\r\n")
		inData := false
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- l
			switch {
			case inData && l == ".\r\n":
				inData = false
				fmt.Fprintf(c, "250 queued\r\n")
			case inData:
			case strings.HasPrefix(l, "EHLO"):
				fmt.Fprintf(c, "250-hi\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
			case strings.HasPrefix(l, "DATA"):
				inData = true
				fmt.Fprintf(c, "354 go\r\n")
			case strings.HasPrefix(l, "QUIT"):
				fmt.Fprintf(c, "221 bye\r\n")
			default:
				fmt.Fprintf(c, "250 ok\r\n")
			}
		}
	})
	routeTo(tr, hostOf(ln), portOf(ln))
	got := tr.Remote("Subject: caf\xc3\xa9\n\n.\n", "r.test", "", "john doe@r.test", "plain", "\"q\"@r.test")
	checkReports(t, got, "r", "r", "r", "K"+hostOf(ln)+" accepted message.\nRemote host said: 250 queued\n")
	var all []string
	for l := range lines {
		all = append(all, l)
	}
	want := []string{
		"EHLO helo.example\r\n",
		"MAIL FROM:<> BODY=8BITMIME\r\n",
		"RCPT TO:<\"john doe\"@r.test>\r\n",
		"RCPT TO:<plain>\r\n",
		"RCPT TO:<\"\\\"q\\\"\"@r.test>\r\n",
		"DATA\r\n",
		"Subject: caf\xc3\xa9\r\n", "\r\n", "..\r\n", ".\r\n",
		"QUIT\r\n",
	}
	if strings.Join(all, "") != strings.Join(want, "") {
		t.Fatalf("transcript:\n got %q\nwant %q", all, want)
	}
}

func TestRemoteOutgoingIP(t *testing.T) {
	tr := newRTree(t)
	s := startSink(t, listen(t, "", 0), sinkOpts{})
	routeTo(tr, s.IP, s.Port)
	src := loopbackIPs(1)[0]
	tr.Control("outgoingip", "::1\n"+src+"\n")
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 1 || ms[0].Peer != src {
		t.Fatalf("connection not from %s: %+v", src, ms)
	}
	// A line that is no address: qmail's text, and the line named (every
	// control file could be read).
	tr.Control("outgoingip", "not-an-ip\n")
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZUnable to read control files: control/outgoingip: \"not-an-ip\" is not an IP address. (#4.3.0)\n")
	// An address in brackets, as smtproutes writes a relay, is the address.
	tr.Control("outgoingip", "[::1]\n["+src+"]\n")
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"), "r", accepted(s.IP))
	if ms := s.Messages(); len(ms) != 2 || ms[1].Peer != src {
		t.Fatalf("connection not from %s: %+v", src, ms)
	}
	// An address this host does not have (TEST-NET-1; the kernel refuses
	// the bind, nothing is sent): the report names it.
	tr.Control("outgoingip", "192.0.2.1\n")
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZSorry, I wasn't able to establish an SMTP connection: control/outgoingip's 192.0.2.1 is not an address of this host. (#4.4.1)\n")
}

// TestRemoteAuthLogin: a relay offering only AUTH LOGIN, after STARTTLS.
func TestRemoteAuthLogin(t *testing.T) {
	ln := listen(t, "", 0)
	ip := hostOf(ln)
	cert, certPEM := selfSigned(t, ip)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	tr := newRTree(t)
	tr.Control("tlsca", string(certPEM))
	authed := make(chan string, 1)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		say := func(s string) { fmt.Fprintf(c, "%s\r\n", s) }
		say("220 hi")
		if !expect(br, "EHLO") {
			return
		}
		say("250-hi\r\n250 STARTTLS")
		if !expect(br, "STARTTLS") {
			return
		}
		say("220 go")
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		c, br = tc, bufio.NewReader(tc)
		say = func(s string) { fmt.Fprintf(c, "%s\r\n", s) }
		if !expect(br, "EHLO") {
			return
		}
		say("250-hi\r\n250 AUTH LOGIN")
		if !expect(br, "AUTH LOGIN") {
			return
		}
		say("334 VXNlcm5hbWU6") // Username:
		u, _ := br.ReadString('\n')
		say("334 UGFzc3dvcmQ6") // Password:
		p, _ := br.ReadString('\n')
		authed <- strings.TrimSpace(u) + " " + strings.TrimSpace(p)
		say("235 ok")
		for _, r := range []string{"250 ok", "250 ok", "354 go"} {
			if !expect(br, "") {
				return
			}
			say(r)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if l == ".\r\n" {
				say("250 done")
				expect(br, "QUIT")
				return
			}
		}
	})
	relay := "[" + ip + "]"
	tr.Control("smtproutes", fmt.Sprintf(":%s:%d\n", relay, portOf(ln)))
	os.WriteFile(filepath.Join(tr.Root, "control", "smtpauth"), []byte(relay+":joe:pw:x\n"), 0o600)
	checkReports(t, tr.Remote(testMsg, "any.test", "f@x.test", "a@any.test"), "r", "K"+ip+" accepted message.\nRemote host said: 250 done\n")
	// base64("joe") and base64("pw:x")
	if got := <-authed; got != "am9l cHc6eA==" {
		t.Fatalf("login sent %q", got)
	}
}
