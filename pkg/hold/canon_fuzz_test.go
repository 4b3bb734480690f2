package hold_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/sched"
)

// plainHost reports whether d is an ASCII host name (letters, digits,
// '-', '_', dots) that is not a dotted quad: its canonical form is simply
// d lowercased, without one trailing dot.
func plainHost(d string) bool {
	if d == "" || strings.Trim(d, "0123456789.") == "" {
		return false
	}
	for _, c := range []byte(d) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// FuzzCanonDomain:
//   - CanonDomain is idempotent (but for names ending in "..", see below),
//     and of a plain ASCII host name it is the
//     name lowercased without a trailing dot;
//   - HoldsAddress("x@"+d) follows the domain rule for d: held when the
//     whole channel is, or when a list line equals CanonDomain(d) or is a
//     ".suffix" that it ends with; and whatever the local part (quoted,
//     with '@' in it) is;
//   - every domain the file lists is held;
//   - qmail-send's reading of control/holdremote (sched.ParseHoldRemote,
//     matched with hold.MatchDomain as qmail-send matches a recipient)
//     agrees with hold.Parse and HoldsAddress.
func FuzzCanonDomain(f *testing.F) {
	for _, s := range [][2]string{
		{"A.Example", "a.example\n"},
		{"a.example.", ".example\n"},
		{"x.b.example", ".b.example\n"},
		{"b.example", ".b.example\n"},
		{"127.0.0.1", "[127.0.0.1]\n"},
		{"[IPv6:::ffff:127.0.0.1]", "127.0.0.1\n"},
		{"127.0.0.1.", "127.0.0.1\n"},
		{"Bücher.Example", "xn--bcher-kva.example\n"},
		{"mx.München.test", ".münchen.test\n"},
		{"off", "off\n"},
		{"anything.example", "1\n"},
		{"anything.example", ""},
		{"x.example", "\xef\xbb\xbfx.example\r\n# c\n"},
		{"[::1]", "[IPv6:0:0::1]\nfoo bar\n"},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, d string, file []byte) {
		c := hold.CanonDomain(d)
		// One trailing dot is removed, not more: "a.." is "a.", then "a".
		// No such name can be looked up (an empty label), so it is left out.
		if cc := hold.CanonDomain(c); cc != c && !strings.HasSuffix(d, "..") {
			t.Fatalf("CanonDomain(%q) = %q, but CanonDomain(%q) = %q", d, c, c, cc)
		}
		if plainHost(d) {
			want := strings.ToLower(d)
			if s := strings.TrimSuffix(want, "."); s != "" {
				want = s
			}
			if c != want {
				t.Fatalf("CanonDomain(%q) = %q, want %q", d, c, want)
			}
		}

		fl := hold.Parse(file)
		if strings.Contains(d, "@") {
			return
		}
		want := fl.All
		for _, l := range fl.Lines() {
			if c != "" && (l == c || l[0] == '.' && strings.HasSuffix(c, l)) {
				want = true
			}
		}
		got := fl.HoldsAddress("x@" + d)
		if got != want {
			t.Fatalf("file %q: HoldsAddress(x@%q) = %v, the rule says %v (lines %q, canonical %q)",
				file, d, got, want, fl.Lines(), c)
		}
		for _, local := range []string{`"a@b"`, "a@b", ""} {
			if g := fl.HoldsAddress(local + "@" + d); g != got {
				t.Fatalf("file %q: HoldsAddress(%s@%q) = %v, with local part x %v", file, local, d, g, got)
			}
		}
		for _, l := range fl.Domains {
			probe := l
			if l[0] == '.' {
				probe = "x" + l
			}
			if !fl.HoldsAddress("x@" + probe) {
				t.Fatalf("file %q lists %q but x@%s is not held", file, l, probe)
			}
		}

		all, doms := sched.ParseHoldRemote(file)
		if all != fl.All || !reflect.DeepEqual(doms, fl.Lines()) {
			t.Fatalf("file %q: qmail-send reads all=%v %q, hold.Parse all=%v %q", file, all, doms, fl.All, fl.Lines())
		}
		if held := all || hold.MatchDomain(doms, d); held != got {
			t.Fatalf("file %q: qmail-send holds %q: %v, HoldsAddress: %v", file, d, held, got)
		}
	})
}
