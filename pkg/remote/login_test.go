package remote

import (
	"bufio"
	"crypto/tls"
	"encoding/pem"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// authPeer serves every connection made to it on loopback, one at a time,
// as a smarthost that wants a login: it offers STARTTLS (unless starttls
// is "none"), answers it with starttls (default "220 go ahead"), and then
// makes the TLS handshake with cert, or, when starttls is "garbage",
// answers the client's hello with a line of plain text. Over TLS it
// offers AUTH PLAIN and takes any login and the message. The lines of each
// connection (the TLS session's decrypted) come out of the function
// returned, which closes the listener.
func authPeer(t *testing.T, cert tls.Certificate, starttls string) (*net.TCPAddr, func() [][]string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return servePeers(t, ln, cert, starttls)
}

// servePeers serves authPeer's peer on every connection ln accepts, until
// the function returned (or the test's end) closes ln.
func servePeers(t *testing.T, ln net.Listener, cert tls.Certificate, starttls string) (*net.TCPAddr, func() [][]string) {
	var mu sync.Mutex
	var conns [][]string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var got []string
			serveAuthPeer(c, cert, starttls, &got)
			c.Close()
			mu.Lock()
			conns = append(conns, got)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr), func() [][]string {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return conns
	}
}

func serveAuthPeer(c net.Conn, cert tls.Certificate, starttls string, got *[]string) {
	var conn net.Conn = c
	br := bufio.NewReader(c)
	say := func(s string) { conn.Write([]byte(s)) }
	say("220 hi\r\n")
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
				say("250 done\r\n")
			}
			continue
		}
		verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
		switch {
		case verb == "QUIT":
			return
		case verb == "EHLO" && tlsOn:
			say("250-hi\r\n250 AUTH PLAIN\r\n")
		case verb == "EHLO" && starttls == "none":
			say("250-hi\r\n250 AUTH PLAIN\r\n")
		case verb == "EHLO":
			say("250-hi\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
		case verb == "STARTTLS" && starttls == "garbage":
			say("220 go ahead\r\n")
			br.ReadByte() // the client's hello has come
			say("this is no TLS\r\n")
			return
		case verb == "STARTTLS" && starttls != "":
			say(starttls)
		case verb == "STARTTLS":
			say("220 go ahead\r\n")
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
			if tc.Handshake() != nil {
				*got = append(*got, "(TLS failed)\r\n")
				return
			}
			conn, br, tlsOn = tc, bufio.NewReader(tc), true
			*got = append(*got, "(TLS)\r\n")
		case verb == "AUTH":
			say("235 ok\r\n")
		case verb == "DATA":
			say("354 go\r\n")
			inData = true
		default:
			say("250 ok\r\n")
		}
	}
}

// mainWithLogin runs Main for mail to u@any.test, routed by the default
// route to the relay [127.0.0.1] on addr's port with a login in
// control/smtpauth, and the other control files given; it returns the
// report Main wrote.
func mainWithLogin(t *testing.T, addr *net.TCPAddr, files map[string]string) string {
	t.Helper()
	all := map[string]string{
		"smtproutes": ":[127.0.0.1]:" + itoa(addr.Port) + "\n",
		"smtpauth":   "[127.0.0.1]:alice:S3cret-pw\n",
	}
	for name, text := range files {
		all[name] = text
	}
	return mainTo(t, "any.test", all)
}

// TestLoginDefaultVerifies: a relay with a login in control/smtpauth and no
// control/tlsroutes line for the host gets the password only over TLS
// whose certificate verified against the relay's name as smtproutes
// writes it (QA: alice's password went to a relay offering STARTTLS with
// a self-signed certificate, as it would to a man in the middle). An
// explicit line keeps its meaning: "encrypt" and "try" send it over
// unverified TLS, "none" never sends it, "require" verifies.
func TestLoginDefaultVerifies(t *testing.T) {
	cert := selfSignedCert(t) // for 127.0.0.1, trusted by nobody
	trust := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	accepted := "r\x00K127.0.0.1 accepted message.\nRemote host said: 250 done\n\x00"
	// The hint names the tlsroutes line that covers the route: here the
	// default route's, unless a line with an empty policy comes first.
	notVerifiedLine := func(line string) string {
		return "ZConnected to 127.0.0.1 but its certificate did not verify (x509: certificate signed by unknown authority); " +
			"I will not send a password to it. The certificate of its CA (its own, if self-signed) in control/tlsca, or a control/tlsroutes line " +
			line + ", allows it. (#4.7.5)\n\x00"
	}
	notVerified := notVerifiedLine(":encrypt (for every domain without a line of its own)")
	tests := []struct {
		name   string
		files  map[string]string
		report string // "" when only its prefix, want, is checked
		prefix string
		auth   bool // the password went to the peer
	}{
		{"no tlsroutes: unverified certificate refused", nil, notVerified, "", false},
		{"tlsroutes without a line for the host", map[string]string{"tlsroutes": "other.test:encrypt\n"}, notVerified, "", false},
		{"a line with an empty policy is the default", map[string]string{"tlsroutes": "any.test:\n"}, notVerifiedLine("any.test:encrypt"), "", false},
		{"no tlsroutes, certificate trusted by control/tlsca", map[string]string{"tlsca": trust}, accepted, "", true},
		{"encrypt: unverified TLS allowed", map[string]string{"tlsroutes": "any.test:encrypt\n"}, accepted, "", true},
		{"default key encrypt", map[string]string{"tlsroutes": ":encrypt\n"}, accepted, "", true},
		{"try: unverified TLS allowed", map[string]string{"tlsroutes": "any.test:try\n"}, accepted, "", true},
		{"none: never sent", map[string]string{"tlsroutes": "any.test:none\n"},
			"ZConnected to 127.0.0.1 but I will not send a password without TLS: control/tlsroutes says none for any.test. (#4.7.0)\n\x00", "", false},
		{"require: verified", map[string]string{"tlsroutes": "any.test:require\n"}, "",
			"ZConnected to 127.0.0.1 but the TLS handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority", false},
		{"require with control/tlsca", map[string]string{"tlsroutes": "any.test:require\n", "tlsca": trust}, accepted, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns := authPeer(t, cert, "")
			got := mainWithLogin(t, addr, tt.files)
			if tt.report != "" && got != tt.report || tt.prefix != "" && !strings.HasPrefix(got, tt.prefix) {
				t.Errorf("report\n got %q\nwant %q", got, tt.report+tt.prefix)
			}
			auth := false
			for _, c := range conns() {
				for _, l := range c {
					if strings.HasPrefix(l, "AUTH") {
						auth = true
					}
				}
			}
			if auth != tt.auth {
				t.Errorf("password sent: %v, want %v", auth, tt.auth)
			}
		})
	}
}

// TestLoginWithoutTLSSaysWhy: when the password is not sent for want of
// TLS, the report says why, and no plain-text retry is made for it (QA: a
// refused STARTTLS or a failed handshake read "I will not send a password
// without TLS", and the admin went looking for a relay without TLS).
func TestLoginWithoutTLSSaysWhy(t *testing.T) {
	cert := selfSignedCert(t)
	refused := "ZConnected to 127.0.0.1 but I will not send a password without TLS: STARTTLS was rejected (454 4.7.0 TLS not available). (#4.7.0)\n\x00"
	garbage := "ZConnected to 127.0.0.1 but I will not send a password without TLS: the TLS handshake failed (tls: first record does not look like a TLS handshake). (#4.7.5)\n\x00"
	notOffered := "ZConnected to 127.0.0.1 but I will not send a password without TLS: it does not offer STARTTLS. (#4.7.0)\n\x00"
	for _, tc := range []struct {
		name      string
		tlsroutes string
		starttls  string
		report    string
		conns     int
	}{
		{"default: STARTTLS refused", "", "454 4.7.0 TLS not available\r\n", refused, 1},
		{"try: STARTTLS refused", "any.test:try\n", "454 4.7.0 TLS not available\r\n", refused, 1},
		{"default: handshake failed", "", "garbage", garbage, 1},
		{"try: handshake failed, no plain-text retry", "any.test:try\n", "garbage", garbage, 1},
		{"default: STARTTLS not offered", "", "none", notOffered, 1},
		{"try: STARTTLS not offered", "any.test:try\n", "none", notOffered, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := authPeer(t, cert, tc.starttls)
			files := map[string]string{}
			if tc.tlsroutes != "" {
				files["tlsroutes"] = tc.tlsroutes
			}
			if got := mainWithLogin(t, addr, files); got != tc.report {
				t.Errorf("report\n got %q\nwant %q", got, tc.report)
			}
			cs := conns()
			if len(cs) != tc.conns {
				t.Errorf("%d connections, want %d: %q", len(cs), tc.conns, cs)
			}
			for _, c := range cs {
				for _, l := range c {
					if strings.HasPrefix(l, "AUTH") || strings.HasPrefix(l, "MAIL") {
						t.Errorf("sent without TLS: %q", c)
					}
				}
			}
		})
	}
}

// TestTLSPolicyLogin: the one place that decides the policy gives a
// delivery that logs in, and has no tlsroutes line (or one with an empty
// policy), the verified default; any explicit line wins.
func TestTLSPolicyLogin(t *testing.T) {
	tab := ParseTable([]string{"e.test:encrypt", "t.test:try", "n.test:none", "r.test:require", "x.test:", ".sub.test:encrypt"})
	for host, want := range map[string]string{
		"e.test": TLSEncrypt, "t.test": TLSTry, "n.test": TLSNone, "r.test": TLSRequire,
		"x.test": TLSLogin, "other.test": TLSLogin, "a.sub.test": TLSEncrypt,
	} {
		if got := tab.TLSPolicy(host, true); got != want {
			t.Errorf("%s with a login: %s, want %s", host, got, want)
		}
	}
	if got := tab.TLSPolicy("other.test", false); got != TLSTry {
		t.Errorf("other.test without a login: %s, want %s", got, TLSTry)
	}
	if got := Table(nil).TLSPolicy("any.test", true); got != TLSLogin {
		t.Errorf("no tlsroutes, with a login: %s, want %s", got, TLSLogin)
	}
	if got := ParseTable([]string{":encrypt"}).TLSPolicy("any.test", true); got != TLSEncrypt {
		t.Errorf("default key encrypt, with a login: %s, want %s", got, TLSEncrypt)
	}
}
