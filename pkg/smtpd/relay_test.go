package smtpd

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/cdb"
)

// TestOpenRelay: without RELAYCLIENT, twenty ways of asking for relaying
// are all refused; the tricks that qmail takes as local addresses are
// accepted as exactly that (see "RELAYING" in qmail-smtpd.8).
func TestOpenRelay(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"localiphost": "example.org\n"})
	s := startServer(t, root, loopPeer, nil)
	refused := []string{
		"<victim@foreign.example>",
		"victim@foreign.example",
		"<victim@FOREIGN.example>",
		"<victim@foreign.example.>",
		"<@example.org:victim@foreign.example>",
		"<@example.org,@mx.example.org:victim@foreign.example>",
		"<victim@[192.0.2.1]>",
		"<victim@[10.1.2.3]>",
		"<victim@[IPv6:::1]>",
		"<\"victim@foreign.example\">",
		"<\"victim@example.org\"@foreign.example>",
		"<victim@example.org@foreign.example>",
		"<victim%example.org@foreign.example>",
		"<victim@foreign.example%example.org>",
		"<victim@example.org.foreign.example>",
		"<victim@fooexample.org>",
		"<victim@example.net>",
		"<victim@example.org.>",
		"<victim@foreign.example\x00@example.org>",
		"<victim@foreign.example >",
		"<victim!foreign.example@uucp.example>",
		"<victim@localhost>",
	}
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<spammer@foreign.example>", "250 ")
	for _, r := range refused {
		got := c.cmd("RCPT TO:" + r)
		if !strings.HasPrefix(got, "5") {
			t.Errorf("RCPT TO:%q not refused: %q", r, got)
		}
	}
	// Local addresses, whatever they look like: qmail-send delivers them
	// here (percenthack, if it lists a local domain, is the admin's
	// explicit choice).
	local := []struct{ rcpt, addr string }{
		{"<victim%foreign.example@example.org>", "victim%foreign.example@example.org"},
		{"<\"victim@foreign.example\"@example.org>", "victim@foreign.example@example.org"},
		{"<victim@foreign.example@example.org>", "victim@foreign.example@example.org"},
		{"<@foreign.example:victim@example.org>", "victim@example.org"},
		{"<victim@[127.0.0.1]>", "victim@example.org"},
		{"<victim@[127.000.000.001]>", "victim@example.org"}, // qmail's ip_scan takes leading zeros
		{"<victim!foreign.example@example.org>", "victim!foreign.example@example.org"},
	}
	var want []string
	for _, l := range local {
		if got := c.cmd("RCPT TO:" + l.rcpt); !strings.HasPrefix(got, "250 ") {
			t.Errorf("RCPT TO:%q refused: %q", l.rcpt, got)
		}
		want = append(want, l.addr)
	}
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	msgs := q.all()
	if len(msgs) != 1 || strings.Join(msgs[0].Env.Recipients, " ") != strings.Join(want, " ") {
		t.Fatalf("queued %+v, want recipients %q", msgs, want)
	}
}

// TestLocalIPChanges: the interface list is read when an address literal
// needs it, not once per process: a dial-up link's new address is local
// to a qmail-smtpd -listen started before the link came up, and its old
// one no longer is.
func TestLocalIPChanges(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"localiphost": "example.org\n"})
	oldAddrs := interfaceAddrs
	var mu sync.Mutex
	link := "192.0.2.7"
	interfaceAddrs = func() ([]net.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		return []net.Addr{&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP(link), Mask: net.CIDRMask(32, 32)}}, nil
	}
	t.Cleanup(func() { interfaceAddrs = oldAddrs })
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@foreign.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@[192.0.2.7]>", "250 ")
	mu.Lock()
	link = "198.51.100.9" // the link came back with another address
	mu.Unlock()
	c.expectPrefix("RCPT TO:<v@[198.51.100.9]>", "250 ")
	if got := c.cmd("RCPT TO:<w@[192.0.2.7]>"); !strings.HasPrefix(got, "5") {
		t.Errorf("the old address is still local: %q", got)
	}
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	msgs := q.all()
	if len(msgs) != 1 || strings.Join(msgs[0].Env.Recipients, " ") != "u@example.org v@example.org" {
		t.Fatalf("queued %+v", msgs)
	}
}

// TestEmptyLocalIPHost: an existing empty localiphost replaces a local
// address literal with nothing, as qmail's control_rldef reads it (it
// turned the replacement off, and [127.0.0.1] listed in rcpthosts let
// such recipients through).
func TestEmptyLocalIPHost(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"localiphost": "", "rcpthosts": "example.org\n[127.0.0.1]\n"})
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@foreign.example>", "250 ")
	if got := c.cmd("RCPT TO:<u@[127.0.0.1]>"); !strings.HasPrefix(got, "553 ") {
		t.Errorf("RCPT to a local literal with an empty localiphost: %q", got)
	}
	c.expectPrefix("RCPT TO:<v@example.org>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	if msgs := q.all(); len(msgs) != 1 || strings.Join(msgs[0].Env.Recipients, " ") != "v@example.org" {
		t.Fatalf("queued %+v", msgs)
	}
}

// TestAddrLimitAfterLocalIPHost: the 900-byte limit is held against the
// address as it will be queued, after a local [d.d.d.d] became
// localiphost, as qmail-smtpd's address parser measures it last: a literal
// that a long localiphost takes past the limit is refused, one that a
// short localiphost brings under it is taken.
func TestAddrLimitAfterLocalIPHost(t *testing.T) {
	oldAddrs := interfaceAddrs
	interfaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: net.CIDRMask(24, 32)}}, nil
	}
	t.Cleanup(func() { interfaceAddrs = oldAddrs })
	long := strings.Repeat("h", 60) + ".example"
	for _, tc := range []struct {
		local, liphost string
		replace        bool
		want           string // "" = syntax error
	}{
		{strings.Repeat("u", 887), "a.b", true, strings.Repeat("u", 887) + "@a.b"},          // 899 bytes given, 891 queued
		{strings.Repeat("u", 895), "a.b", true, strings.Repeat("u", 895) + "@a.b"},          // 907 given, 899 queued
		{strings.Repeat("u", 896), "a.b", true, ""},                                         // 908 given, 900 queued
		{strings.Repeat("u", 850), long, true, ""},                                          // 862 given, 919 queued
		{strings.Repeat("u", 895), "a.b", false, ""},                                        // 907, no replacement
		{strings.Repeat("u", 887), "a.b", false, strings.Repeat("u", 887) + "@[192.0.2.1]"}, // 899, no replacement
	} {
		got, res := fixAddr(tc.local+"@[192.0.2.1]", tc.liphost, tc.replace)
		if tc.want == "" && res != addrSyntax || tc.want != "" && (res != addrOK || got != tc.want) {
			t.Errorf("%d bytes + @[192.0.2.1] -> %q (replace %v): %q %v", len(tc.local), tc.liphost, tc.replace, got, res)
		}
	}
}

// TestRcptHostsAllowed is the rcpthosts rule as a table.
func TestRcptHostsAllowed(t *testing.T) {
	h := NewRcptHosts([]string{"Example.ORG", ".example.net", "x"}, filepath.Join(t.TempDir(), "none.cdb"))
	for addr, want := range map[string]bool{
		"postmaster":          true,
		"u@example.org":       true,
		"u@EXAMPLE.org":       true,
		"u@a.example.org":     false,
		"u@a.example.net":     true,
		"u@a.b.example.net":   true,
		"u@example.net":       false,
		"u@x":                 true,
		"u@":                  false,
		"u@y.x":               false,
		"a@b@example.org":     true,
		"u@example.org@other": false,
	} {
		got, err := h.Allowed(addr)
		if err != nil || got != want {
			t.Errorf("Allowed(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	// Either spelling of an IDN, in rcpthosts and in morercpthosts.cdb
	// (as qmail-newmrh writes it now, and as it wrote it before: the
	// lowercased bytes).
	dir := t.TempDir()
	more := filepath.Join(dir, "more.cdb")
	writeCDB(t, more, append(admin.MoreRcptHosts([]byte("köln.example\nxn--wen-zma.example\n")),
		cdb.Record{Key: []byte("münchen.example"), Data: []byte{}}))
	h = NewRcptHosts([]string{"bücher.example", "XN--ZRICH-KVA.example"}, more)
	for addr, want := range map[string]bool{
		"u@bücher.example":        true,
		"u@BÜCHER.example":        true,
		"u@xn--bcher-kva.example": true,
		"u@zürich.example":        true,
		"u@xn--zrich-kva.example": true,
		"u@köln.example":          true,
		"u@xn--kln-sna.example":   true,
		"u@wïen.example":          true,
		"u@münchen.example":       true, // an old table's key
		"u@bucher.example":        false,
		"u@xn--bcher-kva.other":   false,
	} {
		got, err := h.Allowed(addr)
		if err != nil || got != want {
			t.Errorf("IDN: Allowed(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	var none *RcptHosts
	if ok, _ := none.Allowed("u@anything"); !ok {
		t.Errorf("no rcpthosts must allow everything")
	}
}

func TestRelayMatch(t *testing.T) {
	rules := []string{"127.0.0.1", "10.0.0.0/8", "192.168.", "2001:db8::/32", "::1", "garbage", "fe80::/10", "::ffff:192.0.2.0/120", "fe80::9%eth1"}
	for ip, want := range map[string]bool{
		"127.0.0.1":        true,
		"127.0.0.2":        false,
		"10.200.3.4":       true,
		"11.0.0.1":         false,
		"192.168.7.7":      true,
		"192.16.8.1":       false,
		"2001:db8::5":      true,
		"::1":              true,
		"::ffff:127.0.0.1": true,
		"2001:db9::1":      false,
		"fe80::1%eth0":     true, // a link-local client keeps its zone
		"192.0.2.9":        true, // ::ffff:192.0.2.0/120
		"192.0.3.1":        false,
		"fec0::9%eth0":     false,
	} {
		if got := RelayMatch(rules, netip.MustParseAddr(ip)); got != want {
			t.Errorf("RelayMatch(%s) = %v", ip, got)
		}
	}
}

// TestRelayRuleValid: the lines the listener warns about are exactly the
// ones RelayMatch cannot read.
func TestRelayRuleValid(t *testing.T) {
	for r, want := range map[string]bool{
		"127.0.0.1": true, " 10.0.0.0/8 ": true, "192.168.": true, "10.": true, "::1": true, "2001:db8::/32": true,
		"127": false, "10.0.0.0/33": false, `127.0.0.1:allow,RELAYCLIENT=""`: false, "127.0.0.1 # me": false,
		"256.": false, "1.2.3.4.": false, "01.": false, "garbage": false, ".": false,
	} {
		if got := relayRuleValid(r); got != want {
			t.Errorf("relayRuleValid(%q) = %v, want %v", r, got, want)
		}
	}
}

// TestListener runs the standalone listener: loopback clients relay by
// default, and control/relayclients replaces that default.
func TestListener(t *testing.T) {
	q := useMemQueue(t)
	for _, tc := range []struct {
		name   string
		rules  string // "" = no relayclients file
		prefix string
		warn   string // in the log
	}{
		{"default relays loopback", "", "250 ", ""},
		{"relayclients without loopback", "10.0.0.0/8\n", "553 ", ""},
		{"relayclients with loopback", "127.0.0.0/8\n", "250 ", ""},
		{"tcprules line", "127.0.0.1:allow,RELAYCLIENT=\"\"\n", "553 ",
			`warning: control/relayclients: ignored line (not an address, CIDR prefix or dotted prefix): "127.0.0.1:allow,RELAYCLIENT=\"\""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctl := map[string]string{}
			if tc.rules != "" {
				ctl["relayclients"] = tc.rules
			}
			srv, logb := startListener(t, testRoot(t, ctl), 2)
			c := dial(t, srv)
			if got := c.last(); got != "220 mx.example.org ESMTP" {
				t.Errorf("greeting %q", got)
			}
			c.expectPrefix("HELO x", "250 ")
			c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
			c.expectPrefix("RCPT TO:<far@foreign.example>", tc.prefix)
			c.expectPrefix("QUIT", "221 ")
			if got := logb.String(); (tc.warn == "") == strings.Contains(got, "warning:") || !strings.Contains(got, tc.warn) {
				t.Errorf("log %q, want %q", got, tc.warn)
			}
		})
	}
	_ = q
}

// TestListenerQueueEnv: the qmail-queue of a -listen session (a
// $QMAILQUEUE filter reads them) gets the client's address and its
// RELAYCLIENT as tcpserver would set them, never the values of the
// listener's own environment.
func TestListenerQueueEnv(t *testing.T) {
	q := useMemQueue(t)
	t.Setenv("TCPREMOTEIP", "6.6.6.6")
	t.Setenv("TCPREMOTEPORT", "666")
	t.Setenv("RELAYCLIENT", "@relayed")
	t.Setenv("HQ_TEST_KEPT", "yes")
	srv, _ := startListener(t, testRoot(t, nil), 2)
	c := dial(t, srv)
	c.last() // the greeting
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<far@foreign.example>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.expectPrefix("Subject: x\r\n\r\nbody\r\n.", "250 ")
	c.expectPrefix("QUIT", "221 ")
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.envs) != 1 {
		t.Fatalf("%d messages queued", len(q.envs))
	}
	env := strings.Join(q.envs[0], "\n") + "\n"
	for _, want := range []string{"TCPREMOTEIP=127.0.0.1\n", "RELAYCLIENT=\n", "TCPLOCALHOST=mx.example.org\n", "HQ_TEST_KEPT=yes\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("qmail-queue's environment lacks %q:\n%s", want, env)
		}
	}
	for _, bad := range []string{"6.6.6.6", "TCPREMOTEPORT=666", "@relayed"} {
		if strings.Contains(env, bad) {
			t.Errorf("qmail-queue's environment has the listener's %q:\n%s", bad, env)
		}
	}
}

// startListener serves a Listener (at most max sessions) on a loopback
// port until the test ends; its log is returned.
func startListener(t *testing.T, root string, max int) (*server, *testutil.SyncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	logb := &testutil.SyncBuffer{}
	l := &Listener{Root: root, Getenv: noEnv, Log: log.New(logb, "", 0), MaxConns: max}
	go func() { done <- l.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("listener did not stop")
		}
	})
	return &server{addr: ln.Addr().String()}, logb
}

// TestListenerLog: each session's "ok" and "end" lines carry its number
// (and the client's port), so that two sessions of one client pair up,
// and reaching the session limit is logged.
func TestListenerLog(t *testing.T) {
	useMemQueue(t)
	srv, logb := startListener(t, testRoot(t, nil), 1)
	c1 := dial(t, srv)
	c1.last()
	waitFor := func(what string) {
		t.Helper()
		for i := 0; i < 200 && !strings.Contains(logb.String(), what); i++ {
			time.Sleep(25 * time.Millisecond)
		}
		if !strings.Contains(logb.String(), what) {
			t.Fatalf("log lacks %q:\n%s", what, logb.String())
		}
	}
	waitFor("status: 1/1 sessions, new connections wait")
	c2 := dial(t, srv) // waits in the listen queue
	c1.expectPrefix("QUIT", "221 ")
	if got := c2.last(); got != "220 mx.example.org ESMTP" {
		t.Errorf("second greeting %q", got)
	}
	c2.expectPrefix("QUIT", "221 ")
	waitFor("end 2 127.0.0.1 status 0")
	for _, want := range []string{"ok 1 127.0.0.1 port ", "end 1 127.0.0.1 status 0", "ok 2 127.0.0.1 port "} {
		if !strings.Contains(logb.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logb.String())
		}
	}
}

// TestListenerSessionLog: a session refused with 421 for a control file
// it cannot read is logged like any other, "ok" first and "end ... status
// 1" last (the exit status qmail-smtpd(8) gives a 421), and the error
// between them, like a session's warnings, carries the session number and
// the client's address.
func TestListenerSessionLog(t *testing.T) {
	useMemQueue(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, ctl string)
		// want are the log lines in order, each a prefix followed by
		// text it must contain.
		want    [][2]string
		refused bool
	}{
		{"unreadable rcpthosts", func(t *testing.T, ctl string) { unreadable(t, filepath.Join(ctl, "rcpthosts")) },
			[][2]string{{"ok 1 127.0.0.1 port ", ""}, {"1 127.0.0.1 unable to read controls: ", "rcpthosts"},
				{"end 1 127.0.0.1 status 1", ""}}, true},
		{"unreadable relayclients", func(t *testing.T, ctl string) { unreadable(t, filepath.Join(ctl, "relayclients")) },
			[][2]string{{"ok 1 127.0.0.1 port ", ""}, {"1 127.0.0.1 unable to read controls: ", "relayclients"},
				{"end 1 127.0.0.1 status 1", ""}}, true},
		{"warnings", func(t *testing.T, ctl string) {
			selfSigned(t, filepath.Join(ctl, "servercert.pem"))
			os.Chmod(filepath.Join(ctl, "servercert.pem"), 0o644)
			os.WriteFile(filepath.Join(ctl, "relayclients"), []byte("127.0.0.1:allow\n"), 0o644)
		}, [][2]string{{"ok 1 127.0.0.1 port ", ""}, {"1 127.0.0.1 warning: servercert.pem: mode 0644 ", ""},
			{"1 127.0.0.1 warning: control/relayclients: ignored line ", "127.0.0.1:allow"},
			{"end 1 127.0.0.1 status 0", ""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testRoot(t, nil)
			tc.setup(t, filepath.Join(root, "control"))
			srv, logb := startListener(t, root, 2)
			c := dial(t, srv)
			if tc.refused {
				if got := c.last(); got != "421 unable to read controls (#4.3.0)" {
					t.Errorf("reply %q", got)
				}
				if !c.closed() {
					t.Errorf("session not ended")
				}
			} else {
				c.last()
				c.expectPrefix("QUIT", "221 ")
			}
			end := tc.want[len(tc.want)-1][0]
			for i := 0; i < 400 && !strings.Contains(logb.String(), end); i++ {
				time.Sleep(25 * time.Millisecond)
			}
			lines := strings.Split(strings.TrimSuffix(logb.String(), "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("log has %d lines, want %d:\n%s", len(lines), len(tc.want), logb.String())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w[0]) || !strings.Contains(lines[i], w[1]) {
					t.Errorf("log line %d %q, want %q ... %q", i+1, lines[i], w[0], w[1])
				}
			}
		})
	}
}

// unreadable makes path a control file qmail-smtpd cannot read: mode 000,
// or for root, whom no mode stops, a directory in its place.
func unreadable(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		os.Remove(path)
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, []byte("example.org\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0)
}

// selfSigned writes a certificate and key for "mx.example.org" as one PEM
// file, the format of control/servercert.pem.
func selfSigned(t *testing.T, path string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	selfSignedWith(t, path, key)
}

// selfSignedWith writes to path a certificate for mx.example.org signed
// by key, and key (PKCS #8), as servercert.pem holds them.
func selfSignedWith(t *testing.T, path string, key crypto.Signer) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.example.org"},
		DNSNames:     []string{"mx.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStartTLS: with control/servercert.pem, STARTTLS is offered and
// mail sent over TLS is queued; go-smtp's own client is the peer.
func TestStartTLS(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	selfSigned(t, filepath.Join(root, "control", "servercert.pem"))
	s := startServer(t, root, loopPeer, nil)
	raw := dial(t, s)
	raw.last()
	raw.send("EHLO x\r\n")
	if ehlo := strings.Join(raw.reply(), "|"); !strings.Contains(ehlo, "250-STARTTLS|") {
		t.Fatalf("STARTTLS not offered: %s", ehlo)
	}
	// RFC 3207 §4: no parameters; the session goes on in clear text.
	raw.expect("STARTTLS now", "501 Syntax error (no parameters allowed) (#5.5.4)")
	raw.expect("NOOP", "250 ok")
	c, err := smtp.DialStartTLS(s.addr, &tls.Config{ServerName: "mx.example.org", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("a@b.example", []string{"u@example.org"}, strings.NewReader("Subject: tls\r\n\r\nsecret\r\n")); err != nil {
		t.Fatal(err)
	}
	if st, ok := c.TLSConnectionState(); !ok || !st.HandshakeComplete {
		t.Fatalf("mail was not sent over TLS")
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := q.all()
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Msg, "Received: from localhost (127.0.0.1)\n") ||
		!strings.HasSuffix(msgs[0].Msg, "\nSubject: tls\n\nsecret\n") {
		t.Fatalf("queued %+v", msgs)
	}
	// Its owner alone may read it; one that others may read is used, with a
	// warning.
	cert := filepath.Join(root, "control", "servercert.pem")
	if cfg, warn, err := LoadConfig(root, noEnv); err != nil || warn != nil || cfg.TLS == nil {
		t.Errorf("servercert.pem 0600: cfg.TLS=%v warn=%v err=%v", cfg != nil && cfg.TLS != nil, warn, err)
	}
	os.Chmod(cert, 0o640)
	if cfg, warn, err := LoadConfig(root, noEnv); err != nil || warn == nil || !strings.Contains(warn.Error(), "mode 0640") || cfg.TLS == nil {
		t.Errorf("servercert.pem 0640: cfg.TLS=%v warn=%v err=%v", cfg != nil && cfg.TLS != nil, warn, err)
	}
	// A broken certificate file disables STARTTLS with a warning.
	os.WriteFile(filepath.Join(root, "control", "servercert.pem"), []byte("junk"), 0o600)
	cfg, warn, err := LoadConfig(root, noEnv)
	if err != nil || warn == nil || cfg.TLS != nil {
		t.Errorf("broken servercert.pem: cfg.TLS=%v warn=%v err=%v", cfg != nil && cfg.TLS != nil, warn, err)
	}
}

// TestFatalControls: a morercpthosts.cdb that becomes unreadable after
// the session's controls were read, or a host whose interface list cannot
// be read when an IP literal needs it, ends the session with qmail's 421
// at the RCPT that needs it.
func TestFatalControls(t *testing.T) {
	useMemQueue(t)
	root := testRoot(t, nil)
	more := filepath.Join(root, "control", "morercpthosts.cdb")
	if err := cdb.WriteFile(more, 0o644, []cdb.Record{{Key: []byte("more.example")}}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, root, loopPeer, nil)
	os.Remove(more)
	os.Mkdir(more, 0o755) // read fails with EISDIR
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<>", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ") // listed: the cdb is not needed
	c.expect("RCPT TO:<u@other.example>", "421 unable to read controls (#4.3.0)")
	if !c.closed() {
		t.Errorf("session not ended")
	}

	oldAddrs := interfaceAddrs
	interfaceAddrs = func() ([]net.Addr, error) { return nil, os.ErrPermission }
	t.Cleanup(func() { interfaceAddrs = oldAddrs })
	c = dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<>", "250 ")
	c.expect("RCPT TO:<u@[192.0.2.1]>", "421 unable to figure out my IP addresses (#4.3.0)")
	if !c.closed() {
		t.Errorf("session not ended")
	}
}

// TestMoreRcpthostsUnreadableAtConnect: a morercpthosts.cdb that exists
// but cannot be opened, or is no cdb, fails the session's control reading
// as any other control file does: 421 at connect (qmail opens the cdb
// before its greeting), not at the first RCPT that needs it, and even for
// a session whose recipients are all in rcpthosts. The -listen listener
// reads it afresh for each connection: once it is mended the next session
// is served.
func TestMoreRcpthostsUnreadableAtConnect(t *testing.T) {
	useMemQueue(t)
	root := testRoot(t, nil)
	more := filepath.Join(root, "control", "morercpthosts.cdb")
	srv, logb := startListener(t, root, 2)
	for _, tc := range []struct {
		name string
		make func() error
		log  string
	}{
		{"directory", func() error { return os.Mkdir(more, 0o755) }, "unable to read controls: read " + more + ": is a directory"},
		{"fifo", func() error { return syscall.Mkfifo(more, 0o644) }, "unable to read controls: open " + more + ": not a regular file"},
		{"short", func() error { return os.WriteFile(more, []byte("junk"), 0o644) }, "unable to read controls: " + more + ": cdb: bad format"},
	} {
		os.Remove(more)
		if err := tc.make(); err != nil {
			t.Fatal(err)
		}
		c := dial(t, srv)
		if got := c.last(); got != "421 unable to read controls (#4.3.0)" {
			c.conn.Close()
			t.Fatalf("%s: greeting %q, want the 421", tc.name, got)
		}
		if !c.closed() {
			t.Errorf("%s: session not ended", tc.name)
		}
		if got := logb.String(); !strings.Contains(got, tc.log+"\n") {
			t.Errorf("%s: log %q, want the line %q", tc.name, got, tc.log)
		}
	}
	os.Remove(more)
	if err := cdb.WriteFile(more, 0o644, []cdb.Record{{Key: []byte("more.example")}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv)
	if got := c.last(); got != "220 mx.example.org ESMTP" {
		t.Errorf("mended: greeting %q", got)
	}
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@more.example>", "250 ")
	c.expectPrefix("QUIT", "221 ")
}

// TestMainUsage: -h prints the usage once and exits 0; a bad flag, or an
// argument with -listen, prints it once and exits 100 (without -listen
// arguments are ignored: TestOneSessionIgnoresArgs).
func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"-h"}, 0}, {[]string{"-x"}, 100}, {[]string{"-x", "extra"}, 100}, {[]string{"-listen", "127.0.0.1:0", "extra"}, 100},
		{[]string{"-listen", "127.0.0.1:0", "-c", "0"}, 100}} {
		var stderr bytes.Buffer
		if code := Main(tc.args, &stderr); code != tc.code || strings.Count(stderr.String(), "usage: qmail-smtpd") != 1 {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, stderr.String())
		}
	}
}

// TestZeroAddressLocal: [0.0.0.0] is this host, as in qmail's list of its
// own addresses (ipme) and in qmail-remote's: the literal is replaced by
// localiphost and accepted without rcpthosts listing it. It was refused
// (553), and with RELAYCLIENT went to the remote channel, where
// qmail-remote bounced it as a loop.
func TestZeroAddressLocal(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"localiphost": "example.org\n"})
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@foreign.example>", "250 ")
	c.expectPrefix("RCPT TO:<postmaster@[0.0.0.0]>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	msgs := q.all()
	if len(msgs) != 1 || strings.Join(msgs[0].Env.Recipients, " ") != "postmaster@example.org" {
		t.Fatalf("queued %+v, want postmaster@example.org", msgs)
	}
}
