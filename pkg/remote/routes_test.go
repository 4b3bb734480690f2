package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRoutes(t *testing.T) {
	tab := ParseTable(append(strings.Split(`example.com:relay.example.net
.example.com:sub.relay:2525
.com:com.relay
Other.Org:
dup.test:first
dup.test:second:26
lit.test:[192.0.2.1]:587
v6.test:[IPv6:2001:db8::1]:465
badport.test:x.relay:nope
trail.test:t.relay:2653x
:default.relay`, "\n"), "crport.test:cr.relay:2652\r", "crrelay.test:r.relay\r", "crmx.test:\r"))
	tests := []struct {
		host  string
		route string
		ok    bool
	}{
		{"example.com", "relay.example.net:25", true},
		{"EXAMPLE.COM", "relay.example.net:25", true},
		{"example.com.", "relay.example.net:25", true}, // a trailing dot escapes no line
		{"a.b.example.com.", "sub.relay:2525", true},
		{"a.b.example.com", "sub.relay:2525", true},
		{"x.com", "com.relay:25", true},
		{"other.org", "", false}, // empty relay: MX
		{"dup.test", "second:26", true},
		{"lit.test", "[192.0.2.1]:587", true},
		{"v6.test", "[IPv6:2001:db8::1]:465", true},
		{"badport.test", "x.relay:25", true},
		// Leading digits, as qmail's scan_ulong (a file with CRLF ends).
		{"crport.test", "cr.relay:2652", true},
		{"trail.test", "t.relay:2653", true},
		{"crrelay.test", "r.relay:25", true},
		{"crmx.test", "", false}, // empty relay (CR aside): MX
		{"elsewhere.net", "default.relay:25", true},
	}
	for _, tt := range tests {
		r, ok := tab.LookupRoute(tt.host)
		got := ""
		if ok {
			got = r.Relay + ":" + itoa(r.Port)
		}
		if ok != tt.ok || got != tt.route {
			t.Errorf("%s: got %q %v want %q %v", tt.host, got, ok, tt.route, tt.ok)
		}
	}
	if _, ok := ParseTable([]string{"a.test:r"}).LookupRoute("b.test"); ok {
		t.Error("route without a default key matched")
	}
}

func TestTLSPolicy(t *testing.T) {
	tab := ParseTable([]string{"a.test:require", ".b.test:none", "c.test:ENCRYPT", "d.test:reqiure", "e.test:", ":try"})
	for host, want := range map[string]string{
		"a.test": TLSRequire, "x.b.test": TLSNone, "c.test": TLSEncrypt,
		"d.test": TLSRequire, "e.test": TLSTry, "f.test": TLSTry,
	} {
		if got := tab.TLSPolicy(host, false); got != want {
			t.Errorf("%s: %s want %s", host, got, want)
		}
	}
	if got := Table(nil).TLSPolicy("x", false); got != TLSTry {
		t.Errorf("empty table: %s", got)
	}
}

func TestParseAuth(t *testing.T) {
	m := ParseAuth([]string{"Relay.Test:user:pa:ss", "[192.0.2.1]:u2:p2", "bad", "nouser.test::p", "relay.test:user2:p3"})
	if c := m["relay.test"]; c.User != "user2" || c.Password != "p3" {
		t.Errorf("relay.test: %+v", c)
	}
	if c := m["[192.0.2.1]"]; c.User != "u2" || c.Password != "p2" {
		t.Errorf("literal: %+v", c)
	}
	if _, ok := m["nouser.test"]; ok || len(m) != 2 {
		t.Errorf("map %v", m)
	}
	if c := ParseAuth([]string{"r:u:a:b:c"})["r"]; c.Password != "a:b:c" {
		t.Errorf("colon password %+v", c)
	}
}

// FuzzRoutes: parsing and lookup of any smtproutes text never panics and
// yields ports in range.
func FuzzRoutes(f *testing.F) {
	f.Add("example.com:relay:25\n:x\n.a:[1.2.3.4]:9", "b.a")
	f.Add("[:]:\n::::", "")
	f.Fuzz(func(t *testing.T, text, host string) {
		tab := ParseTable(strings.Split(text, "\n"))
		if r, ok := tab.LookupRoute(host); ok && (r.Port < 1 || r.Port > 65535 || r.Relay == "") {
			t.Fatalf("route %+v", r)
		}
		tab.TLSPolicy(host, false)
		tab.TLSPolicy(host, true)
		ParseAuth(strings.Split(text, "\n"))
	})
}

// TestRoutesIDN: a key and a host compare in one form, the A-labels DNS
// looks the host up by, so either spelling of either side matches the
// other (QA: a tlsroutes line for xn--bcher-kva.test let mail to
// bücher.test go out in clear; an smtproutes line for xn--mller-kva.test
// was not used for müller.test).
func TestRoutesIDN(t *testing.T) {
	tab := ParseTable([]string{
		"xn--mller-kva.test:a.relay",
		"bücher.test:u.relay:2525",
		".xn--caf-dma.test:sub-a.relay",
		".straße.test:sub-u.relay",
		"MÜNCHEN.test:upper.relay",
		"XN--N3H.test:snow.relay",
		"fq.test.:fq.relay", // written fully qualified
		".fqsub.test.:fqsub.relay",
	})
	tests := []struct{ host, route string }{
		{"xn--mller-kva.test", "a.relay:25"},
		{"müller.test", "a.relay:25"},
		{"Müller.TEST", "a.relay:25"},
		{"MÜLLER.test.", "a.relay:25"},
		{"bücher.test", "u.relay:2525"},
		{"xn--bcher-kva.test", "u.relay:2525"},
		{"XN--BCHER-KVA.Test", "u.relay:2525"},
		{"BÜCHER.test", "u.relay:2525"},
		{"mx.café.test", "sub-a.relay:25"},
		{"a.b.xn--caf-dma.test", "sub-a.relay:25"},
		{"café.test", ""}, // ".x" holds the subdomains only
		{"mx.xn--strae-oqa.test", "sub-u.relay:25"},
		{"mx.straße.test", "sub-u.relay:25"},
		{"ünter.straße.test", "sub-u.relay:25"},
		{"xn--mnchen-3ya.test", "upper.relay:25"},
		{"münchen.test", "upper.relay:25"},
		{"☃.test", "snow.relay:25"},
		{"bucher.test", ""},
		{"xn--bcher-kva.test.example", ""},
		{"fq.test", "fq.relay:25"},
		{"fq.test.", "fq.relay:25"},
		{"a.fqsub.test", "fqsub.relay:25"},
	}
	checkRoutes(t, tab, tests)
}

// checkRoutes looks each host up in tab and compares the route found,
// "relay:port" ("" for none), with the one wanted.
func checkRoutes(t *testing.T, tab Table, tests []struct{ host, route string }) {
	t.Helper()
	for _, tt := range tests {
		r, ok := tab.LookupRoute(tt.host)
		got := ""
		if ok {
			got = r.Relay + ":" + itoa(r.Port)
		}
		if got != tt.route {
			t.Errorf("%s: got %q want %q", tt.host, got, tt.route)
		}
	}
}

func TestTLSPolicyIDN(t *testing.T) {
	for _, tc := range []struct {
		line string
		host string
		want string
	}{
		{"xn--bcher-kva.test:encrypt", "bücher.test", TLSEncrypt},
		{"xn--bcher-kva.test:encrypt", "xn--bcher-kva.test", TLSEncrypt},
		{"xn--bcher-kva.test:encrypt", "Bücher.Test.", TLSEncrypt},
		{"bücher.test:encrypt", "xn--bcher-kva.test", TLSEncrypt},
		{"bücher.test:encrypt", "XN--BCHER-KVA.TEST", TLSEncrypt},
		{"Bücher.test:require", "bücher.test", TLSRequire},
		{".bücher.test:require", "mx.xn--bcher-kva.test", TLSRequire},
		{".xn--bcher-kva.test:require", "mx.bücher.test", TLSRequire},
		{".test:none", "bücher.test", TLSNone},
		{"bücher.test:encrypt", "bucher.test", TLSTry},
		{"[192.0.2.1]:require", "[192.0.2.1]", TLSRequire}, // literals as before
	} {
		if got := ParseTable([]string{tc.line}).TLSPolicy(tc.host, false); got != tc.want {
			t.Errorf("%q: %s: %s want %s", tc.line, tc.host, got, tc.want)
		}
	}
}

func TestAuthForIDN(t *testing.T) {
	lines := []string{"relay.bücher.test:u1:p1", "XN--MLLER-KVA.test:u2:p2", "[192.0.2.1]:u3:p3"}
	for relay, want := range map[string]string{
		"relay.bücher.test":        "u1",
		"relay.xn--bcher-kva.test": "u1",
		"RELAY.BÜCHER.test":        "u1",
		"müller.test":              "u2",
		"xn--mller-kva.test":       "u2",
		"[192.0.2.1]":              "u3",
		"relay.bucher.test":        "",
	} {
		c, ok := AuthFor(lines, relay)
		if ok != (want != "") || c.User != want {
			t.Errorf("AuthFor(%q) = %+v %v, want %q", relay, c, ok, want)
		}
	}
}

// TestMainTLSRoutesIDN: QA's case end to end: with a tlsroutes line for
// the A-label spelling, mail to the U-label spelling is not sent in clear
// to a peer that offers no STARTTLS (it went out in plain text), and the
// other way round. Every host is routed to the peer by the default
// route (no DNS; TestRoutesIDN covers route keys).
func TestMainTLSRoutesIDN(t *testing.T) {
	for _, tc := range []struct{ tlsKey, host string }{
		{"xn--bcher-kva.test", "bücher.test"},
		{"bücher.test", "xn--bcher-kva.test"},
		{".xn--bcher-kva.test", "mx.bücher.test"},
		{".bücher.test", "mx.XN--BCHER-KVA.test"},
	} {
		addr, lines := peer(t, nil)
		root := peerRoot(t, addr.Port, map[string]string{"tlsroutes": tc.tlsKey + ":encrypt\n"})
		msg, err := os.Create(filepath.Join(t.TempDir(), "msg"))
		if err != nil {
			t.Fatal(err)
		}
		msg.WriteString("Subject: x\n\nbody\n")
		msg.Seek(0, 0)
		var out strings.Builder
		Main(root, []string{tc.host, "f@x.test", "u@" + tc.host}, msg, &out)
		msg.Close()
		want := "ZConnected to 127.0.0.1 but it does not offer STARTTLS, which control/tlsroutes requires. (#4.7.0)\n\x00"
		if out.String() != want {
			t.Errorf("%+v: report %q, want %q", tc, out.String(), want)
		}
		select {
		case got := <-lines:
			for _, l := range got {
				if strings.HasPrefix(l, "MAIL") || strings.HasPrefix(l, "RCPT") {
					t.Errorf("%+v: sent in clear: %q", tc, got)
					break
				}
			}
		case <-time.After(15 * time.Second):
			t.Fatal("peer did not finish")
		}
	}
}

// TestAuthForTrailingDot: a trailing dot of the relay, in smtproutes or in
// smtpauth, does not count, as for the keys of smtproutes and tlsroutes
// (QA: the relay "smarthost.test." of smtproutes found no login under
// "SMARTHOST.test", no AUTH was sent and the mail bounced; the other way
// round the relay was only ever found by its dotted spelling).
func TestAuthForTrailingDot(t *testing.T) {
	for _, tc := range []struct {
		lines       []string
		relay, want string
	}{
		{[]string{"SMARTHOST.test:me@example.org:p a:ss#", "other.test:you:x"}, "smarthost.test.", "me@example.org"},
		{[]string{"other.test:you:x", "smarthost.test.:me@example.org:p a:ss#"}, "smarthost.test", "me@example.org"},
		{[]string{"smarthost.test.:me@example.org:p a:ss#"}, "SMARTHOST.TEST.", "me@example.org"},
		{[]string{"bücher.test.:me:pw"}, "xn--bcher-kva.test", "me"},
		{[]string{"[192.0.2.1]:me:pw"}, "[192.0.2.1]", "me"},
		{[]string{"smarthost.test:me:pw"}, "smarthost.test..", ""},
		{[]string{"smarthost.test:me:pw"}, "smarthost", ""},
	} {
		c, ok := AuthFor(tc.lines, tc.relay)
		if ok != (tc.want != "") || c.User != tc.want {
			t.Errorf("AuthFor(%q, %q) = %+v %v, want %q", tc.lines, tc.relay, c, ok, tc.want)
		}
	}
	if c, ok := AuthFor([]string{"smarthost.test:me:p a:ss#"}, "smarthost.test."); !ok || c.Password != "p a:ss#" {
		t.Errorf("password %q %v", c.Password, ok)
	}
}

// TestKeepKeyTrailingDot: a connection kept for the relay
// "smarthost.test." serves a delivery routed to "SMARTHOST.test" (one
// server, one login), and RelayKey, the spawner's pool key, agrees.
func TestKeepKeyTrailingDot(t *testing.T) {
	key := func(relay string) keepKey {
		d := &delivery{cfg: &Config{Helo: "h.test"}, routed: true, route: Route{Relay: relay, Port: 2640}, policy: TLSLogin,
			creds: &Credentials{User: "me", Password: "pw"}}
		return d.key()
	}
	if a, b := key("smarthost.test."), key("SMARTHOST.test"); a != b {
		t.Errorf("keep keys differ: %+v %+v", a, b)
	}
	if a, b := key("[IPv6:2001:DB8::1]"), key("[2001:db8::1]"); a != b {
		t.Errorf("keep keys of one literal differ: %+v %+v", a, b)
	}
	if a, b := RelayKey("smarthost.test."), RelayKey("SMARTHOST.test"); a != b {
		t.Errorf("RelayKey %q %q", a, b)
	}
}
