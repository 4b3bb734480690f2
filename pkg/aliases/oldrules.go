package aliases

import (
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
)

// This file keeps the rules targets were read by before the forms of
// RFC 5322 (display names, comments, quoted local parts kept quoted)
// were added, so that every line they took means what it meant: an
// aliases file, a .forward or an :include: file that worked goes on
// doing the same. A list is read by these rules first (ScanTargets); the
// RFC 5322 forms apply only to a list they refuse, and there only to a
// target they refuse.
//
// The old rules: a list splits at commas and newlines outside double
// quotes; the quotes are removed (inside them a backslash takes the next
// byte as it is); blanks around a target and then one pair of angle
// brackets around it (and blanks inside those) are removed; an empty
// target is dropped. So "bob(x)@example.com" is that address, comment
// and all, and " |prog" a program.
//
// One thing they took is refused now on purpose: an angle bracket left
// in a target that is not a program ("<bob@x" was the address "<bob@x",
// "bob@x>" one for the host "x>", "<a@x>b" and "\"a<b\"@x" addresses
// holding brackets), one without its pair or inside quotes. Such a
// target goes on to the RFC 5322 reading, which refuses it, or reads a
// display name or a comment in it (Bob<bob@x> is bob@x, bob(<) is bob).
// A NUL, CR or LF in a target the old check refused already; it stays
// refused.
//
// A second thing they took is refused now on purpose: text after the
// closing quote of a quoted program, file, Maildir, include or local
// user. The quotes were removed and the text joined to the target, so a
// comma left out ("|/usr/bin/archive" bob@example.com) silently made
// the address an argument of the program (|/usr/bin/archive
// bob@example.com), or a part of the file's name, where "bob" carol and
// bob carol are refused as not one address. Such a target goes on to
// normalize, which refuses it (quotedTail).

// oldSplit splits s by the old rules. It returns each target in the old
// form with the offset in s of the first byte of its piece that is not a
// blank, and ok false for a quote left open or a piece with text after
// the quoted program or file it starts with (quotedTail), which the old
// rules took and are refused now.
func oldSplit(s string) (ts []Target, ok bool) {
	var cur strings.Builder
	inq := false
	start := 0
	tail := false
	flush := func(end int) {
		if quotedTail(s[start:end]) {
			tail = true
		}
		t := trimBlanks(cur.String())
		cur.Reset()
		if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") && len(t) >= 2 {
			t = trimBlanks(t[1 : len(t)-1])
		}
		if t != "" {
			off := start
			for off < end && strings.IndexByte(" \t\n\r\v\f", s[off]) >= 0 {
				off++
			}
			ts = append(ts, Target{t, off})
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inq = !inq
		case c == '\\' && inq && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case (c == ',' || c == '\n') && !inq:
			flush(i)
			start = i + 1
		default:
			cur.WriteByte(c)
		}
	}
	if inq {
		return nil, false
	}
	flush(len(s))
	if tail {
		return nil, false
	}
	return ts, true
}

// oldAccepts reports whether the old rules took the target t (in the old
// form) and it is still taken: the old checks, and no angle bracket
// outside a program (see above).
func oldAccepts(t string) bool {
	if strings.ContainsAny(t, "\x00\r\n") {
		return false
	}
	k, arg := Classify(t)
	switch k {
	case Program:
		return arg != ""
	case Include:
		return strings.HasPrefix(arg, "/") && !strings.ContainsAny(arg, "<>")
	case Local:
		return arg != "" && !strings.ContainsAny(arg, " \t@<>")
	case Address:
		return !strings.ContainsAny(arg, " \t<>") && !strings.HasSuffix(arg, "@") && !strings.HasPrefix(arg, "@")
	}
	return !strings.ContainsAny(arg, "<>") // File, Maildir
}

// storedOld returns the stored form of a target the old rules took, ok
// false when there is none. It is the old form itself, but for an address
// that starts with a double quote (from an escaped quote: "\"bob\""@x is
// the address "bob"@x), which the stored form would read as a quoted
// local part: that one is written with its local part quoted (or, when
// its domain would not read back, quoted as a whole), so that Envelope
// gives the old form back.
func storedOld(t string) (string, bool) {
	if k, _ := Classify(t); k != Address || !strings.HasPrefix(t, `"`) {
		return t, true
	}
	local, domain, has := address.Split(t)
	for _, s := range []string{canonical(local, domain, has), address.QuoteLocal(t)} {
		if Envelope(s) == t && CheckTarget(s) == "" {
			return s, true
		}
	}
	return "", false
}

// oldScan reads the list s by the old rules: ok when they take every
// target of it, and then the targets in their stored form.
func oldScan(s string) ([]Target, bool) {
	ts, ok := oldSplit(s)
	if !ok {
		return nil, false
	}
	for i, t := range ts {
		if !oldAccepts(t.Text) {
			return nil, false
		}
		st, ok := storedOld(t.Text)
		if !ok {
			return nil, false
		}
		ts[i].Text = st
	}
	return ts, true
}

// oldTarget reads one raw target (a piece of a list the old rules did
// not take as a whole) by the old rules: ok when they take it, with its
// stored form ("" for a target that is dropped, such as "" or <>). A
// piece they would split in two (a comma inside a comment or angle
// brackets) is not one target to them.
func oldTarget(raw string) (string, bool) {
	ts, ok := oldSplit(raw)
	switch {
	case !ok || len(ts) > 1:
		return "", false
	case len(ts) == 0:
		return "", true
	}
	if !oldAccepts(ts[0].Text) {
		return "", false
	}
	return storedOld(ts[0].Text)
}
