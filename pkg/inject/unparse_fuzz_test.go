package inject

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzUnparseStable: what qmail-inject writes into an address field (the
// rewritten addresses, unparsed) names the same addresses when it is read
// again, and writing it again changes nothing.
func FuzzUnparseStable(f *testing.F) {
	for _, s := range []string{"To: bob", `From: "a b" <c@d> (e)`, "To: g: a, b;, <@r:x@y>", "To: a.b.@c+",
		`To: "x\"y"@z`, "Cc: a (c) b", `To: [1.2.3.4]`, "To: <>", "To: ., bob@x", `To: a\,b@c`, "To: 0[]0<>",
		"To: j\xc3\xb6rg@b\xc3\xbccher.example, J\xc3\xb6rg <x@b\xc3\xbccher.example>", "To: j\xf6rg@x"} {
		f.Add(s)
	}
	// qmail-inject's rewriter, and sendmail's, which writes a domain's
	// UTF-8 words bare.
	plain, bare := testRewriter(), testRewriter()
	bare.BareUTF8Domain = true
	f.Fuzz(func(t *testing.T, s string) {
		for _, rw := range []*Rewriter{plain, bare} {
			roundTrip(t, rw, s)
		}
	})
}

// roundTrip checks that what rw writes of the field s reads back as the
// same addresses and is written the same again.
func roundTrip(t *testing.T, rw *Rewriter, s string) {
	{
		if !strings.HasPrefix(s, "To:") && !strings.HasPrefix(s, "From:") && !strings.HasPrefix(s, "Cc:") {
			s = "To: " + s // a field as qmail-inject sees it: its name first
		}
		toks, ok := Tokenize(s)
		if !ok {
			return
		}
		lit, angle := false, false
		for _, tk := range toks {
			// Kept as qmail does (BUGS): a '<' without its '>' is a
			// byte of an address, which is written with no comma
			// before the next one ("To: <<>"), and so reads back
			// differently.
			switch tk.Kind {
			case Left:
				if angle {
					return
				}
				angle = true
			case Right:
				angle = false
			}
			// Kept as qmail does (qmail-inject(8), BUGS): a literal in a
			// display or group name ("To: []<>", "To: 0[]0<>") is taken
			// as an address of its own and rewritten, and so reads back
			// differently.
			switch tk.Kind {
			case Literal:
				lit = true
			case Comma:
				lit = false
			case Colon, Left:
				if lit {
					return
				}
			}
			// Kept as qmail does (BUGS): an atom with an escaped special
			// or blank (a\,b) is written without the backslash.
			if tk.Kind == Atom && strings.IndexFunc(tk.S, func(r rune) bool { return r < 128 && !atomByte(byte(r)) }) >= 0 {
				return
			}
		}
		if angle {
			return
		}
		var first []string
		out, ok := AddrList(toks, func(a []Token) []Token {
			r := rw.Rewrite(a)
			if len(r) > 0 { // "." rewrites to nothing, written as nothing (BUGS)
				first = append(first, Unquote(r))
			}
			return r
		})
		if !ok {
			return
		}
		u := Unparse(out, LineLen)
		toks2, ok := Tokenize(u)
		if !ok {
			t.Fatalf("%q written as %q, which does not tokenize", s, u)
		}
		var second []string
		out2, ok := AddrList(toks2, func(a []Token) []Token {
			if len(a) > 0 {
				second = append(second, Unquote(a))
			}
			if rw.BareUTF8Domain {
				return BareDomainUTF8(a) // as Rewrite wrote it the first time
			}
			return a
		})
		if !ok {
			t.Fatalf("%q written as %q, which is no address list", s, u)
		}
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("%q written as %q: addresses %q read back as %q", s, u, first, second)
		}
		if u2 := Unparse(out2, LineLen); u2 != u {
			t.Fatalf("%q written as %q, then as %q", s, u, u2)
		}
	}
}
