package inject

import "unicode/utf8"

// This file is the RFC 822 lexer of qmail-inject: a header field (name
// included) becomes a list of tokens, and a list of tokens becomes text
// again, folded near a line length. Its rules are qmail's, not RFC 5322's:
// an atom runs until a special or white space, a backslash escapes the next
// byte anywhere, nested comment parentheses are dropped, and an atom that
// holds a control byte, an 8-bit byte, ')' ']' or '\' is turned into a
// quoted string so that it survives being written out again.

// Kind is the type of a token.
type Kind uint8

// Token kinds. Words carry text in S; the specials carry none.
const (
	Atom    Kind = iota + 1 // word
	Quote                   // "quoted string", S without the quotes
	Literal                 // [domain literal], S without the brackets
	Comment                 // (comment), S without the parentheses
	Comma                   // ,
	At                      // @
	Dot                     // .
	Left                    // <
	Right                   // >
	Semi                    // ;
	Colon                   // :
)

// Token is one lexical item of a header field.
type Token struct {
	Kind Kind
	S    string
	// UTF8 marks a Quote that was an atom quoted only for its 8-bit
	// bytes, all of them UTF-8. In a phrase (a display name) and a local
	// part it stays quoted, as qmail writes it ("jörg"@x is the same
	// mailbox as jörg@x, and qmail-remote's envelope quotes it too, as
	// qmail's does); in a domain, which cannot be quoted at all,
	// Rewrite makes it an atom again (BareDomainUTF8; RFC 6532 makes
	// UTF-8 atom text).
	UTF8 bool
}

func (k Kind) word() bool {
	return k == Atom || k == Quote || k == Literal || k == Comment
}

// atomByte reports whether c may continue an atom.
func atomByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '(', '[', '"', '<', '>', ';', ':', '@', ',', '.':
		return false
	}
	return true
}

// specialChar holds the character each special kind stands for; the word
// kinds have none (0).
var specialChar = [...]byte{Comma: ',', At: '@', Dot: '.', Left: '<', Right: '>', Semi: ';', Colon: ':'}

// wordDelims holds the characters that open and close a word of each kind
// written out; an atom has none.
var wordDelims = [...][2]byte{Quote: {'"', '"'}, Literal: {'[', ']'}, Comment: {'(', ')'}}

// delims returns the characters that open and close a word of kind k
// written out: none (zeros) for an atom.
func (k Kind) delims() [2]byte {
	if int(k) < len(wordDelims) {
		return wordDelims[k]
	}
	return [2]byte{}
}

// specialKind is specialChar the other way round: the kind of special
// each byte stands for, 0 for the bytes that stand for none.
var specialKind = func() (t [256]Kind) {
	for k, c := range specialChar {
		if c != 0 {
			t[c] = Kind(k)
		}
	}
	return t
}()

// special returns the kind of special c stands for, if it stands for one.
func special(c byte) (Kind, bool) {
	k := specialKind[c]
	return k, k != 0
}

// char returns the character of a special kind, and 0 for a word kind.
func (k Kind) char() byte {
	if int(k) < len(specialChar) {
		return specialChar[k]
	}
	return 0
}

// Tokenize splits s into tokens. It fails (ok false) on an unterminated
// comment, quoted string or literal, a backslash ending one of those, and a
// ')' or ']' where a token starts.
func Tokenize(s string) (toks []Token, ok bool) {
	n := len(s)
	// Most tokens are specials or a word after one: room for twice the
	// specials saves regrowing the list of a long address field.
	sp := 0
	for i := 0; i < n; i++ {
		if _, ok := special(s[i]); ok {
			sp++
		}
	}
	toks = make([]Token, 0, 2*sp+4)
	for i := 0; i < n; i++ {
		c := s[i]
		if k, sp := special(c); sp {
			toks = append(toks, Token{Kind: k})
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case ')', ']':
			return nil, false
		case '(', '"', '[':
			kind, open, closer := Comment, byte('('), byte(')')
			if c == '"' {
				kind, closer = Quote, '"'
			} else if c == '[' {
				kind, closer = Literal, ']'
			}
			var b []byte
			level := 1
			for level > 0 {
				i++
				if i >= n {
					return nil, false
				}
				d := s[i]
				switch {
				case kind == Comment && d == open:
					level++
				case d == closer:
					level--
				case d == '\\':
					i++
					if i >= n {
						return nil, false
					}
					b = append(b, s[i])
				default:
					b = append(b, d)
				}
			}
			toks = append(toks, Token{Kind: kind, S: string(b)})
			continue
		}
		// An atom: up to the next byte that cannot continue one. One
		// without a backslash is a piece of s, not a copy: a field of
		// many thousand addresses then costs its tokens and no more.
		start, b := i, []byte(nil)
		for {
			if s[i] == '\\' {
				if b == nil {
					b = append(make([]byte, 0, 16), s[start:i]...)
				}
				i++
				if i >= n {
					break
				}
			}
			if b != nil {
				b = append(b, s[i])
			}
			i++
			if i >= n || !atomByte(s[i]) {
				break
			}
		}
		t := Token{Kind: Atom, S: s[start:i]}
		if b != nil {
			t.S = string(b)
		}
		i--
		eight := false
		for j := 0; j < len(t.S); j++ {
			d := t.S[j]
			if d < 32 || d == 127 || d == ')' || d == ']' || d == '\\' {
				t.Kind, eight = Quote, false
				break
			}
			if d > 127 {
				t.Kind, eight = Quote, true
			}
		}
		t.UTF8 = eight && utf8.ValidString(t.S)
		toks = append(toks, t)
	}
	return toks, true
}

// needSpace reports whether a space separates a token of kind prev from
// one of kind next when written out.
func needSpace(prev, next Kind) bool {
	if prev == 0 {
		return false
	}
	if prev == Colon || prev == Comma || next == Left {
		return true
	}
	return prev.word() && next.word()
}

// LineLen is the length near which qmail-inject folds address lists.
const LineLen = 80

// Unparse writes tokens out as header text ending in a newline. After each
// comma a line break is tentatively placed; it is taken out again when the
// line, joined with the next part, still fits in linelen (0: never fold).
func Unparse(toks []Token, linelen int) string {
	buf := make([]byte, 0, 64+len(toks)*8)
	lineb, linee := 0, -1
	brk := func() {
		if linee >= 0 && (linelen == 0 || len(buf)-lineb <= linelen) {
			buf = append(buf[:linee], buf[linee+2:]...)
		} else if linee >= 0 {
			lineb = linee + 1
		}
		linee = len(buf)
		buf = append(buf, '\n', ' ')
	}
	var last Kind
	for _, t := range toks {
		if needSpace(last, t.Kind) {
			buf = append(buf, ' ')
		}
		last = t.Kind
		if c := t.Kind.char(); c != 0 {
			buf = append(buf, c)
			if t.Kind == Comma {
				brk()
			}
			continue
		}
		delim := t.Kind.delims()
		if delim[0] != 0 {
			buf = append(buf, delim[0])
		}
		for i := 0; i < len(t.S); i++ {
			switch c := t.S[i]; c {
			case '"', '[', ']', '(', ')', '\\', '\r', '\n':
				buf = append(buf, '\\', c)
			default:
				buf = append(buf, c)
			}
		}
		if delim[1] != 0 {
			buf = append(buf, delim[1])
		}
	}
	brk()
	return string(buf[:len(buf)-1])
}

// Unquote renders an address as the envelope carries it: words without
// quoting, literals in brackets, specials as themselves, comments dropped.
func Unquote(toks []Token) string {
	var b []byte
	for _, t := range toks {
		switch t.Kind {
		case Atom, Quote:
			b = append(b, t.S...)
		case Literal:
			b = append(b, '[')
			b = append(b, t.S...)
			b = append(b, ']')
		case Comment:
		default:
			b = append(b, t.Kind.char())
		}
	}
	return string(b)
}
