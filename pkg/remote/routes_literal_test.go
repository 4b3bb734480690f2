package remote

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSRoutesLiteralKey: an address literal is a key of tlsroutes, its
// colons do not end it, and it matches the delivery's host by address, in
// any spelling qmail-remote connects to that address for (QA: the lines
// "[IPv6:fd42:6:1::2]:require" and "[fd42:6:1::2]:require" became the key
// "[ipv6" or "[fd42", and mail to u@[IPv6:fd42:6:1::2] went out in plain
// text to a peer without STARTTLS).
func TestTLSRoutesLiteralKey(t *testing.T) {
	for _, key := range []string{"[IPv6:fd42:6:1::2]", "[fd42:6:1::2]", "[ipv6:FD42:6:1:0:0:0:0:2]"} {
		tab := ParseTable([]string{key + ":require", ":try"})
		for _, host := range []string{"[IPv6:fd42:6:1::2]", "[ipv6:FD42:6:1:0::2]", "[fd42:6:1::2]", "[FD42:0006:0001::0002]", "[IPv6:fd42:6:1::2]."} {
			if got := tab.TLSPolicy(host, false); got != TLSRequire {
				t.Errorf("key %s, host %s: %s, want %s", key, host, got, TLSRequire)
			}
		}
		for _, host := range []string{"[IPv6:fd42:6:1::3]", "[fd42:6:1::3]", "fd42.test", "[ipv6"} {
			if got := tab.TLSPolicy(host, false); got != TLSTry {
				t.Errorf("key %s, host %s: %s, want %s", key, host, got, TLSTry)
			}
		}
	}
	// IPv4: bare, bracketed and IPv4-mapped in an IPv6 tag are one address
	// to qmail-remote (dnsmx.Literal), so one key.
	for _, key := range []string{"[198.18.6.2]", "198.18.6.2", "[IPv6:::ffff:198.18.6.2]", "[IPv6:::FFFF:c612:602]"} {
		tab := ParseTable([]string{key + ":require"})
		for _, host := range []string{"[198.18.6.2]", "198.18.6.2", "198.18.6.2.", "[IPv6:::ffff:198.18.6.2]", "[ipv6:0:0:0:0:0:ffff:c612:0602]"} {
			if got := tab.TLSPolicy(host, false); got != TLSRequire {
				t.Errorf("key %s, host %s: %s, want %s", key, host, got, TLSRequire)
			}
		}
	}
	// What qmail-remote looks up as a name, not an address, is a key as
	// written (lowercased), as before: a dotted quad with leading zeros
	// (net.ParseIP refuses it) and an untagged IPv4-mapped address.
	tab := ParseTable([]string{"[127.000.000.001]:require", "[::ffff:10.0.0.1]:encrypt", ":none"})
	for host, want := range map[string]string{
		"[127.000.000.001]": TLSRequire, "[127.0.0.1]": TLSNone,
		"[::FFFF:10.0.0.1]": TLSEncrypt, "[10.0.0.1]": TLSNone,
	} {
		if got := tab.TLSPolicy(host, false); got != want {
			t.Errorf("host %s: %s, want %s", host, got, want)
		}
	}
}

// TestRoutesLiteralKey: smtproutes takes an IPv6 literal key, and the
// split of every other line is qmail's (the key ends at the first ':').
func TestRoutesLiteralKey(t *testing.T) {
	tab := ParseTable([]string{
		"[IPv6:fd42:6:1::4]:[fd42:6:1::2]",
		"[fd42:6:1::5]:[IPv6:fd42:6:1::2]:2525",
		"[192.0.2.7]:relay.test:587",
		"a.test:b:c:d",        // key a.test, relay b, port c (25)
		"[broken:x.relay:26",  // no "]:": the key ends at the first ':', as before
		"[x]y:[192.0.2.9]:27", // a ']' not followed by ':' is no literal's end
	})
	tests := []struct{ host, route string }{
		{"[IPv6:fd42:6:1::4]", "[fd42:6:1::2]:25"},
		{"[fd42:6:1:0::4]", "[fd42:6:1::2]:25"},
		{"[IPv6:FD42:6:1::5]", "[IPv6:fd42:6:1::2]:2525"},
		{"192.0.2.7", "relay.test:587"},
		{"[192.0.2.7]", "relay.test:587"},
		{"a.test", "b:25"},
		{"[broken", "x.relay:26"},
		{"[x]y", "[192.0.2.9]:27"},
		{"[ipv6", ""},
	}
	checkRoutes(t, tab, tests)
}

// TestAuthForLiteral: a relay literal finds its login in smtpauth in any
// spelling of its address.
func TestAuthForLiteral(t *testing.T) {
	lines := []string{"[fd42:6:1::2]:u6:p6", "[IPv6:::ffff:192.0.2.1]:u4:p:4"}
	for relay, want := range map[string]string{
		"[IPv6:fd42:6:1::2]": "u6", "[IPv6:FD42:6:1:0::2]": "u6", "[fd42:6:1::2]": "u6",
		"[192.0.2.1]": "u4", "192.0.2.1": "u4", "[fd42:6:1::3]": "",
	} {
		c, _ := AuthFor(lines, relay)
		if c.User != want {
			t.Errorf("AuthFor(%q) = %+v, want user %q", relay, c, want)
		}
	}
}

// loopback6Peer serves an SMTP peer that offers no STARTTLS on [::1] (the
// lines of each connection come out of the function returned); the test
// skips when this host has no IPv6 loopback.
func loopback6Peer(t *testing.T) (*net.TCPAddr, func() [][]string) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	return servePeers(t, ln, selfSignedCert(t), "none")
}

// mainTo runs Main for mail from f@x.test to u@host with the control
// files given (and control/me) and returns its report.
func mainTo(t *testing.T, host string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	files["me"] = "h.test\n"
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(ctl, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := os.Create(filepath.Join(t.TempDir(), "msg"))
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	msg.WriteString("Subject: x\n\nbody\n")
	msg.Seek(0, 0)
	t.Chdir(root)
	var out strings.Builder
	Main(root, []string{host, "f@x.test", "u@" + host}, msg, &out)
	return out.String()
}

// TestTLSRoutesLiteralMain: end to end on [::1], a tlsroutes line keyed by
// an IPv6 literal refuses a peer without STARTTLS, in either spelling of
// key and host; and an smtproutes line keyed by one routes the mail.
func TestTLSRoutesLiteralMain(t *testing.T) {
	refused := "ZConnected to ::1 but it does not offer STARTTLS, which control/tlsroutes requires. (#4.7.0)\n\x00"
	accepted := "r\x00K::1 accepted message.\nRemote host said: 250 done\n\x00"
	for _, tc := range []struct {
		name, host, tlsroutes, report string
		literalRoute                  bool // smtproutes keyed by the host, not the default route
	}{
		{"tagged key, tagged host", "[IPv6:::1]", "[IPv6:::1]:require\n", refused, false},
		{"untagged key, other spelling", "[IPv6:0:0::1]", "[::1]:require\n", refused, false},
		{"tagged key, untagged host", "[::1]", "[ipv6:0::0:1]:require\n", refused, false},
		{"smtproutes literal key", "[IPv6:::1]", "", accepted, true},
		{"both literal keys", "[::1]", "[IPv6:::1]:require\n", refused, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := loopback6Peer(t)
			route := ":[::1]:" + itoa(addr.Port) + "\n"
			if tc.literalRoute {
				// No default route: without the key, mail to ::1
				// would go to port 25 of this host.
				route = "[IPv6:0::1]:[IPv6:::1]:" + itoa(addr.Port) + "\n"
			}
			files := map[string]string{"smtproutes": route}
			if tc.tlsroutes != "" {
				files["tlsroutes"] = tc.tlsroutes
			}
			if got := mainTo(t, tc.host, files); got != tc.report {
				t.Errorf("report\n got %q\nwant %q", got, tc.report)
			}
			sent := false
			for _, c := range conns() {
				for _, l := range c {
					if strings.HasPrefix(l, "MAIL") {
						sent = true
					}
				}
			}
			if want := tc.report == accepted; sent != want {
				t.Errorf("message sent: %v, want %v", sent, want)
			}
		})
	}
}
