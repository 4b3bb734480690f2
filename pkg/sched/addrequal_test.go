package sched

import "testing"

// addrEqual (qmailctl hold/release from/to) folds ASCII letters only, as
// qmail folds a local part; strings.EqualFold matched 'ſ' with 's' and
// the Kelvin sign with 'k', so "hold to sam@x" also held mail to
// "\u017fam@x", another mailbox.
func TestAddrEqualFoldsASCIIOnly(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"Joe@Example.ORG", "joe@example.org", true},
		{"joe@example.org.", "JOE@EXAMPLE.ORG", true},
		{"hx@xn--bcher-kva.example", "HX@B\u00fccher.example", true},
		{"", "", true},
		{"\u017fam@example.org", "sam@example.org", false},
		{"\u017fam@example.org", "SAM@example.org", false},
		{"\u212aevin@example.org", "kevin@example.org", false},
		{"\u212aevin", "kevin", false},
		{"\u0130nfo@example.org", "info@example.org", false},
		{"\xe9lise@example.org", "\xe8lise@example.org", false},
		{"J\u00d6RG@example.org", "j\u00f6rg@example.org", false}, // Ö is no ASCII letter
	} {
		if got := addrEqual(c.a, c.b); got != c.want {
			t.Errorf("addrEqual(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := addrEqual(c.b, c.a); got != c.want {
			t.Errorf("addrEqual(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}
