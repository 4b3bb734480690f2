package remote

import (
	"strings"
	"testing"
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
		if got := tab.TLSPolicy(host); got != want {
			t.Errorf("%s: %s want %s", host, got, want)
		}
	}
	if got := Table(nil).TLSPolicy("x"); got != TLSTry {
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
		tab.TLSPolicy(host)
		ParseAuth(strings.Split(text, "\n"))
	})
}
