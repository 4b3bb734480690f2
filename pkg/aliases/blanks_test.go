package aliases

import (
	"strings"
	"testing"
)

// TestOnlyASCIIBlanksTrimmed: the blanks trimmed around a name or a
// target are space and tab (and the CR and LF of a line end), as in
// qmail and fastforward. Other white space, Unicode's no-break space
// (U+00A0) and ideographic space (U+3000) among it, is bytes of the
// target: "nb@x.org\u00a0" was the address nb@x.org.
func TestOnlyASCIIBlanksTrimmed(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"nb@x.org\u00a0", "nb@x.org\u00a0"},
		{"\u3000ideo@x.org", "\u3000ideo@x.org"},
		{"<nb@x.org\u00a0>", "nb@x.org\u00a0"},
		{"\u0085nel@x.org", "\u0085nel@x.org"},
		{"|\u3000prog", "|\u3000prog"},
		{" \t bob@x.org \t", "bob@x.org"},
		{"\t< \tbob@x.org\t >\t", "bob@x.org"},
		{` " |/usr/bin/prog -x" `, "|/usr/bin/prog -x"},
		{"bob@x.org\r", "bob@x.org"},
		{"\r\n bob@x.org \r\n", "bob@x.org"},
	} {
		good, bad := ScanTargets(tc.list)
		var got []string
		for _, g := range good {
			got = append(got, g.Text)
		}
		if len(bad) > 0 || strings.Join(got, " | ") != tc.want {
			t.Errorf("ScanTargets(%q) = %q %v, want [%q]", tc.list, got, bad, tc.want)
		}
	}

	// Quoted, a program is followed by blanks only; other white space
	// is text after the closing quote (a comma left out).
	if good, bad := ScanTargets("\"|prog\"\u00a0"); len(bad) != 1 {
		t.Errorf(`ScanTargets("\"|prog\"\u00a0") = %v %v, want an error`, good, bad)
	}
	if good, bad := ScanTargets("\"|prog\" \t"); len(bad) != 0 || len(good) != 1 || good[0].Text != "|prog" {
		t.Errorf(`ScanTargets("\"|prog\" \t") = %v %v, want |prog`, good, bad)
	}
	// An include's path starts after blanks only.
	if good, bad := ScanTargets(":include:\u3000/etc/list"); len(bad) != 1 {
		t.Errorf(`ScanTargets(":include:\u3000/etc/list") = %v %v, want an error`, good, bad)
	}

	// In an aliases file: after the colon, on a continuation line, and
	// around the name.
	file := "nb: nb@x.org\u00a0\n" +
		"ideo:\t\u3000ideo@x.org\n" +
		"ascii: \t bob@x.org \t,\r\n" +
		"\t \tcarol@y.org \t\n" +
		"cont: first@x.org,\n" +
		"\t\u3000second@x.org\u00a0\n" +
		"name \t: n@x.org\n" +
		"\u3000wide: w@x.org\n"
	as, errs := Parse(strings.NewReader(file), "f")
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	got := map[string]string{}
	for _, a := range as {
		got[a.Name] = strings.Join(a.Targets, " | ")
	}
	want := map[string]string{
		"nb":         "nb@x.org\u00a0",
		"ideo":       "\u3000ideo@x.org",
		"ascii":      "bob@x.org | carol@y.org",
		"cont":       "first@x.org | \u3000second@x.org\u00a0",
		"name":       "n@x.org",
		"\u3000wide": "w@x.org",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("alias %q: targets %q, want %q", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("aliases %q, want those of %q", got, want)
	}

	// A line of nothing but white space is still an empty line, and one
	// whose first character after it is '#' a comment, as in an
	// :include: file and a .forward (which skip such lines the same way).
	as, errs = Parse(strings.NewReader("\u00a0\n\u3000# c\nx: y@z\n"), "f")
	if len(errs) > 0 || len(as) != 1 || as[0].Name != "x" {
		t.Errorf("white-space and comment lines: %v %v, want the alias x only", as, errs)
	}
}
