package idna

import (
	"strings"
	"testing"
)

func TestToASCII(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":          "example.com",
		"bücher.example":       "xn--bcher-kva.example",
		"BÜCHER.example":       "xn--bcher-kva.example",
		"münchen.de":           "xn--mnchen-3ya.de",
		"☃.net":                "xn--n3h.net",
		"ü":                    "xn--tda",
		"mx.xn--bcher-kva.org": "mx.xn--bcher-kva.org",
		// RFC 3492 §7.1 samples (lowercased, as IDNA maps them).
		"pročprostěnemluvíčesky": "xn--proprostnemluvesky-uyb24dma41a",
		"他们为什么不说中文":              "xn--ihqwcrb4cv8a8dqg056pqjye",
		"3年b組金八先生":               "xn--3b-ww4c5e180e575a65lsy2b",
		"\xff.example":           "\xff.example", // not UTF-8: left alone
		// A label that lowercasing makes ASCII is that ASCII: an A-label
		// must decode to non-ASCII (RFC 5890 §2.3.2.1).
		"\u212Aelvin.example":     "kelvin.example",
		"\u212AELVIN.example":     "kelvin.example",
		"\u0130stanbul.example":   "xn--istanbul-o0e.example",
		"\u0130bm.example":        "xn--ibm-8dc.example", // İ is i and U+0307, not the ASCII ibm (UTS #46)
		"\u212Aelvin.bücher.test": "kelvin.xn--bcher-kva.test",
	} {
		if got := ToASCII(in); got != want {
			t.Errorf("ToASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzToASCII(f *testing.F) {
	for _, s := range []string{"bücher.example", "☃", "a..b", "ü.ü.", "\xff", "\u212Aelvin", "ü\u3002ａ－", "ｘｎ－－ａ－.ü", "\u017F\uFF61\uAB70"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := ToASCII(name)
		if isASCII(name) && got != name {
			t.Fatalf("ASCII name changed: %q -> %q", name, got)
		}
		if got != name && !isASCII(got) {
			t.Fatalf("ToASCII(%q) = %q: not ASCII", name, got)
		}
		if got == name {
			return
		}
		// An A-label made here encodes non-ASCII: its Punycode is not
		// the ASCII letters and a '-' alone (RFC 5890 §2.3.2.1). A label
		// that the mapping leaves non-ASCII is one Punycode made; the
		// labels are those the ideographic full stops separate too.
		ln, lg := strings.Split(mapDots(name), "."), strings.Split(got, ".")
		if len(ln) != len(lg) {
			t.Fatalf("ToASCII(%q) = %q: %d labels, not %d", name, got, len(lg), len(ln))
		}
		for i := range lg {
			made := !isASCII(ln[i]) && !isASCII(mapLabel(ln[i]))
			if made && (!strings.HasPrefix(lg[i], "xn--") || strings.HasSuffix(lg[i], "-")) {
				t.Fatalf("ToASCII(%q) = %q: label %q encodes ASCII only", name, got, lg[i])
			}
		}
	})
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":            "example.com",
		"Example.COM":            "example.com",
		"bücher.test":            "xn--bcher-kva.test",
		"Bücher.Test":            "xn--bcher-kva.test",
		"BÜCHER.TEST":            "xn--bcher-kva.test",
		"xn--bcher-kva.test":     "xn--bcher-kva.test",
		"XN--BCHER-KVA.test":     "xn--bcher-kva.test",
		".bücher.test":           ".xn--bcher-kva.test", // a suffix key stays one
		"mx.Bücher.test.":        "mx.xn--bcher-kva.test.",
		"[192.0.2.1]":            "[192.0.2.1]",
		"[IPv6:2001:DB8::1]":     "[ipv6:2001:db8::1]",
		"":                       "",
		"\xffA.example":          "\xffa.example", // not UTF-8: ASCII letters only
		"\xfe.Example":           "\xfe.example",
		"müller.test":            "xn--mller-kva.test",
		"sub.MÜLLER.test":        "sub.xn--mller-kva.test",
		"a.b.xn--mller-kva.TEST": "a.b.xn--mller-kva.test",
		"\u212Aelvin.Example":    "kelvin.example", // KELVIN SIGN: as ToASCII
		"mx.\u212A.Test.":        "mx.k.test.",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFoldKey(t *testing.T) {
	for in, want := range map[string]string{
		"bücher.test":             "xn--bcher-kva.test",
		".Bücher.test":            ".xn--bcher-kva.test",
		"@BÜCHER.test":            "@xn--bcher-kva.test",
		"Spam@Bücher.test":        "spam@xn--bcher-kva.test",
		"Jörg@xn--BCHER-kva.test": "jörg@xn--bcher-kva.test", // the local part: ASCII letters only
		"\"a@b\"@Example.COM":     "\"a@b\"@example.com",
		"":                        "",
		"JOE":                     "joe",
	} {
		if got := FoldKey(in); got != want {
			t.Errorf("FoldKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzFold: Fold is idempotent, and two names DNS would look up as the
// same (the same ToASCII, up to ASCII case) fold to one key.
func FuzzFold(f *testing.F) {
	for _, s := range []string{"bücher.example", "XN--BCHER-KVA.example", ".ü", "\xffÜ", "a..B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		k := Fold(name)
		if Fold(k) != k {
			t.Fatalf("Fold(%q) = %q, Fold of that = %q", name, k, Fold(k))
		}
		if a := ToASCII(name); isASCII(a) && k != strings.ToLower(a) {
			t.Fatalf("Fold(%q) = %q; ToASCII lowercased = %q", name, k, strings.ToLower(a))
		}
	})
}
