package dnsmx_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hqmail/hqmail/pkg/dnsmx"
	"github.com/hqmail/hqmail/test/dnstest"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in       string
		servers  string
		timeout  time.Duration
		attempts int
	}{
		{"", "127.0.0.1:53", 5 * time.Second, 2},
		{"nameserver 192.0.2.1\nnameserver ::1\n", "192.0.2.1:53 [::1]:53", 5 * time.Second, 2},
		{"nameserver 127.0.0.1:5353\nnameserver [::1]:54\nnameserver bogus\n", "127.0.0.1:5353 [::1]:54", 5 * time.Second, 2},
		{"# c\n; c\nsearch x.test\noptions ndots:2 timeout:1 attempts:3\nnameserver 10.0.0.1", "10.0.0.1:53", time.Second, 3},
		{"options timeout:999 attempts:0", "127.0.0.1:53", 30 * time.Second, 2},
		// A link-local server with its zone, as NetworkManager writes one
		// learnt from a router advertisement (it was skipped).
		{"nameserver fe80::53%wlan0\nnameserver [fe80::1%eth0]:5353\n", "[fe80::53%wlan0]:53 [fe80::1%eth0]:5353", 5 * time.Second, 2},
	}
	for _, tt := range tests {
		c, err := dnsmx.ParseConfig(strings.NewReader(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Servers, " "); got != tt.servers || c.Timeout != tt.timeout || c.Attempts != tt.attempts {
			t.Errorf("%q: got %s %v %d", tt.in, got, c.Timeout, c.Attempts)
		}
	}
}

func TestLiteral(t *testing.T) {
	tests := map[string]string{
		"1.2.3.4":               "1.2.3.4",
		"[1.2.3.4]":             "1.2.3.4",
		"[IPv6:2001:db8::1]":    "2001:db8::1",
		"[ipv6:::1]":            "::1",
		"1.2.3":                 "",
		"example.com":           "",
		"[example.com]":         "",
		"2001:db8::1":           "",
		"[IPv6:1.2.3.4]":        "",
		"[]":                    "",
		"1.2.3.4.":              "",
		"256.1.1.1":             "",
		"[IPv6:2001:db8::1%lo]": "",
		"[IPv6:::ffff:1.2.3.4]": "1.2.3.4", // RFC 5321's IPv6v4 forms
		"[IPv6:::1.2.3.4]":      "::102:304",
		"[::1]":                 "::1", // the tag left out, as in smtproutes
		"[2001:db8::1]":         "2001:db8::1",
		"[::ffff:1.2.3.4]":      "",
		"[1:2]":                 "",
	}
	for in, want := range tests {
		got := ""
		if ip := dnsmx.Literal(in); ip != nil {
			got = ip.String()
		}
		if got != want {
			t.Errorf("Literal(%q) = %q want %q", in, got, want)
		}
	}
}

func resolver(t *testing.T, s *dnstest.Server) *dnsmx.Resolver {
	c, err := dnsmx.ParseConfig(strings.NewReader(s.ResolvConf()))
	if err != nil {
		t.Fatal(err)
	}
	return &dnsmx.Resolver{Conf: c, Shuffle: func(int, func(i, j int)) {}}
}

func format(as []dnsmx.Addr) string {
	var b []string
	for _, a := range as {
		b = append(b, fmt.Sprintf("%d %s %s", a.Pref, a.Name, a.IP))
	}
	return strings.Join(b, ", ")
}

func TestMX(t *testing.T) {
	s := dnstest.Start(t)
	s.Add(
		"mx.test. MX 20 b.mx.test.",
		"mx.test. MX 10 a.mx.test.",
		"mx.test. MX 20 gone.mx.test.",
		"mx.test. MX 30 slow.mx.test.",
		"a.mx.test. A 192.0.2.1",
		"a.mx.test. A 192.0.2.2",
		"b.mx.test. AAAA 2001:db8::2",
		"b.mx.test. A 192.0.2.3",
		"noaddr.test. MX 10 gone.mx.test.",
		"tempaddr.test. MX 10 slow.mx.test.",
		"plain.test. A 192.0.2.9",
		"nullmx.test. MX 0 .",
		"nullmx.test. A 192.0.2.70", // a null MX has no A fallback
		"nullmx2.test. MX 0 .",
		"nullmx2.test. MX 10 .",
		"mixnull.test. MX 0 .", // RFC 7505 forbids it; the real exchanger is used
		"mixnull.test. MX 10 a.mx.test.",
		"nullnoaddr.test. MX 0 .",
		"nullnoaddr.test. MX 10 gone.mx.test.",
		"ipmx.test. MX 10 192.0.2.50.",
		"ipmx.test. MX 20 [192.0.2.51].",
		"mxnx.test. A 192.0.2.60",
		"xn--bcher-kva.test. MX 10 a.mx.test.",
	)
	s.NXDomainFor("mxnx.test.", dns.TypeMX)
	s.Exists("empty.test.")
	s.ServFail("servfail.test.")
	s.ServFail("slow.mx.test.")
	s.Silent("silent.test.")
	r := resolver(t, s)
	tests := []struct {
		host string
		want string
		err  error
		v6   bool
	}{
		{"mx.test", "10 a.mx.test 192.0.2.1, 10 a.mx.test 192.0.2.2, 20 b.mx.test 192.0.2.3, 20 b.mx.test 2001:db8::2", nil, false},
		{"MX.Test", "10 a.mx.test 192.0.2.1, 10 a.mx.test 192.0.2.2, 20 b.mx.test 2001:db8::2, 20 b.mx.test 192.0.2.3", nil, true},
		{"plain.test", "0 plain.test 192.0.2.9", nil, false},
		{"[192.0.2.77]", "0 [192.0.2.77] 192.0.2.77", nil, false},
		{"nxdomain.test", "", dnsmx.ErrNoHost, false},
		{"empty.test", "", dnsmx.ErrNoHost, false}, // no MX, no A: qmail's #5.1.2
		{"ipmx.test", "10 192.0.2.50 192.0.2.50, 20 [192.0.2.51] 192.0.2.51", nil, false},
		{"mxnx.test", "0 mxnx.test 192.0.2.60", nil, false},                           // NXDOMAIN for MX only: A fallback
		{"bücher.test", "10 a.mx.test 192.0.2.1, 10 a.mx.test 192.0.2.2", nil, false}, // IDN: by its A-labels
		{"servfail.test", "", dnsmx.ErrTemp, false},
		{"silent.test", "", dnsmx.ErrTemp, false},
		{"noaddr.test", "", dnsmx.ErrNoAddr, false},
		{"tempaddr.test", "", dnsmx.ErrTemp, false},
		{"nullmx.test", "", dnsmx.ErrNullMX, false},
		{"nullmx2.test", "", dnsmx.ErrNullMX, false},
		{"mixnull.test", "10 a.mx.test 192.0.2.1, 10 a.mx.test 192.0.2.2", nil, false},
		{"nullnoaddr.test", "", dnsmx.ErrNoAddr, false},
		{"bad..name", "", dnsmx.ErrNoHost, false},
		{"", "", dnsmx.ErrNoHost, false},
	}
	for _, tt := range tests {
		r.PreferIPv6 = tt.v6
		got, err := r.MX(tt.host)
		if !errors.Is(err, tt.err) || format(got) != tt.want {
			t.Errorf("MX(%q) = %q, %v; want %q, %v", tt.host, format(got), err, tt.want, tt.err)
		}
		// Only a domain whose every MX record is a null MX says it takes
		// no mail; other hosts without an exchanger keep their errors.
		if null := tt.host == "nullmx.test" || tt.host == "nullmx2.test"; null != errors.Is(err, dnsmx.ErrNullMX) {
			t.Errorf("MX(%q): %v; ErrNullMX expected: %v", tt.host, err, null)
		}
	}
}

// TestNullMXIsNoAddr: ErrNullMX is also ErrNoAddr (no exchanger, a
// permanent failure) for a caller that does not tell them apart.
func TestNullMXIsNoAddr(t *testing.T) {
	if !errors.Is(dnsmx.ErrNullMX, dnsmx.ErrNoAddr) {
		t.Error("ErrNullMX is not ErrNoAddr")
	}
}

// TestNoEDNSServer: with options edns0, a server that answers FORMERR to
// EDNS queries is asked again without EDNS (RFC 6891 §7), not given up as
// temporarily failing.
func TestNoEDNSServer(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("plain.test. A 192.0.2.9")
	s.RefuseEDNS()
	r := resolver(t, s)
	r.Conf.EDNS0 = true
	got, err := r.MX("plain.test")
	if err != nil || format(got) != "0 plain.test 192.0.2.9" {
		t.Errorf("MX via a server without EDNS = %q, %v", format(got), err)
	}
}

// TestEDNSDropped: by default queries carry no EDNS, as glibc's: a router's
// DNS proxy that ignores EDNS queries (or answers them NOTIMP) serves
// qmail-remote as it serves every other program (every delivery was
// deferred).
func TestEDNSDropped(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("plain.test. A 192.0.2.9")
	s.DropEDNS()
	got, err := resolver(t, s).MX("plain.test")
	if err != nil || format(got) != "0 plain.test 192.0.2.9" {
		t.Errorf("MX via a server that drops EDNS = %q, %v", format(got), err)
	}
	c, err := dnsmx.ParseConfig(strings.NewReader("options edns0\n"))
	if err != nil || !c.EDNS0 {
		t.Errorf("options edns0: %+v %v", c, err)
	}
}

// TestOversizeUDPAnswer: a UDP answer bigger than asked for, without TC
// (a proxy passing on an upstream answer), is read whole (it was cut at
// the read buffer, could not be parsed, and counted as a failed server).
// MaxAddrs of its addresses are kept.
func TestOversizeUDPAnswer(t *testing.T) {
	s := dnstest.Start(t)
	for i := 0; i < 101; i++ {
		s.Add(fmt.Sprintf("big.test. A 10.1.0.%d", i+1))
	}
	s.NoTruncate()
	as, err := resolver(t, s).MX("big.test")
	if err != nil || len(as) != dnsmx.MaxAddrs {
		t.Fatalf("got %d addresses, %v", len(as), err)
	}
}

func TestShuffleAmongEquals(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("eq.test. MX 10 a.eq.test.", "eq.test. MX 10 b.eq.test.", "eq.test. MX 5 c.eq.test.",
		"a.eq.test. A 192.0.2.1", "b.eq.test. A 192.0.2.2", "c.eq.test. A 192.0.2.3")
	r := resolver(t, s)
	r.Shuffle = nil
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 2; i++ {
		as, err := r.MX("eq.test")
		if err != nil {
			t.Fatal(err)
		}
		if as[0].Name != "c.eq.test" {
			t.Fatalf("lowest preference not first: %s", format(as))
		}
		seen[as[1].Name] = true
	}
	if len(seen) != 2 {
		t.Fatalf("equal preferences never reordered in 40 lookups: %v", seen)
	}
}

// FuzzParseConfig: any resolv.conf text parses into usable servers.
func FuzzParseConfig(f *testing.F) {
	f.Add("nameserver 127.0.0.1:5353\noptions timeout:1 attempts:1\n")
	f.Add("nameserver [::1]:53\nnameserver ::1\nsearch a b\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := dnsmx.ParseConfig(strings.NewReader(text))
		if err != nil {
			return
		}
		if len(c.Servers) == 0 || c.Attempts < 1 || c.Timeout <= 0 {
			t.Fatalf("config %+v", c)
		}
		for _, s := range c.Servers {
			if _, _, err := net.SplitHostPort(s); err != nil {
				t.Fatalf("server %q: %v", s, err)
			}
		}
		dnsmx.Literal(text)
	})
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	s := dnstest.Start(t)
	for i := 0; i < 200; i++ {
		s.Add(fmt.Sprintf("many.test. A 10.0.%d.%d", i/250, i%250+1))
	}
	r := resolver(t, s)
	as, err := r.MX("many.test")
	if err != nil || len(as) != dnsmx.MaxAddrs || !as[0].IP.Equal(net.IPv4(10, 0, 0, 1)) {
		t.Fatalf("got %d addresses, %v", len(as), err)
	}
	if s.TCPQueries() == 0 {
		t.Fatal("the truncated answer was not asked again over TCP")
	}
}
