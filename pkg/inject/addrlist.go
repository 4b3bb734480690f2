package inject

import (
	"slices"
	"strings"

	"github.com/hqmail/hqmail/pkg/idna"
)

// Rewriter holds the host names that address rewriting appends, already
// split into tokens: DefaultHost starts with '@', DefaultDomain and
// PlusDomain with '.'.
type Rewriter struct {
	DefaultHost   []Token
	DefaultDomain []Token
	PlusDomain    []Token
	// BareUTF8Domain writes the UTF-8 words of a domain bare
	// (BareDomainUTF8) where qmail quotes them; sendmail asks for it.
	BareUTF8Domain bool
}

// NewRewriter tokenizes the three control values.
func NewRewriter(defaulthost, defaultdomain, plusdomain string) *Rewriter {
	tk := func(s string) []Token {
		t, ok := Tokenize(s)
		if !ok {
			// Not a host name qmail could use either; keep the text whole.
			k := At
			if s[0] == '.' {
				k = Dot
			}
			return []Token{{Kind: k}, {Kind: Atom, S: s[1:]}}
		}
		return t
	}
	return &Rewriter{
		DefaultHost:   tk("@" + defaulthost),
		DefaultDomain: tk("." + defaultdomain),
		PlusDomain:    tk("." + plusdomain),
	}
}

// Rewrite applies qmail-inject's rules to one address (tokens in order):
// <> and <x@[]> stay; a source route @a,@b: goes; one trailing '.' and then
// one trailing '@' go; no '@' gets DefaultHost; a host ending in '+' loses it
// and gets PlusDomain; a host with no '.' and no literal gets DefaultDomain.
// In a domain the ideographic and fullwidth full stops count as '.'
// (fullStops).
func (rw *Rewriter) Rewrite(a []Token) []Token {
	if rw.BareUTF8Domain {
		a = BareDomainUTF8(a)
	}
	n := len(a)
	if n == 0 {
		return a
	}
	if n >= 2 && a[n-2].Kind == At && a[n-1].Kind == Literal && a[n-1].S == "" {
		return a
	}
	if a[0].Kind == At {
		for len(a) > 0 {
			k := a[0].Kind
			a = a[1:]
			if k == Colon {
				break
			}
		}
		if len(a) == 0 {
			return a
		}
	}
	a = append([]Token(nil), a...)
	if a[len(a)-1].Kind == Dot {
		a = a[:len(a)-1]
		if len(a) == 0 {
			return a
		}
	} else if l := &a[len(a)-1]; inDomain(a, len(a)-1) && trimStop(l) && l.S == "" {
		a = a[:len(a)-1] // the stop was the whole word
	}
	if a[len(a)-1].Kind == At {
		a = a[:len(a)-1]
		if len(a) == 0 {
			return a
		}
	}
	hasAt := false
	for _, t := range a {
		if t.Kind == At {
			hasAt = true
			break
		}
	}
	if !hasAt {
		a = append(a, rw.DefaultHost...)
	}
	if l := &a[len(a)-1]; l.Kind == Atom && l.S != "" && l.S[len(l.S)-1] == '+' {
		l.S = l.S[:len(l.S)-1]
		a = append(a, rw.PlusDomain...)
	}
	for i := len(a) - 1; i >= 0 && a[i].Kind != At; i-- {
		if a[i].Kind == Dot || a[i].Kind == Literal || hasStop(a[i]) {
			return a
		}
	}
	return append(a, rw.DefaultDomain...)
}

// The ideographic and fullwidth full stops (idna.FullStops: U+3002,
// U+FF0E, U+FF61) are dots in a domain to the rest of hqmail, as to
// UTS #46 and RFC 3490 §3.1 (pkg/idna: DNS, the route tables, rcpthosts
// and locals, the hold flags), so Rewrite counts them as dots there too:
// a domain with one is not without a dot, and one of them trailing goes
// as a trailing '.' does. qmail knows only '.'. The characters are kept.

// hasStop reports whether t is a word with a full stop in it.
func hasStop(t Token) bool {
	if t.Kind != Atom && t.Kind != Quote {
		return false
	}
	for _, d := range idna.FullStops {
		if strings.Contains(t.S, d) {
			return true
		}
	}
	return false
}

// trimStop takes one trailing full stop off the word t, if it ends in
// one, and reports whether it did. A word that was quoted only for its
// 8-bit bytes and is now plain atom text is an atom again, as it would
// have been written with a '.'.
func trimStop(t *Token) bool {
	if t.Kind != Atom && t.Kind != Quote {
		return false
	}
	for _, d := range idna.FullStops {
		if s, ok := strings.CutSuffix(t.S, d); ok {
			t.S = s
			if t.UTF8 && plainAtom(s) {
				t.Kind, t.UTF8 = Atom, false
			}
			return true
		}
	}
	return false
}

// plainAtom reports whether s is written as an atom that Tokenize reads
// back as it is: printable ASCII that neither ends an atom nor makes one
// quoted (an escaped ',' in "a\,b。" does).
func plainAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 32 || c >= 127 || !atomByte(c) || c == ')' || c == ']' || c == '\\' {
			return false
		}
	}
	return true
}

// inDomain reports whether the token a[i] is after an '@', in the domain:
// a full stop in a local part is no dot.
func inDomain(a []Token, i int) bool {
	return slices.ContainsFunc(a[:i], func(t Token) bool { return t.Kind == At })
}

// BareDomainUTF8 returns a with every word of the domain (after the last
// '@', up to a closing '>') that was quoted only for its UTF-8
// (Token.UTF8) made an atom again; a itself is not changed. Rewrite does
// it to every address when BareUTF8Domain is set (sendmail). qmail quotes
// every word with 8-bit bytes, in a display name and a local part ("jörg"@x
// is a valid address, the same mailbox as jörg@x) and in a domain too,
// where the quoted word makes no domain at all (admin@"bücher".example):
// qmail-inject keeps that, byte for byte, as the recorded cases want it;
// sendmail, whose callers expect RFC 6532, does not.
func BareDomainUTF8(a []Token) []Token {
	at := -1
	for i := range a {
		if a[i].Kind == At {
			at = i
		}
	}
	if at < 0 {
		return a
	}
	cloned := false
	for i := at + 1; i < len(a) && a[i].Kind != Right; i++ {
		if a[i].UTF8 && a[i].Kind == Quote {
			if !cloned {
				a, cloned = slices.Clone(a), true
			}
			a[i].Kind = Atom
		}
	}
	return a
}

// AddrList walks the address list of a header field (the tokens of the
// whole field, name and colon included) from its end to its start, as qmail
// does, hands every address to cb and returns the field's tokens with each
// address replaced by what cb returned. cb therefore sees the addresses of
// one field last to first. The slice cb is given is used again for the
// next address: cb must not keep it (it may return it).
//
// The field's name and colon (its first two tokens) are never part of the
// list. Outside angle brackets comments are kept apart from the address
// (they end up after it) and two words with nothing between them start a
// new address (a comma is put in, as after a '>' or a ';' that an address
// follows). A route-addr <...> is one address, comments and all; the
// phrase before it (words, dots, '@', comments) is kept as is, and so is
// the phrase before a group's ':'. A '<' without its '>' is a byte of the
// address, as in qmail (recorded case 062 keeps "From: <alice@example.org"
// and takes it for an address). ok is false, as qmail's parser fails, for
// a '>' without its '<', a ':' with no ';' after it (a group name, or a
// source route outside angle brackets) and a ';' after another with no
// ':' between; cb has been called for the addresses right of the error.
func AddrList(toks []Token, cb func([]Token) []Token) (out []Token, ok bool) {
	begin := 0
	if len(toks) >= 2 && toks[1].Kind == Colon {
		begin = 2
	}
	// Both in reverse order; rewriting adds a few tokens to most addresses.
	rev := make([]Token, 0, len(toks)+len(toks)/4+4)
	var addr, fwd []Token
	got := func() {
		fwd = append(fwd[:0], addr...)
		slices.Reverse(fwd)
		res := cb(fwd)
		for i := len(res) - 1; i >= 0; i-- {
			rev = append(rev, res[i])
		}
		addr = addr[:0]
	}
	flush := func(comma bool) {
		if len(addr) == 0 {
			return
		}
		got()
		if comma {
			rev = append(rev, Token{Kind: Comma})
		}
	}
	phrase := func(i int) int {
		for ; i >= begin; i-- {
			switch toks[i].Kind {
			case Comment, Atom, Quote, At, Dot:
				rev = append(rev, toks[i])
				continue
			}
			break
		}
		return i
	}
	group := false // a ';' was passed and its ':' not yet
	i := len(toks) - 1
	for i >= begin {
		t := toks[i]
		switch t.Kind {
		case Semi:
			flush(true)
			if group {
				return nil, false
			}
			group = true
			rev = append(rev, t)
			i--
		case Comma:
			flush(false)
			rev = append(rev, t)
			i--
		case Colon:
			flush(false)
			if !group {
				return nil, false
			}
			group = false
			rev = append(rev, t)
			i = phrase(i - 1)
		case Right:
			flush(true)
			rev = append(rev, t)
			i--
			for i >= begin && toks[i].Kind != Left {
				addr = append(addr, toks[i])
				i--
			}
			got() // even when empty: <>
			if i < begin {
				return nil, false
			}
			rev = append(rev, toks[i])
			i = phrase(i - 1)
		case Comment:
			rev = append(rev, t)
			i--
		default: // words, '@', '.', and a '<' without its '>'
			if len(addr) > 0 && addr[len(addr)-1].Kind.word() && t.Kind.word() {
				flush(true)
			}
			addr = append(addr, t)
			i--
		}
	}
	flush(false)
	for j := begin - 1; j >= 0; j-- {
		rev = append(rev, toks[j])
	}
	for l, r := 0, len(rev)-1; l < r; l, r = l+1, r-1 {
		rev[l], rev[r] = rev[r], rev[l]
	}
	return rev, true
}
