package address

import "testing"

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in, local, domain string
		ok                bool
	}{
		{"joe@example.com", "joe", "example.com", true},
		{"a@b@c", "a@b", "c", true},
		{"joe", "joe", "", false},
		{"", "", "", false},
		{"@example.com", "", "example.com", true},
		{"joe@", "joe", "", true},
		{"\"a@b\"@c", "\"a@b\"", "c", true},
	} {
		l, d, ok := Split(tc.in)
		if l != tc.local || d != tc.domain || ok != tc.ok {
			t.Errorf("Split(%q) = %q, %q, %v", tc.in, l, d, ok)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"joe@example.com", "joe@example.com"},
		{"first.last@x", "first.last@x"},
		{"a+b-c_d=e/f!g#h$i%j&k'l*m?n^o`p{q|r}s~t@x", "a+b-c_d=e/f!g#h$i%j&k'l*m?n^o`p{q|r}s~t@x"},
		{"joe smith@x", "\"joe smith\"@x"},
		{".joe@x", "\".joe\"@x"},
		{"joe.@x", "\"joe.\"@x"},
		{"a..b@x", "\"a..b\"@x"},
		{"a\"b@x", "\"a\\\"b\"@x"},
		{"a\\b@x", "\"a\\\\b\"@x"},
		{"a(b)@x", "\"a(b)\"@x"},
		{"a<b>@x", "\"a<b>\"@x"},
		{"a,b;c:d@x", "\"a,b;c:d\"@x"},
		{"a[b]@x", "\"a[b]\"@x"},
		{"a@b@x", "\"a@b\"@x"},
		{"a\rb@x", "\"a\\\rb\"@x"},
		{"a\nb@x", "\"a\\\nb\"@x"},
		{"a\tb@x", "\"a\tb\"@x"},
		{"caf\xc3\xa9@x", "\"caf\xc3\xa9\"@x"},
		{"a\x7fb@x", "\"a\x7fb\"@x"},
		{"@x", "\"\"@x"},
		{"nodomain", "nodomain"},
		{"no domain", "\"no domain\""},
		{"#@[]", "#@[]"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNeedsQuote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true}, {"a", false}, {"a.b", false}, {".", true}, {"a b", true}, {"\x00", true}, {"~", false},
	} {
		if got := NeedsQuote(tc.in); got != tc.want {
			t.Errorf("NeedsQuote(%q) = %v", tc.in, got)
		}
	}
}

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"Example.ORG":       "example.org",
		"already.lower":     "already.lower",
		"M\xfcnchen.DE":     "m\xfcnchen.de",     // not UTF-8: kept, not U+FFFD
		"\u212aexample.org": "\u212aexample.org", // the Kelvin sign is no 'k'
		"ÜBER.example":      "Über.example",      // only ASCII letters fold
	} {
		if got := LowerASCII(in); got != want {
			t.Errorf("LowerASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEqualFoldASCII(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"Info@Example.ORG", "info@example.org", true},
		{"info", "infos", false},
		{"\u017fam", "sam", false},      // 'ſ' is no 's'
		{"\u212aevin", "kevin", false},  // the Kelvin sign is no 'k'
		{"\u0130nfo", "info", false},    // nor 'İ' an 'i'
		{"\xe9lise", "\xe8lise", false}, // not UTF-8: bytes compared
		{"\xe9LISE", "\xe9lise", true},
		{"ÜBER", "über", false}, // only ASCII letters fold
		{"[", "{", false},       // nor anything next to them
		{"@", "`", false},
	} {
		if got := EqualFoldASCII(c.a, c.b); got != c.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := EqualFoldASCII(c.b, c.a); got != c.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
		if got := LowerASCII(c.a) == LowerASCII(c.b); got != c.want {
			t.Errorf("LowerASCII disagrees on %q, %q", c.a, c.b)
		}
	}
}
