package sendmail

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
)

// AddrSpec returns the address of a -f value or of one element of a
// recipient argument, the rule of sendmail(8) ADDRESSES. An element with
// an angle bracket outside double quotes and comments is a name-addr,
// "[phrase] <address> [comments]" as sendmail and Postfix read it (mailx
// -r and some scripts pass that form): "Joe <joe@example.org> (work)" is
// joe@example.org and "<>" the null address. It must be whole: one '<'
// closed by one '>', followed by nothing but white space and comments;
// anything else there (a second <address> without a comma, trailing
// words, an unclosed bracket) is an error saying what is wrong. Any other
// element is the address itself. Either way the address is then read as
// sendmail and Postfix read one (unquote): its comments go and its quoted
// strings lose their quotes, so '"joe smith"@x' is the mailbox "joe smith"
// at x, which qmail-inject quotes again for the envelope (it used to quote
// the quotes too, and the mail went to another mailbox); an address with
// an unbalanced quote or parenthesis is left to qmail-inject's own rule
// (split at the last @, quote the local part).
func AddrSpec(s string) (string, error) {
	t := trim(s)
	lt, gt, err := brackets(t)
	if err != nil {
		return "", err
	}
	if lt >= 0 {
		t = t[lt+1 : gt]
	}
	return unquote(trim(t)), nil
}

// unquote returns the address a without its comments and with its quoted
// strings unquoted (the quotes dropped, a backslash inside them taking the
// byte after it), or a unchanged when a quote or parenthesis in it is not
// closed. White space outside quoted strings is the space between tokens,
// not part of the address ("joe (c)@x" and '"a b" @x' are joe@x and the
// mailbox "a b" at x), except between two plain words, which keep one
// space for qmail-inject's own rule ("a b@x" is the mailbox "a b").
func unquote(a string) string {
	var b strings.Builder
	quoted, paren, gap := false, 0, false
	var last byte       // the byte written last
	lastQuoted := false // it came from a quoted string
	write := func(c byte, q bool) {
		if gap && b.Len() > 0 && !q && !lastQuoted && !special(last) && !special(c) {
			b.WriteByte(' ')
		}
		gap = false
		b.WriteByte(c)
		last, lastQuoted = c, q
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case quoted && c == '\\' && i+1 < len(a):
			i++
			write(a[i], true)
		case quoted && c == '"':
			quoted = false
		case quoted:
			write(c, true)
		case paren > 0 && c == '\\':
			i++
		case paren > 0 && c == '(':
			paren++
		case paren > 0 && c == ')':
			if paren--; paren == 0 {
				gap = true
			}
		case paren > 0:
		case c == '"':
			quoted, gap = true, false
		case c == '(':
			paren = 1
		case blank(c):
			gap = true
		default:
			write(c, false)
		}
	}
	if quoted || paren > 0 {
		return a
	}
	return b.String()
}

// brackets returns the indexes of the '<' and '>' of the name-addr t, or
// -1, -1 when t has no angle bracket outside quoted strings and comments.
// An unclosed quoted string or comment is left to qmail-inject unless an
// angle bracket is in it (a quote opened before the '<' hides the
// brackets, which would then be read as part of the address).
func brackets(t string) (lt, gt int, err error) {
	lt, gt = -1, -1
	quoted, paren, open := false, 0, 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		if quoted || paren > 0 {
			switch {
			case c == '\\':
				i++
			case quoted && c == '"':
				quoted = false
			case !quoted && c == '(':
				paren++
			case !quoted && c == ')':
				paren--
			}
			continue
		}
		switch {
		case blank(c):
			continue
		case c == '(':
			paren, open = 1, i
			continue
		}
		if gt >= 0 {
			switch c {
			case '<':
				return -1, -1, errors.New("a second <address> follows the first: separate addresses with commas")
			case '>':
				return -1, -1, errors.New("'>' without an opening '<'")
			}
			return -1, -1, errors.New("text after the closing '>' (only a comment in parentheses may follow)")
		}
		switch c {
		case '"':
			quoted, open = true, i
		case '<':
			if lt >= 0 {
				return -1, -1, errors.New("'<' inside <...>")
			}
			lt = i
		case '>':
			if lt < 0 {
				return -1, -1, errors.New("'>' without an opening '<'")
			}
			gt = i
		}
	}
	if (quoted || paren > 0) && (lt >= 0 || strings.ContainsAny(t[open:], "<>")) {
		if quoted {
			return -1, -1, errors.New("'\"' without a closing '\"'")
		}
		return -1, -1, errors.New("'(' without a closing ')'")
	}
	if lt >= 0 && gt < 0 {
		return -1, -1, errors.New("'<' without a closing '>'")
	}
	return lt, gt, nil
}

// SplitRecipients splits argument recipients that are comma-separated
// lists ("alice, bob", as cron passes a MAILTO of several users in one
// argument) into one recipient each, trims the white space around them,
// reads each as AddrSpec, and drops empty ones. Commas inside double
// quotes, comments or angle brackets do not split. qmail's sendmail hands
// such an argument to qmail-inject as one address; sendmail and Postfix
// read a list. An element AddrSpec refuses makes the whole call fail,
// with an error naming the element and its argument; so does one whose
// address has nothing before its last @ ("@localhost", what
// "$ADMIN@localhost" gives with ADMIN unset): qmail-lspawn takes an empty
// local part as delivered without delivering it, so the mail would be
// lost without a word.
func SplitRecipients(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		var elems []string
		for _, e := range splitList(ungroup(a)) {
			elems = append(elems, splitWords(e)...)
		}
		for _, r := range elems {
			if r = trim(r); r == "" {
				continue
			}
			s, err := AddrSpec(r)
			if err == nil && s != "" {
				if local, _, _ := address.Split(s); local == "" {
					err = errors.New("it has no local part (nothing before the @)")
				}
			}
			if err != nil {
				if r != trim(a) {
					return nil, fmt.Errorf("unable to parse address %q in the argument %q: %v", r, a, err)
				}
				return nil, fmt.Errorf("unable to parse address %q: %v", a, err)
			}
			if s != "" { // "<>", "()" or "\"\"": no address, no recipient
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// ungroup turns the groups of the address list s ("team: a@x, b@y;", and
// "undisclosed-recipients:;", which has no member) into their members, as
// sendmail and Postfix read a group: the name and its colon, and the
// semicolon, become list separators. A colon is a group's only when no '@'
// comes before it in its element and a ';' follows it, outside quoted
// strings, comments and angle brackets (so a route <@a:b@c> or a local
// part with a colon is no group). A ';' outside a group separates too, as
// in the lists Outlook writes ("a@x; b@y").
func ungroup(s string) string {
	if !strings.Contains(s, ";") {
		return s
	}
	b := []byte(s)
	elem, open := 0, false
	topLevel(s, func(i int) {
		switch c := s[i]; {
		case c == ',':
			elem = i + 1
		case c == ':' && !open && !strings.Contains(s[elem:i], "@") && strings.IndexByte(s[i+1:], ';') >= 0:
			for k := elem; k < i; k++ {
				b[k] = ' '
			}
			b[i], open, elem = ',', true, i+1
		case c == ';':
			// The end of a group; outside one, a list separator
			// as Outlook writes lists.
			b[i], open, elem = ',', false, i+1
		}
	})
	return string(b)
}

// splitWords splits an element of a recipient list at its white space
// outside quoted strings, comments and angle brackets when a word before
// the last has an '@' there: "box@a.example dave@a.example" is two
// addresses, as sendmail and Postfix read it (fetchmail's multidrop %T
// passes a message's recipients so, in one argument). Read as one address,
// split at its last '@', it would be a local part with an '@' and a space
// in it, which no mailbox has: the mail bounced to its sender. Each word
// is kept whole, quoted strings and comments included ('a@x "b c"' is
// a@x and the mailbox "b c"). An element whose '@' comes only in its last
// word ("a b@example.org", "joe (c)@example.org") stays whole, for
// qmail-inject's rule and unquote, and so does a name-addr: "a@x Joe
// <j@y>" is j@y, its words before the '<' a phrase, as Postfix reads it.
// So does an element with a quoted string or comment that is not closed:
// it runs to the end of the element, and the words before it are no
// addresses of their own ("admin@x.org (Admin" was admin@x.org and a
// made-up local recipient "(Admin"); the whole is one address, left to
// qmail-inject's rule as a -f value is.
func splitWords(e string) []string {
	if lt, _, err := brackets(trim(e)); err != nil || lt >= 0 {
		return []string{e} // AddrSpec reads it (or says what is wrong)
	}
	var cuts []int
	if open := topLevel(e, func(i int) {
		if blank(e[i]) {
			cuts = append(cuts, i)
		}
	}); open {
		return []string{e}
	}
	var words []string
	start := 0
	for _, c := range append(cuts, len(e)) {
		if c > start {
			words = append(words, e[start:c])
		}
		start = c + 1
	}
	if len(words) < 2 {
		return []string{e}
	}
	last := words[len(words)-1]
	for _, w := range words[:len(words)-1] {
		// A word with an '@' (a quoted one too: '"a@b" c@d' is two, as
		// Postfix reads it), or a whole quoted string before an address
		// ('"Smith, John" john@x', a MAILTO written as a header): read
		// together they make a local part no mailbox has.
		if hasAt(w) || quotedWord(w) && hasAt(last) {
			return words
		}
	}
	return []string{e}
}

// hasAt reports whether w has an '@' outside comments and angle
// brackets (in a quoted string too).
func hasAt(w string) bool {
	at := false
	scanList(w, func(i int, _ bool) {
		if w[i] == '@' {
			at = true
		}
	})
	return at
}

// quotedWord reports whether w is one quoted string and nothing else.
func quotedWord(w string) bool {
	if len(w) < 2 || w[0] != '"' || w[len(w)-1] != '"' {
		return false
	}
	for i := 1; i < len(w)-1; i++ {
		switch w[i] {
		case '\\':
			i++
		case '"':
			return false
		}
	}
	return true
}

// splitList splits s at the commas outside quoted strings, comments and
// angle brackets. An unbalanced quote, parenthesis or bracket leaves the
// rest unsplit.
func splitList(s string) []string {
	var parts []string
	start := 0
	topLevel(s, func(i int) {
		if s[i] == ',' {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	})
	return append(parts, s[start:])
}

// topLevel calls fn with the index of each byte of the address list s
// that is outside quoted strings, comments and angle brackets (a
// backslash in a quoted string or comment taking the next byte). It
// reports whether a quoted string or comment is left open at the end.
func topLevel(s string, fn func(i int)) (open bool) {
	return scanList(s, func(i int, quoted bool) {
		if !quoted {
			fn(i)
		}
	})
}

// scanList calls fn with the index of each byte of the address list s
// that is outside comments and angle brackets, and whether it is inside
// a quoted string (the quotes themselves, and a backslash in a quoted
// string or comment with the byte it takes, are not passed). It reports
// whether a quoted string or comment is left open at the end of s.
func scanList(s string, fn func(i int, quoted bool)) (open bool) {
	quoted, angle, paren := false, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case (quoted || paren > 0) && c == '\\':
			i++
		case paren == 0 && c == '"':
			quoted = !quoted
		case quoted:
			fn(i, true)
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case paren > 0:
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case angle > 0:
		default:
			fn(i, false)
		}
	}
	return quoted || paren > 0
}

// blank reports whether c is white space between tokens (the line ends of
// a folded value too).
func blank(c byte) bool { return strings.IndexByte(asciiSpace, c) >= 0 }

// asciiSpace is the white space around an address: ASCII only, as in
// qmail and Postfix (a no-break or ideographic space is part of it).
const asciiSpace = " \t\r\n\v\f"

// trim removes ASCII white space around s.
func trim(s string) string { return strings.Trim(s, asciiSpace) }

// special reports whether c is a character of an address's structure
// (RFC 5322 specials, and the % and ! of source routes), beside which
// white space is never part of the address.
func special(c byte) bool { return strings.IndexByte(".@:;,<>[]%!", c) >= 0 }

// nonEmpty returns the elements of list that are not blank.
func nonEmpty(list []string) []string {
	var out []string
	for _, e := range list {
		if trim(e) != "" {
			out = append(out, e)
		}
	}
	return out
}
