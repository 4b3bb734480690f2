package control

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/address"
)

// FuzzControl checks the control-file rules on arbitrary file contents:
// FirstLine is the first line without trailing blanks, ListLines never
// yields an empty line, a comment or trailing blanks, and every list line
// is a (trimmed) line of the input (a byte order mark at its start
// dropped).
func FuzzControl(f *testing.F) {
	for _, s := range []string{"", "\n", "example.com\n", "a \t\nb", "# c\n\nx\n", "\r\n", " #x\n#y\n", "host\x00name\n", "\xef\xbb\xbfa:b\n"} {
		f.Add([]byte(s))
	}
	f.Add([]byte("\xd5:x\n\xc3\x84:y\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		first := FirstLine(raw)
		b := bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		if strings.ContainsRune(first, '\n') || strings.TrimRight(first, " \t") != first {
			t.Fatalf("FirstLine(%q) = %q", b, first)
		}
		if !bytes.HasPrefix(b, []byte(first)) {
			t.Fatalf("FirstLine(%q) = %q is not a prefix", b, first)
		}
		lines := strings.Split(string(b), "\n")
		i := 0
		for _, l := range ListLines(raw) {
			if l == "" || l[0] == '#' || strings.ContainsRune(l, '\n') || strings.TrimRight(l, " \t") != l {
				t.Fatalf("ListLines(%q) yields %q", b, l)
			}
			for i < len(lines) && strings.TrimRight(lines[i], " \t") != l {
				i++
			}
			if i == len(lines) {
				t.Fatalf("ListLines(%q): %q out of order or not from the input", b, l)
			}
			i++
		}
		// Keys fold ASCII letters only, as qmail compares them (no
		// Unicode folding: "\xd5" and "Ä" stay as they are).
		for _, kv := range ParseKeyValues(ListLines(raw)) {
			if address.LowerASCII(kv.Key) != kv.Key {
				t.Fatalf("key %q has an ASCII capital", kv.Key)
			}
		}
	})
}
