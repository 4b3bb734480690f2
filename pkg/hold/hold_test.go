package hold

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		all     bool
		domains []string
		junk    int
	}{
		{"empty file", "", true, nil, 0},
		{"one", "1\n", true, nil, 0},
		{"star", "*\n", true, nil, 0},
		{"blank first line", "\nexample.com\n", true, []string{"example.com"}, 0},
		{"list", "Example.COM\n.sub.example.org\n", false, []string{"example.com", ".sub.example.org"}, 0},
		{"duplicates", "a.example\nA.example\n", false, []string{"a.example"}, 0},
		{"comments", "# dial-up\na.example\n", false, []string{"a.example"}, 0},
		{"only comments", "# nothing\n", true, nil, 0},
		{"star later", "a.example\n*\n", false, []string{"a.example"}, 1},
		{"junk and domain", "a.example\nfoo bar\nuser@b.example\n", false, []string{"a.example"}, 2},
		{"only junk holds everything", "hello world\n", true, nil, 1},
		{"comment first", "# x\na.example\n", false, []string{"a.example"}, 0},
		// A hand-written flag holds everything whatever its line ends or
		// its word for "everything" (they used to be held domains "1",
		// "all", and mail flowed).
		{"one with cr", "1\r\n", true, nil, 0},
		// Notepad: a byte order mark, CR LF line ends.
		{"bom and crlf", "\xef\xbb\xbfa.example\r\nb.example\r\n", false, []string{"a.example", "b.example"}, 0},
		{"bom before one", "\xef\xbb\xbf1\r\n", true, nil, 0},
		{"star crlf then domain", "*\r\nexample.org\r\n", true, []string{"example.org"}, 0},
		{"blank around one", " 1 \n", true, nil, 0},
		{"all", "all\n", true, nil, 0},
		{"All words", "YES\n", true, nil, 0},
		{"hold", "Hold\n", true, nil, 0},
		{"all later is junk", "a.example\nall\n", false, []string{"a.example"}, 1},
		{"literal", "[192.0.2.1]\n", false, []string{"[192.0.2.1]"}, 0},
		{"dotted quad is the literal", "192.0.2.1\n[192.0.2.1]\n", false, []string{"[192.0.2.1]"}, 0},
		{"ipv6 literal", "[IPv6:2001:DB8::2]\n", false, []string{"[2001:db8::2]"}, 0},
		{"bad literal", "[IPv6:x]\n[IPv6:]\n", true, nil, 2},
		// One spelling per address; what is not an address is junk.
		{"long ipv6 literal", "[IPv6:0:0:0:0:0:0:0:1]\n[ipv6:::1]\n[::1]\n", false, []string{"[::1]"}, 0},
		{"not addresses", "a.example\n[300.1.1.1]\n[IPv6:1:2:3:4:5:6:7:8:9]\n[IPv6:192.0.2.1]\n", false, []string{"a.example"}, 3},
		{"crlf", "a.example\r\n", false, []string{"a.example"}, 0},
		{"no newline", "a.example", false, []string{"a.example"}, 0},
		{"bad dots", "a..example\n.\n", true, nil, 1},
		// A word for "off" is no domain: the file's presence holds
		// everything (they were held domains "0", "off", and mail flowed).
		{"zero", "0\n", true, nil, 1},
		{"off words", "Off\nno\nfalse\nnone\nn\n", true, nil, 5},
		{"off beside a domain", "no\nexample.com\n", false, []string{"example.com"}, 1},
		// An internationalized domain is a domain in either spelling,
		// kept in the A-labels qmail-remote looks it up by (a U-label
		// line was junk and held everything).
		{"u-label", "bücher.test\n", false, []string{"xn--bcher-kva.test"}, 0},
		{"u-label suffix", ".Bücher.test\n", false, []string{".xn--bcher-kva.test"}, 0},
		{"a-label", "XN--BCHER-KVA.test\n", false, []string{"xn--bcher-kva.test"}, 0},
		{"both spellings one domain", "bücher.test\nxn--bcher-kva.test\nMüller.test\n", false, []string{"xn--bcher-kva.test", "xn--mller-kva.test"}, 0},
		{"u-label junk", "bü cher.test\nb\xfcr.test\nü@x.test\na.example\n", false, []string{"a.example"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := Parse([]byte(tc.in))
			if !h.Set || h.All != tc.all || !reflect.DeepEqual(h.Domains, tc.domains) || len(h.Junk) != tc.junk {
				t.Errorf("Parse(%q) = %+v; want all=%v domains=%v junk=%d", tc.in, h, tc.all, tc.domains, tc.junk)
			}
		})
	}
}

func TestHoldsAddress(t *testing.T) {
	list := Parse([]byte("a.example\n.b.example\n"))
	all := Parse(nil)
	tests := []struct {
		h    Flag
		addr string
		want bool
	}{
		{Flag{}, "x@a.example", false},
		{all, "x@anything", true},
		{all, "nodomain", true},
		{list, "x@a.example", true},
		{list, "x@A.Example", true},
		{list, "x@sub.a.example", false},
		{list, "x@b.example", false},
		// A trailing dot names the same host, as qmail-remote and
		// smtproutes read it (it let mail to a held domain flow).
		{list, "x@a.example.", true},
		{list, "x@c.b.example.", true},
		{list, "x@.", false},
		{Parse([]byte("example.com.\n")), "u@example.com", true}, // a line with its dot
		{Parse([]byte("[IPv6:2001:db8::2]\n")), "x@[ipv6:2001:DB8::2]", true},
		{Parse([]byte("[IPv6:::1]\n")), "x@[IPv6:0:0:0:0:0:0:0:1]", true},
		{Parse([]byte("[IPv6:::1]\n")), "x@[IPv6:::2]", false},
		{Parse([]byte("[IPv6:::1]\n")), "x@[::1]", true}, // qmail-remote reads both as ::1
		{Parse([]byte("[192.0.2.1]\n")), "x@[IPv6:::ffff:192.0.2.1]", true},
		// qmail-remote reads a bare dotted quad as that address too.
		{Parse([]byte("[127.0.0.1]\n")), "u@127.0.0.1", true},
		{Parse([]byte("127.0.0.1\n")), "u@[127.0.0.1]", true},
		{Parse([]byte("127.0.0.1\n")), "u@[IPv6:::ffff:127.0.0.1]", true},
		{Parse([]byte("[127.0.0.1]\n")), "u@127.0.0.2", false},
		{Parse([]byte(".0.0.1\n")), "u@127.0.0.1", false},            // an address has no subdomains
		{Parse([]byte("[127.0.0.1]\n")), "u@127.000.000.001", false}, // a name to qmail-remote
		{Parse([]byte("[127.0.0.1]\n")), "u@127.0.0.1.", false},
		{list, "x@c.b.example", true},
		{list, "x@other.example", false},
		{list, "x@y@a.example", true},
		{list, "nodomain", false},
		// Either spelling of an internationalized domain, of the line or
		// of the recipient's domain, matches the other (QA: a line for
		// xn--bcher-kva.test did not hold mail to bücher.test).
		{Parse([]byte("xn--bcher-kva.test\n")), "u@bücher.test", true},
		{Parse([]byte("xn--bcher-kva.test\n")), "u@BÜCHER.test", true},
		{Parse([]byte("xn--bcher-kva.test\n")), "u@xn--bcher-kva.test", true},
		{Parse([]byte("bücher.test\n")), "u@xn--bcher-kva.test", true},
		{Parse([]byte("bücher.test\n")), "u@XN--BCHER-KVA.TEST", true},
		{Parse([]byte("bücher.test\n")), "u@bücher.test", true},
		{Parse([]byte("bücher.test\n")), "u@bucher.test", false},
		{Parse([]byte("bücher.test\n")), "u@other.test", false}, // not junk: no hold of everything
		{Parse([]byte("bücher.test\n")), "u@mx.bücher.test", false},
		{Parse([]byte(".bücher.test\n")), "u@mx.xn--bcher-kva.test", true},
		{Parse([]byte(".xn--bcher-kva.test\n")), "u@a.b.bücher.test", true},
		{Parse([]byte(".xn--bcher-kva.test\n")), "u@bücher.test", false},
		{Parse([]byte(".test\n")), "u@bücher.test", true},
	}
	for _, tc := range tests {
		if got := tc.h.HoldsAddress(tc.addr); got != tc.want {
			t.Errorf("%+v HoldsAddress(%q) = %v, want %v", tc.h, tc.addr, got, tc.want)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	h, err := Read(dir, RemoteFile)
	if err != nil || h.Set {
		t.Fatalf("missing file: %+v, %v", h, err)
	}
	if err := os.WriteFile(filepath.Join(dir, RemoteFile), []byte("x.example\n"), 0644); err != nil {
		t.Fatal(err)
	}
	h, err = Read(dir, RemoteFile)
	if err != nil || !h.Set || h.All || h.Describe() != "held for x.example" {
		t.Fatalf("list file: %+v, %v", h, err)
	}
	if err := os.Mkdir(filepath.Join(dir, LocalFile), 0755); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir, LocalFile); err == nil {
		t.Fatal("reading a directory: no error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("a.example\n.b.example\n# c\n"))
	f.Add([]byte("1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := Parse(b)
		if !h.Set {
			t.Fatal("not set")
		}
		for _, d := range h.Domains {
			if !h.HoldsDomain(d) && d[0] != '.' {
				t.Fatalf("domain %q listed but not held", d)
			}
		}
	})
}

func TestSendForm(t *testing.T) {
	tests := []struct {
		h    Flag
		want string
	}{
		{Flag{}, "no"},
		{Parse(nil), "all"},
		{Parse([]byte("B.example\n.c.example\nfoo bar\n")), "b.example .c.example"},
		// A word for off is no domain: it matches nothing (mail to a
		// dotless host "off" was held by it).
		{Parse([]byte("b.example\noff\n")), "b.example"},
	}
	for _, tc := range tests {
		if got := tc.h.SendForm(); got != tc.want {
			t.Errorf("SendForm(%+v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

// TestLiteralAsDnsmx: a domain is matched by address exactly when
// qmail-remote (pkg/dnsmx Literal) delivers to it without a DNS lookup,
// and then by the address it delivers to.
func TestLiteralAsDnsmx(t *testing.T) {
	for _, d := range []string{
		"127.0.0.1", "[127.0.0.1]", "[IPv6:::ffff:127.0.0.1]", "[ipv6:::FFFF:7f00:1]",
		"[::ffff:127.0.0.1]", "[IPv6:127.0.0.1]", "[IPv6:::1]", "[::1]", "[IPv6:0:0:0:0:0:0:0:1]",
		"[2001:DB8::2]", "[fe80::1%eth0]", "[IPv6:fe80::1%eth0]", "127.000.000.001",
		"[127.000.000.001]", "[0127.0.0.1]", "1.2.3", "[1.2.3]", "300.1.1.1", "127.0.0.1.",
		"a.example", "[a.example]", "[]", "[", "", "::1", "[IPv6:]", "1.2.3.4.5",
	} {
		want := dnsmx.Literal(d)
		a, ok := literal(d)
		if ok != (want != nil) || ok && !net.IP(a.AsSlice()).Equal(want) {
			t.Errorf("literal(%q) = %v %v; dnsmx.Literal = %v", d, a, ok, want)
		}
	}
}

func TestCanonDomain(t *testing.T) {
	for in, want := range map[string]string{
		"A.Example":               "a.example",
		"127.0.0.1":               "[127.0.0.1]",
		"[127.0.0.1]":             "[127.0.0.1]",
		"[IPv6:::FFFF:127.0.0.1]": "[127.0.0.1]",
		"[IPv6:0:0::1]":           "[::1]",
		"127.000.000.001":         "127.000.000.001",
		".0.0.1":                  ".0.0.1",
		"Bücher.Test":             "xn--bcher-kva.test",
		".bücher.test":            ".xn--bcher-kva.test",
		"XN--BCHER-KVA.test":      "xn--bcher-kva.test",
		// The full stops idna takes for dots (QA rtoday7): trimmed as a
		// trailing "." is, since qmail-remote's routes fold first.
		"example.org.":              "example.org",
		"example.org\u3002":         "example.org",
		"B\u00fccher.example\uff0e": "xn--bcher-kva.example",
		"b\u00fccher\uff61example":  "xn--bcher-kva.example",
		"127\u30020\u30020\u30021":  "[127.0.0.1]",
	} {
		if got := CanonDomain(in); got != want {
			t.Errorf("CanonDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHoldsIdeographicDot (QA rtoday7): a hold of a domain holds mail to
// that domain written with a trailing ideographic or fullwidth full stop,
// which qmail-remote routes to the domain; and a holdremote line written
// so holds the domain. Mail to x@b\u00fccher.example\u3002 went out past a
// hold of b\u00fccher.example.
func TestHoldsIdeographicDot(t *testing.T) {
	for _, tc := range []struct{ file, addr string }{
		{"b\u00fccher.example\n", "x@b\u00fccher.example\u3002"},
		{"example.org\n", "x@example.org\uff0e"},
		{"b\u00fccher.example\u3002\n", "x@b\u00fccher.example"},
		{"[127.0.0.1]\n", "x@127\u30020\u30020\u30021"},
	} {
		if !Parse([]byte(tc.file)).HoldsAddress(tc.addr) {
			t.Errorf("holdremote %q does not hold %q", tc.file, tc.addr)
		}
	}
}

// FuzzLiteral: whatever the spelling, the hold matches by address exactly
// what qmail-remote reads as one.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "[IPv6:::ffff:1.2.3.4]", "[::1]", "[1.2.3.04]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		want := dnsmx.Literal(d)
		a, ok := literal(d)
		if ok != (want != nil) || ok && !net.IP(a.AsSlice()).Equal(want) {
			t.Fatalf("literal(%q) = %v %v; dnsmx.Literal = %v", d, a, ok, want)
		}
	})
}

// TestMatchDomainIDN: qmail-send matches with MatchDomain on Flag.Lines
// (pkg/sched), the same as HoldsAddress.
func TestMatchDomainIDN(t *testing.T) {
	for _, tc := range []struct {
		file, domain string
		want         bool
	}{
		{"xn--bcher-kva.test\n", "bücher.test", true},
		{"bücher.test\n", "xn--bcher-kva.test", true},
		{"bücher.test\n", "Bücher.Test", true},
		{"müller.test\n", "bücher.test", false},
		{".münchen.test\n", "mx.xn--mnchen-3ya.test", true},
		{".xn--mnchen-3ya.test\n", "mx.München.test", true},
	} {
		if got := MatchDomain(Parse([]byte(tc.file)).Lines(), tc.domain); got != tc.want {
			t.Errorf("MatchDomain(%q, %q) = %v, want %v", tc.file, tc.domain, got, tc.want)
		}
	}
}

func TestValidDomainIDN(t *testing.T) {
	for s, want := range map[string]bool{
		"bücher.test":                     true,
		".bücher.test":                    true,
		"BÜCHER.test":                     true,
		"xn--bcher-kva.test":              true,
		"☃.net":                           true,
		"bü cher.test":                    false,
		"b\xfcr.test":                     false, // not UTF-8
		"ü@x.test":                        false,
		"ü..test":                         false,
		strings.Repeat("ü", 60):           true,  // 120 bytes, 66 as an A-label
		strings.Repeat("é.", 60) + "test": false, // 184 bytes, 484 as A-labels
	} {
		if got := ValidDomain(s); got != want {
			t.Errorf("ValidDomain(%q) = %v, want %v", s, got, want)
		}
	}
}
