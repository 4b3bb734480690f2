package idna

import (
	"strings"
	"testing"
)

// uts46Cases are names as people write them that UTS #46 (nontransitional,
// as IDNA2008 lookups, libidn2, browsers and Python's idna package with
// uts46=True map them) maps otherwise than a plain lowercase does. Every
// want is what Python's idna 3.13 (UTS #46 tables of Unicode 17.0) gives
// for idna.encode(in, uts46=True, transitional=False); the comment names
// the IdnaMappingTable row that makes the difference.
var uts46Cases = []struct{ in, want string }{
	// Label separators (RFC 3490 §3.1; 3002, FF0E, FF61 ; mapped ; 002E).
	{"bücher\u3002example", "xn--bcher-kva.example"},
	{"bücher\uFF0Eexample", "xn--bcher-kva.example"},
	{"bücher\uFF61example", "xn--bcher-kva.example"},
	{"mx\u3002bücher\u3002example\u3002", "mx.xn--bcher-kva.example."},
	// Fullwidth letters, digits and hyphen (FF21..FF3A ; mapped ; 0061..007A,
	// FF41..FF5A ; mapped ; 0061..007A, FF10..FF19 ; mapped ; 0030..0039,
	// FF0D ; mapped ; 002D).
	{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
	{"ＥＸＡＭＰＬＥ．ＣＯＭ", "example.com"},
	{"ｂüｃｈｅｒ.example", "xn--bcher-kva.example"},
	{"ＢÜＣＨＥＲ－１.example", "xn--bcher-1-n2a.example"},
	{"１２３－ａ.example", "123-a.example"},
	{"ａ－ｂ.example", "a-b.example"},
	{"ｘｎ－－ｂｃｈｅｒ－ｋｖａ.example", "xn--bcher-kva.example"},
	// Case-fold specials: the mapping is not the lowercase.
	{"\u017Ftraße.example", "xn--strae-oqa.example"}, // 017F ; mapped ; 0073 (ß stays)
	{"ma\u017F\u017F.example", "mass.example"},       // ſ makes the label ASCII
	{"\u00B5ail.example", "xn--ail-wyc.example"},     // 00B5 ; mapped ; 03BC
	{"\u03D0ιβλία.example", "xn--kxaeba8an.example"}, // 03D0 ; mapped ; 03B2
	{"βιβλία.example", "xn--kxaeba8an.example"},
	{"\u03D1εός.example", "xn--qxaf5a1b.example"}, // 03D1 ; mapped ; 03B8
	{"θεός.example", "xn--qxaf5a1b.example"},
	{"\u03D5ως.example", "xn--3xahj.example"},      // 03D5 ; mapped ; 03C6
	{"\u03D6αρά.example", "xn--hxaj8bf.example"},   // 03D6 ; mapped ; 03C0
	{"\u03F0αλά.example", "xn--hxaj0af.example"},   // 03F0 ; mapped ; 03BA
	{"\u03F1οή.example", "xn--jxa7af.example"},     // 03F1 ; mapped ; 03C1
	{"\u03F5λλάς.example", "xn--hxarsa0b.example"}, // 03F5 ; mapped ; 03B5
	{"\u03D2.example", "xn--6xa.example"},          // 03D2 ; mapped ; 03C5
	{"\u03F2.example", "xn--4xa.example"},          // 03F2 ; mapped ; 03C3
	{"\u03F9.example", "xn--4xa.example"},          // 03F9 ; mapped ; 03C3
	{"\u1E9B.example", "xn--tig.example"},          // 1E9B ; mapped ; 1E61
	// 1E9E ; mapped ; 00DF since UTS #46 15.1 (it was "ss" before): ẞ is
	// ß, which nontransitional processing keeps, as Go's lowercase does.
	{"\u1E9E.example", "xn--zca.example"},
	{"stra\u1E9Ee.example", "xn--strae-oqa.example"},
	// Cherokee: the capitals are valid, the small letters map to them
	// (AB70..ABBF ; mapped ; 13A0..13EF, 13F8..13FD ; mapped ; 13F0..13F5).
	{"\uAB70\uAB71.example", "xn--58dc.example"},
	{"\u13A0\u13A1.example", "xn--58dc.example"},
	{"\u13F8\u13F9.example", "xn--gcec.example"},
	{"\u13F0\u13F1.example", "xn--gcec.example"},
	// Iota subscript: 0345 ; mapped ; 03B9, and the letters with it map
	// to the letter and ι (1F88 ; mapped ; 1F00 03B9, 1FB3 ; mapped ;
	// 03B1 03B9, ...), as "α" + U+0345 does.
	{"\u0345.example", "xn--uxa.example"},
	{"\u1F88.example", "xn--uxa970l.example"},
	{"\u1F00ι.example", "xn--uxa970l.example"},
	{"\u1FB3.example", "xn--mxaq.example"},
	{"\u1FBC.example", "xn--mxaq.example"},
	{"α\u0345.example", "xn--mxaq.example"},
	{"\u1FF7.example", "xn--uxa175l.example"},
	{"\u1C80.example", "xn--b1a.example"}, // 1C80 ; mapped ; 0432
	// Deviations stay (nontransitional): ß and final sigma.
	{"faß.de", "xn--fa-hia.de"},
	{"σοφός.example", "xn--0xagbn4a.example"},
	{"ΣΟΦΟΣ.example", "xn--0xaakcn.example"},
}

func TestToASCIIUTS46(t *testing.T) {
	for _, c := range uts46Cases {
		if got := ToASCII(c.in); got != c.want {
			t.Errorf("ToASCII(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestFoldUTS46: a table key written one way matches the host written
// another, as DNS (asked by ToASCII) takes them for one name.
func TestFoldUTS46(t *testing.T) {
	for _, c := range uts46Cases {
		if got := Fold(c.in); got != c.want {
			t.Errorf("Fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"ＢÜＣＨＥＲ\u3002Example", "xn--bcher-kva.example"},
		{".bücher\uFF0Eexample", ".xn--bcher-kva.example"}, // a suffix key stays one
		{"Ｍｘ.Bücher.test", "mx.xn--bcher-kva.test"},
		{"Spam@ｂüｃｈｅｒ\u3002test", "spam@xn--bcher-kva.test"}, // FoldKey
	} {
		got := Fold(c.in)
		if strings.Contains(c.in, "@") {
			got = FoldKey(c.in)
		}
		if got != c.want {
			t.Errorf("Fold/FoldKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestToASCIIFullwidthPunct: only the fullwidth letters, digits, hyphen and
// full stop are mapped; other fullwidth punctuation (which UTS #46 with the
// STD3 rules of host names rejects) is never made the ASCII '@', '>', '[',
// '/' or ':' that qmail-remote would send or a table parse.
func TestToASCIIFullwidthPunct(t *testing.T) {
	for _, in := range []string{"ａ＠ｂ.example", "ａ＞ｂ.example", "［192.0.2.1］", "ａ／ｂ.example", "ａ：ｂ.example", "ａ＿ｂ.example"} {
		got := ToASCII(in)
		if strings.ContainsAny(got, "@>[]/:_") || !strings.HasPrefix(got, "xn--") {
			t.Errorf("ToASCII(%q) = %q: punctuation mapped to ASCII", in, got)
		}
	}
}
