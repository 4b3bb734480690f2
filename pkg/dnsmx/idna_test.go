package dnsmx

import "testing"

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
	} {
		if got := ToASCII(in); got != want {
			t.Errorf("ToASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzToASCII(f *testing.F) {
	for _, s := range []string{"bücher.example", "☃", "a..b", "ü.ü.", "\xff"} {
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
	})
}
