package aliases

import (
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
)

// Names fold as qmail folds a local part: ASCII letters only. Unicode
// folding made the Latin-1 "\xe8lise" the alias "\xe9lise" (both became
// U+FFFD + "lise"), "\u0130nfo" the alias info and "\u212aevin" kevin.
func TestLookupFoldsASCIIOnly(t *testing.T) {
	src := "info: root\nkevin: root\n\xe9lise: e9\n\xe8lise: e8\n\u00c9mile: emile\n"
	as, errs := Parse(strings.NewReader(src), "x")
	if len(errs) != 0 {
		t.Fatalf("%q: %v (two Latin-1 names taken for one?)", src, errs)
	}
	db := openRecords(t, Records(as, "x"))
	for name, want := range map[string]string{
		"INFO":             "root",
		"Kevin":            "root",
		"\xe9lise":         "e9",
		"\xe9LISE":         "e9",
		"\xe8lise":         "e8",
		"\xe7lise":         "", // another byte that is no UTF-8
		"\u00c9mile":       "emile",
		"\u00e9mile":       "", // qmail does not fold É
		"\u0130nfo":        "", // İ is no I
		"\u0131nfo":        "", // nor ı an i
		"\u212aevin":       "", // the Kelvin sign is no K
		"\u212aEVIN":       "",
		"\xef\xbf\xbdlise": "", // U+FFFD itself
	} {
		got, ok, err := Lookup(db.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, ","); ok != (want != "") || g != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", name, g, ok, want)
		}
	}
}

// A database written before (keys lowercased by strings.ToLower) answers
// every ASCII name as it did: the key of an ASCII name is unchanged.
func TestASCIIKeysUnchanged(t *testing.T) {
	var names []string
	for c := 1; c < 128; c++ {
		if c == ':' || c == '"' || c == '\n' || c == '#' {
			continue
		}
		names = append(names, "a"+string(rune(c))+"Z")
	}
	names = append(names, "Root", "POSTMASTER", "Mailer-Daemon", "owner-List.X_y+z")
	var recs []cdb.Record
	for _, n := range names {
		name, _, _, ok := splitName(n + ": t")
		if !ok {
			t.Fatalf("splitName(%q) failed", n)
		}
		if old := strings.ToLower(strings.TrimSpace(n)); name != old {
			t.Errorf("key of %q = %q, was %q", n, name, old)
		}
		// Data: the key, as "aAZ" and "aaZ" are one alias.
		recs = append(recs, cdb.Record{Key: []byte(strings.ToLower(n)), Data: []byte(strings.ToLower(n))})
	}
	db := openRecords(t, recs)
	for _, n := range names {
		for _, q := range []string{n, strings.ToUpper(n), strings.ToLower(n)} {
			if strings.TrimSpace(q) == "" {
				continue
			}
			if got, ok, err := Lookup(db.Reader, q); err != nil || !ok || got[0] != strings.ToLower(n) {
				t.Errorf("Lookup(%q) in an old database = %q, %v, %v", q, got, ok, err)
			}
		}
	}
}

// ":include:" is recognised in any ASCII case only: ":\u0130nclude:" was
// an include of the rest cut at the wrong byte (":/tmp/x") by Classify,
// while the parser took it for no special target.
func TestIncludeMarkerASCIIOnly(t *testing.T) {
	for in, want := range map[string]Kind{
		":include:/tmp/x":      Include,
		":INCLUDE:/tmp/x":      Include,
		":Include:/tmp/x":      Include,
		":\u0130nclude:/tmp/x": Address,
		":\u0130NCLUDE:/tmp/x": Address,
		":inc":                 Address,
		"":                     Address,
	} {
		k, arg := Classify(in)
		if k != want {
			t.Errorf("Classify(%q) = %s %q, want %s", in, kindNames[k], arg, kindNames[want])
		}
		if special := isSpecialTarget(in); special != (want == Include) {
			t.Errorf("isSpecialTarget(%q) = %v", in, special)
		}
	}
}
