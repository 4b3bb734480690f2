package aliases

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
	"unicode"
)

// The parser as it was before the RFC 5322 forms (commit c3addcc), kept
// here as the reference the compatibility rule is checked against: a
// line it took must mean what it meant (oldrules.go).

func refParse(r io.Reader) (targets []string, ok bool) {
	sc := bufio.NewScanner(r)
	var text string
	for sc.Scan() {
		raw := sc.Text()
		if strings.IndexByte(raw, 0) >= 0 {
			return nil, false
		}
		if t := strings.TrimSpace(raw); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		text += raw
	}
	_, rest, _, found := splitName(text)
	if !found {
		return nil, false
	}
	ts, err := refSplitTargets(rest)
	if err != nil || len(ts) == 0 {
		return nil, false
	}
	for _, t := range ts {
		if refCheckTarget(t) != "" {
			return nil, false
		}
	}
	return ts, true
}

func refSplitTargets(s string) ([]string, error) {
	var out []string
	var cur bytes.Buffer
	inq := false
	flush := func() {
		t := strings.TrimSpace(cur.String())
		cur.Reset()
		if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") && len(t) >= 2 {
			t = strings.TrimSpace(t[1 : len(t)-1])
		}
		if t != "" {
			out = append(out, t)
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
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	if inq {
		return nil, fmt.Errorf("unterminated quote")
	}
	flush()
	return out, nil
}

func refCheckTarget(t string) string {
	if strings.ContainsAny(t, "\x00\r\n") {
		return "control"
	}
	k, arg := Classify(t)
	switch k {
	case Program:
		if arg == "" {
			return "empty program"
		}
	case Include:
		if !strings.HasPrefix(arg, "/") {
			return "relative include"
		}
	case Local:
		if arg == "" || strings.ContainsAny(arg, " \t@") {
			return "bad local"
		}
	case Address:
		if strings.ContainsAny(arg, " \t\r") || strings.HasSuffix(arg, "@") || strings.HasPrefix(arg, "@") {
			return "bad address"
		}
	}
	return ""
}

// meaning is what a target does: its kind and argument, an address in
// the form the envelope carries.
func meaning(t string) string {
	k, arg := Classify(t)
	if k == Address {
		arg = Envelope(arg)
	}
	return fmt.Sprintf("%d:%s", k, arg)
}

// refusedOnPurpose reports whether the old parser's reading of a line
// holds a target refused on purpose now: an angle bracket left in a
// target that is not a program (one without its pair, or inside
// quotes: "<bob@x", "bob@x>", "<a@x>b", "a<b"@x). Such a line is an
// error now, or read by the RFC 5322 forms (Bob<bob@x> is bob@x).
func refusedOnPurpose(old []string) bool {
	for _, t := range old {
		if k, arg := Classify(t); k != Program && strings.ContainsAny(arg, "<>") {
			return true
		}
	}
	return false
}

// refTextAfterQuote reports whether a target of the line (an aliases
// line, its name before the colon) starts with a quoted program, file,
// Maildir, include or local user and goes on after the closing quote:
// "|prog" bob, the program "|prog bob" to the old parser, is refused on
// purpose (a comma left out made bob an argument of the program).
func refTextAfterQuote(line string) bool {
	_, rest, _, _ := splitName(line)
	var pieces []string
	inq, from := false, 0
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '"':
			inq = !inq
		case c == '\\' && inq:
			i++
		case c == ',' && !inq:
			pieces = append(pieces, rest[from:i])
			from = i + 1
		}
	}
	pieces = append(pieces, rest[from:])
	for _, p := range pieces {
		p = strings.TrimSpace(p)
		angle := strings.HasPrefix(p, "<")
		p = strings.TrimSpace(strings.TrimPrefix(p, "<"))
		if !strings.HasPrefix(p, `"`) {
			continue
		}
		ts, err := refSplitTargets(p)
		if err != nil || len(ts) != 1 {
			continue
		}
		if k, _ := Classify(ts[0]); k == Address {
			continue
		}
		// The quoted part, the closing quote, and what follows it.
		end := 1
		for end < len(p) && p[end] != '"' {
			if p[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(p) {
			continue
		}
		tail := strings.TrimSpace(p[end+1:])
		if angle { // the '>' of the '<' before the quote
			tail = strings.TrimSuffix(tail, ">")
		}
		if strings.TrimSpace(tail) != "" {
			return true
		}
	}
	return false
}

// otherWhiteSpace reports whether line holds white space that is no
// blank (blanks_test.go): the old parser trimmed it around a target
// (strings.TrimSpace), which is changed on purpose.
func otherWhiteSpace(line string) bool {
	return strings.ContainsFunc(line, func(r rune) bool {
		return unicode.IsSpace(r) && !strings.ContainsRune(blanks, r)
	})
}

// compareOld parses line with both parsers. It returns "" when the old
// parser refused the line, or when the new one reads it the same way
// (or refuses it on purpose); otherwise what differs.
func compareOld(line string) string {
	old, ok := refParse(strings.NewReader(line + "\n"))
	if !ok {
		return ""
	}
	as, errs := Parse(strings.NewReader(line+"\n"), "f")
	var o, n []string
	for _, t := range old {
		k, arg := Classify(t) // the old parser's targets went out as they were
		o = append(o, fmt.Sprintf("%d:%s", k, arg))
	}
	for _, a := range as {
		for _, t := range a.Targets {
			n = append(n, meaning(t))
		}
	}
	os, ns := strings.Join(o, " | "), strings.Join(n, " | ")
	if len(errs) == 0 && os == ns {
		return ""
	}
	if refusedOnPurpose(old) || refTextAfterQuote(line) || otherWhiteSpace(line) {
		return ""
	}
	return fmt.Sprintf("%q: old [%s], now [%s] %v", line, os, ns, errs)
}

// TestOldMeaningKept: every line the old parser took means what it
// meant (the same kinds, the same programs and paths, the same envelope
// addresses), but those holding a stray angle bracket, now refused on
// purpose. The review found lines that had silently changed meaning:
// "< /tmp/x/filebox>" (a file) and "<\"|prog\">" (a program) became
// addresses, "bob(x)@example.com" lost its comment, "\"<bob@x>\"" was
// refused.
func TestOldMeaningKept(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`fil: < /tmp/x/filebox>`, "2:/tmp/x/filebox"},
		{`prg: < |/usr/bin/id>`, "1:/usr/bin/id"},
		{`a: <"|/usr/bin/prog">`, "1:/usr/bin/prog"},
		{`a: " /var/mail/bob"`, "2:/var/mail/bob"},
		{`a: " |prog"`, "1:prog"},
		{`a: "  :include:/x"`, "4:/x"},
		{`a: " \\bob"`, "5:bob"},
		{`a: bob(x)@example.com`, "0:bob(x)@example.com"},
		{`a: bo\b@x`, `0:bo\b@x`},
		{`a: "<bob@example.com>"`, "0:bob@example.com"},
		{`a: "\"bob\""@x`, `0:"bob"@x`},
		{`a: Bob<bob@x>`, "0:bob@x"},
		{`a: "\"bob"@x`, `0:"bob@x`},
		{`a: bob(x)@example.com, Bob Smith <bob@example.com>`, "0:bob(x)@example.com | 0:bob@example.com"},
	} {
		as, errs := Parse(strings.NewReader(tc.line+"\n"), "f")
		var got []string
		for _, a := range as {
			for _, tg := range a.Targets {
				got = append(got, meaning(tg))
			}
		}
		if len(errs) > 0 || strings.Join(got, " | ") != tc.want {
			t.Errorf("%s: got [%s] %v, want [%s]", tc.line, strings.Join(got, " | "), errs, tc.want)
		}
		if d := compareOld(tc.line); d != "" {
			t.Errorf("changed: %s", d)
		}
	}
}

var oldLines = flag.Int("oldlines", 20000, "random lines TestOldMeaningRandom compares with the old parser")

// TestOldMeaningRandom compares the parsers on random lines made of the
// pieces targets are made of (the review's differential harness, 200000
// lines: go test -run OldMeaningRandom -oldlines 200000).
func TestOldMeaningRandom(t *testing.T) {
	toks := []string{"bob", "carol", "@", "x.com", `"`, "<", ">", "(", ")", ",", " ", `\`, "|", "/", ".", ":include:",
		"a b", "|/bin/prog", "/var/mail/x", ";", "[1.2.3.4]", "\t", "!", "%", "-", "#"}
	rng := rand.New(rand.NewSource(7))
	changed, took := 0, 0
	for i := 0; i < *oldLines; i++ {
		var b strings.Builder
		b.WriteString("a: ")
		for n := 1 + rng.Intn(7); n > 0; n-- {
			b.WriteString(toks[rng.Intn(len(toks))])
		}
		line := b.String()
		if _, ok := refParse(strings.NewReader(line + "\n")); ok {
			took++
		}
		if d := compareOld(line); d != "" {
			if changed++; changed <= 20 {
				t.Errorf("changed: %s", d)
			}
		}
	}
	t.Logf("%d lines, %d taken by the old parser, %d changed", *oldLines, took, changed)
	if changed > 0 {
		t.Errorf("%d lines the old parser took mean something else now", changed)
	}
}

// TestEmptyAddressRefused: an empty address is refused, in an aliases
// line and in a list, as the old parser refused it ("" was dropped,
// ""@host was the bad address "@host"). Taken, x: "" compiled and mail
// to x went to an empty local part, reported as delivered: lost.
func TestEmptyAddressRefused(t *testing.T) {
	for _, tc := range []struct{ line, err string }{
		{`x: ""`, `alias "x" has no targets`},
		{`x: <>`, `alias "x" has no targets`},
		{`x: ""@localhost`, `bad address "\"\"@localhost": empty address`},
		{`x: Bob <"">`, `bad address "Bob <\"\">": empty address`},
		{`x: Bob <>`, `bad address "Bob <>": empty address`},
		{`x: (c) ""@localhost (d)`, `empty address`},
	} {
		as, errs := Parse(strings.NewReader(tc.line+"\n"), "f")
		if len(as) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.err) {
			t.Errorf("%s: %v %v, want the error %q", tc.line, as, errs, tc.err)
		}
		list := strings.TrimPrefix(tc.line, "x: ")
		if good, _ := ScanTargets(list); len(good) != 0 {
			t.Errorf("ScanTargets(%s) = %v", list, good)
		}
	}
}

// FuzzOldMeaning: what TestOldMeaningRandom checks, on any target list.
func FuzzOldMeaning(f *testing.F) {
	for _, s := range []string{`< /tmp/x/filebox>`, `<"|/usr/bin/prog">`, `bob(x)@example.com, Bob <bob@x>`, `"\"bob\""@x`, `" \\bob"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "\n") {
			return
		}
		if d := compareOld("a: " + s); d != "" {
			t.Fatal(d)
		}
	})
}
