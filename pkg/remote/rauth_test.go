package remote

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The login of the tests below, as control/smtpauth holds it for the relay
// [127.0.0.1].
const (
	rauthUser = "me@provider.test"
	rauthPass = "s3cret:pw"
)

// rauthForms are the forms of the login a report must never show: the
// password, and the base64 of what AUTH PLAIN and AUTH LOGIN send, each
// with and without its padding.
func rauthForms() map[string]string {
	m := map[string]string{"password": rauthPass}
	for name, v := range map[string]string{
		"PLAIN token":     "\x00" + rauthUser + "\x00" + rauthPass,
		"password base64": rauthPass,
		"user base64":     rauthUser,
	} {
		m[name] = base64.StdEncoding.EncodeToString([]byte(v))
		m[name+" unpadded"] = base64.RawStdEncoding.EncodeToString([]byte(v))
	}
	return m
}

// echoAuthPeer serves one connection on loopback as a smarthost that
// offers STARTTLS (cert) and, over TLS, AUTH mech; each line of the AUTH
// exchange (the command, then LOGIN's answers) is answered by answer, given
// the lines so far; a reply below 300 logs the client in. A RCPT is
// answered with rcpt (default 250). It takes the message.
func echoAuthPeer(t *testing.T, cert tls.Certificate, mech string, answer func(lines []string) string, rcpt string) *net.TCPAddr {
	t.Helper()
	addr, _ := serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
		var conn net.Conn = c
		say := func(s string) { conn.Write([]byte(s)) }
		say("220 hi\r\n")
		var auth []string
		inData, tlsOn := false, false
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			*got = append(*got, l)
			line := strings.TrimRight(l, "\r\n")
			if inData {
				if line == "." {
					inData = false
					say("250 done\r\n")
				}
				continue
			}
			if auth != nil {
				auth = append(auth, line)
				r := answer(auth)
				if r[0] != '3' {
					auth = nil
				}
				say(r + "\r\n")
				continue
			}
			verb, _, _ := strings.Cut(line, " ")
			switch {
			case verb == "QUIT":
				return
			case verb == "EHLO" && tlsOn:
				say("250-hi\r\n250 AUTH " + mech + "\r\n")
			case verb == "EHLO":
				say("250-hi\r\n250 STARTTLS\r\n")
			case verb == "STARTTLS":
				say("220 go ahead\r\n")
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				if tc.Handshake() != nil {
					return
				}
				conn, br, tlsOn = tc, bufio.NewReader(tc), true
			case verb == "AUTH":
				auth = []string{line}
				r := answer(auth)
				if r[0] != '3' {
					auth = nil
				}
				say(r + "\r\n")
			case verb == "RCPT" && rcpt != "":
				say(rcpt + "\r\n")
			case verb == "DATA":
				say("354 go\r\n")
				inData = true
			default:
				say("250 ok\r\n")
			}
		}
	})
	return addr
}

// TestLoginReplyRedacted: a peer's reply quoted in a report (and so in
// qmail-send's log and a bounce, which may go to a remote sender) never
// shows the login of control/smtpauth: neither the password nor the base64
// forms AUTH PLAIN and AUTH LOGIN sent, which a server that repeats an
// unrecognised command echoes (QA: "535 5.7.8 auth failed for
// me@provider.test with password s3cret:pw" went word for word into the
// deferral and the bounce).
func TestLoginReplyRedacted(t *testing.T) {
	cert := selfSignedCert(t)
	forms := rauthForms()
	plainTok := forms["PLAIN token"]
	loginRejects := func(format func(user, pass string) string) func([]string) string {
		return func(l []string) string {
			switch len(l) {
			case 1:
				return "334 VXNlcm5hbWU6"
			case 2:
				return "334 UGFzc3dvcmQ6"
			}
			return format(l[1], l[2])
		}
	}
	tests := []struct {
		name   string
		mech   string
		answer func([]string) string
		rcpt   string
		want   string // the whole report
	}{
		{"PLAIN refused quoting the password", "PLAIN",
			func([]string) string { return "535 5.7.8 auth failed for " + rauthUser + " with password " + rauthPass }, "",
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 535 5.7.8 auth failed for " + rauthUser + " with password (password)\n\x00"},
		{"PLAIN command echoed", "PLAIN",
			func(l []string) string { return "500 5.5.1 unrecognised command: " + l[0] }, "",
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 500 5.5.1 unrecognised command: AUTH PLAIN (password)\n\x00"},
		{"PLAIN token echoed without padding", "PLAIN",
			func([]string) string { return "535 bad token " + strings.TrimRight(plainTok, "=") + "." }, "",
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 535 bad token (password).\n\x00"},
		{"PLAIN: the password in base64", "PLAIN",
			func([]string) string { return "535 expected " + forms["password base64"] + " got something else" }, "",
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 535 expected (password) got something else\n\x00"},
		{"LOGIN answers echoed", "LOGIN",
			loginRejects(func(u, p string) string { return "535-5.7.8 bad login\n535 5.7.8 user " + u + " password " + p }), "",
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 535-5.7.8 bad login\n535 5.7.8 user (user name) password (password)\n\x00"},
		{"LOGIN answers echoed without padding", "LOGIN",
			loginRejects(func(u, p string) string {
				return "535 5.7.8 user " + strings.TrimRight(u, "=") + " password " + strings.TrimRight(p, "=")
			}), "",
			"ZConnected to 127.0.0.1 but my login was rejected.\nRemote host said: 535 5.7.8 user (user name) password (password)\n\x00"},
		{"a recipient's refusal after the login", "PLAIN",
			func([]string) string { return "235 ok" }, "550 5.1.1 no mailbox; your password " + rauthPass + " is weak",
			"h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no mailbox; your password (password) is weak\n\x00DGiving up on 127.0.0.1.\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := echoAuthPeer(t, cert, tt.mech, tt.answer, tt.rcpt)
			got := mainTo(t, "any.test", map[string]string{
				"smtproutes": ":[127.0.0.1]:" + itoa(addr.Port) + "\n",
				"smtpauth":   "[127.0.0.1]:" + rauthUser + ":" + rauthPass + "\n",
				"tlsroutes":  ":encrypt\n",
			})
			for name, f := range forms {
				if strings.Contains(got, f) {
					t.Errorf("report shows the %s %q: %q", name, f, got)
				}
			}
			if got != tt.want {
				t.Errorf("report\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestSecretFormsEmptyPassword: an empty password has no form to look for
// (replacing "" would put the marker between every byte).
func TestSecretFormsEmptyPassword(t *testing.T) {
	s := &session{}
	s.login(Credentials{User: "joe", Password: ""})
	if got := s.redact("535 no"); got != "535 no" {
		t.Errorf("redact = %q", got)
	}
}

// rsaCert is a throw-away RSA server certificate for 127.0.0.1: RSA key
// exchange needs one.
func rsaCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return certFor(t, key)
}

// TestTLSOldServers: a TLS 1.2 server that offers only RSA key exchange
// (no ECDHE: an old submission server) gets a TLS session (QA: refused
// since Go 1.22, a laptop with a login to such a server never sent); a
// server that speaks only TLS 1.1, or offers only 3DES, is still refused,
// and the report names the likely cause.
func TestTLSOldServers(t *testing.T) {
	cert := rsaCert(t)
	tests := []struct {
		name string
		srv  *tls.Config
		want string
	}{
		{"RSA key exchange, AES-GCM", &tls.Config{CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, MaxVersion: tls.VersionTLS12},
			"K127.0.0.1 accepted message.\nRemote host said: 250 done\n"},
		{"RSA key exchange, AES-256-CBC", &tls.Config{CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_256_CBC_SHA}, MaxVersion: tls.VersionTLS12},
			"K127.0.0.1 accepted message.\nRemote host said: 250 done\n"},
		{"TLS 1.1 only", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
			"ZConnected to 127.0.0.1 but the TLS handshake failed: remote error: tls: protocol version not supported; " +
				"it speaks only TLS 1.1 or older, which I refuse. (#4.7.5)\n"},
		{"3DES only", &tls.Config{CipherSuites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, MaxVersion: tls.VersionTLS12},
			"ZConnected to 127.0.0.1 but the TLS handshake failed: remote error: tls: handshake failure; " +
				"probably no cipher suite or signature algorithm in common. (#4.7.5)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.srv.Certificates = []tls.Certificate{cert}
			addr, lines := serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
				var conn net.Conn = c
				say := func(s string) { conn.Write([]byte(s)) }
				say("220 hi\r\n")
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
							say("250 done\r\n")
						}
						continue
					}
					verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
					switch verb {
					case "QUIT":
						return
					case "EHLO":
						say("250-hi\r\n250 STARTTLS\r\n")
					case "STARTTLS":
						say("220 go ahead\r\n")
						tc := tls.Server(c, tt.srv)
						if tc.Handshake() != nil {
							return
						}
						conn, br = tc, bufio.NewReader(tc)
					case "DATA":
						say("354 go\r\n")
						inData = true
					default:
						say("250 ok\r\n")
					}
				}
			})
			f, err := os.Create(filepath.Join(t.TempDir(), "msg"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.WriteString("a\n")
			f.Seek(0, 0)
			d := &delivery{cfg: &Config{Helo: "h.test", TimeoutRemote: 10 * time.Second, TimeoutConnect: time.Second},
				sender: "f@x.test", rcpts: []string{"a@r.test"}, msg: f, out: bufio.NewWriter(&strings.Builder{}), policy: TLSEncrypt}
			if got := smtpOnce(t, d, addr).Error(); got != tt.want {
				t.Errorf("report\n got %q\nwant %q", got, tt.want)
			}
			select {
			case <-lines:
			case <-time.After(15 * time.Second):
				t.Fatal("peer did not finish")
			}
		})
	}
}

// TestUnverifiedHintNamesRouteKey: the hint after a relay's certificate
// did not verify names the control/tlsroutes line that would let this
// delivery's login go: with the key of the smtproutes line that routed it
// (QA: the catch-all route got "a line example.org:encrypt", which
// unblocked only mail to example.org), unless a tlsroutes line with an
// empty policy matches the host first; and, for a certificate of an
// unknown CA, control/tlsca.
func TestUnverifiedHintNamesRouteKey(t *testing.T) {
	unknown := x509.UnknownAuthorityError{}
	hostname := x509.HostnameError{Certificate: &x509.Certificate{}, Host: "relay.test"}
	tests := []struct {
		name              string
		host              string
		routes, tlsroutes []string
		why               error
		want              string
	}{
		{"catch-all route", "example.org", []string{":smtp.provider.test:587"}, nil, hostname,
			"A control/tlsroutes line :encrypt (for every domain without a line of its own) allows it."},
		{"catch-all route, unknown CA", "example.org", []string{":smtp.provider.test:587"}, nil, unknown,
			"The certificate of its CA (its own, if self-signed) in control/tlsca, or a control/tlsroutes line :encrypt (for every domain without a line of its own), allows it."},
		{"domain route", "example.org", []string{"example.org:smtp.provider.test:587", ":[192.0.2.1]"}, nil, hostname,
			"A control/tlsroutes line example.org:encrypt allows it."},
		{"suffix route", "a.b.example.org", []string{".example.org:smtp.provider.test"}, nil, hostname,
			"A control/tlsroutes line .example.org:encrypt allows it."},
		{"IDN route key in A-labels", "bücher.example", []string{"bücher.example:smtp.provider.test"}, nil, hostname,
			"A control/tlsroutes line xn--bcher-kva.example:encrypt allows it."},
		{"catch-all route, a tlsroutes line for another domain", "example.org", []string{":smtp.provider.test"}, []string{"other.test:encrypt"}, hostname,
			"A control/tlsroutes line :encrypt (for every domain without a line of its own) allows it."},
		{"empty tlsroutes line for the host comes first", "example.org", []string{":smtp.provider.test"}, []string{"example.org:"}, hostname,
			"A control/tlsroutes line example.org:encrypt allows it."},
		{"empty tlsroutes catch-all, domain route", "example.org", []string{"example.org:smtp.provider.test"}, []string{":"}, hostname,
			"A control/tlsroutes line example.org:encrypt allows it."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &delivery{cfg: &Config{Routes: ParseTable(tt.routes), TLSRoutes: ParseTable(tt.tlsroutes)}, host: tt.host}
			if p := d.cfg.TLSRoutes.TLSPolicy(tt.host, true); p != TLSLogin {
				t.Fatalf("policy %s: no hint is given", p)
			}
			got := d.unverifiedHint(tt.why)
			if got != tt.want {
				t.Errorf("hint\n got %q\nwant %q", got, tt.want)
			}
			// The line named, added to tlsroutes, lets the login go.
			_, rest, _ := strings.Cut(got, "control/tlsroutes line ")
			line, _, _ := strings.Cut(rest, " ")
			line = strings.TrimRight(line, ",")
			if p := ParseTable(append(tt.tlsroutes, line)).TLSPolicy(tt.host, true); p != TLSEncrypt {
				t.Errorf("with the line %q added, policy %s", line, p)
			}
		})
	}
}

// TestHandshakeCause: the causes named after a failed handshake's error,
// and none for an error that says enough by itself.
func TestHandshakeCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "remote error", Err: tls.AlertError(40)}, "probably no cipher suite or signature algorithm in common"},
		{&net.OpError{Op: "remote error", Err: tls.AlertError(71)}, "probably no cipher suite or signature algorithm in common"},
		{&net.OpError{Op: "remote error", Err: tls.AlertError(70)}, "it speaks only TLS 1.1 or older, which I refuse"},
		{errors.New("tls: server selected unsupported protocol version 302"), "it speaks only TLS 1.1 or older, which I refuse"},
		{errors.New("tls: server chose an unconfigured cipher suite"), "it chose a cipher suite I do not offer (3DES, RC4 or CBC-SHA256, say)"},
		{&net.OpError{Op: "local error", Err: tls.AlertError(40)}, ""},
		{&net.OpError{Op: "remote error", Err: tls.AlertError(42)}, ""},
		{errors.New("tls: first record does not look like a TLS handshake"), ""},
		{nil, ""},
	} {
		if got := handshakeCause(tc.err); got != tc.want {
			t.Errorf("handshakeCause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
