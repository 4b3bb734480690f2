// Package aliases reads sendmail's /etc/aliases format and compiles it into
// the cdb that fastforward(8) consults at delivery time.
//
// Format (aliases(5) as sendmail reads it):
//
//	# comment
//	name: target, target, ...
//	    continued target, ...        (a line starting with space or tab continues)
//
// A target is an address (user or user@domain, optionally in <...>), a
// program "|command", a file "/path" (a directory "/path/" is a Maildir),
// an include ":include:/path" (read at delivery time), or "\user"
// (deliver to the local user, no further aliasing). Double quotes group a
// target containing commas or spaces: "|/usr/bin/prog -a, -b". Names are
// case-insensitive in their ASCII letters only, as qmail folds local parts
// (address.LowerASCII): Unicode folding would make every byte that is no
// UTF-8 the same U+FFFD ("\xe8lise" reaching the alias "\xe9lise") and
// fold "\u212aevin" onto "kevin". An alias "owner-NAME" receives the
// errors of NAME.
package aliases

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
)

// Alias is one entry of an aliases file.
type Alias struct {
	Name    string   // local part, ASCII letters lowercased
	Targets []string // raw targets, quotes removed
	File    string
	Line    int
}

// Error is a syntax error with its position.
type Error struct {
	File string
	Line int
	Msg  string
	// Warning marks what is reported but not refused: a repeated alias
	// name (its first entry is used, as Postfix's postalias does).
	Warning bool
}

func (e *Error) Error() string {
	if e.Warning {
		return fmt.Sprintf("%s:%d: warning: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// MaxLine bounds a physical line of an aliases file (an entry may go on
// over any number of continuation lines). A longer line is an error
// naming it, and nothing is compiled.
const MaxLine = 4 << 20

// Parse reads an aliases file. It returns every syntax error found (not only
// the first), so newaliases can report them all; entries with errors are
// left out.
func Parse(r io.Reader, file string) ([]Alias, []error) {
	var out []Alias
	var errs []error
	seen := map[string]int{}
	// An entry with its continuation lines is one logical line; segs
	// remember where each physical line starts in it, so an error names
	// the line its target is on. The text grows by appending (a long
	// entry of many continuation lines is read in linear time; joining
	// strings copied it whole at each line), and an error's line is
	// found by a binary search of segs, which are in order.
	type seg struct{ off, line int }
	type logical struct {
		buf  []byte
		line int
		segs []seg
	}
	lineAt := func(l *logical, off int) int {
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].off > off })
		if i == 0 {
			return l.line
		}
		return l.segs[i-1].line
	}
	var lines []logical
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine+1) // and its newline
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		if n == 1 {
			// A byte order mark (an editor's) is no part of the first
			// alias's name (it made "postmaster" a name of its own).
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		if strings.IndexByte(raw, 0) >= 0 {
			errs = append(errs, &Error{File: file, Line: n, Msg: "NUL byte in line"})
			continue
		}
		// A line of white space only, or with a '#' after it, is
		// skipped, as an :include: file and a .forward skip it; what a
		// line holds is trimmed of blanks only.
		if t := strings.TrimSpace(raw); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		trimmed := trimBlanks(raw)
		if raw[0] == ' ' || raw[0] == '\t' {
			if len(lines) == 0 {
				errs = append(errs, &Error{File: file, Line: n, Msg: "continuation line without an alias before it"})
				continue
			}
			l := &lines[len(lines)-1]
			l.buf = append(l.buf, ' ')
			l.segs = append(l.segs, seg{len(l.buf), n})
			l.buf = append(l.buf, trimmed...)
			continue
		}
		lines = append(lines, logical{buf: []byte(raw), line: n})
	}
	if err := sc.Err(); err != nil {
		msg := "read error: " + err.Error()
		if errors.Is(err, bufio.ErrTooLong) {
			// The scanner stops there: nothing after it is read, and
			// nothing is compiled.
			msg = fmt.Sprintf("line longer than %d MB (continue a long entry on lines that start with a space or tab)", MaxLine>>20)
		}
		errs = append(errs, &Error{File: file, Line: n + 1, Msg: msg})
	}
	for i := range lines {
		l := &lines[i]
		text := string(l.buf)
		l.buf = nil
		name, rest, quoted, ok := splitName(text)
		if !ok {
			errs = append(errs, &Error{File: file, Line: l.line, Msg: "missing ':' after the alias name"})
			continue
		}
		if name == "" {
			errs = append(errs, &Error{File: file, Line: l.line, Msg: "empty alias name"})
			continue
		}
		if strings.ContainsRune(name, '@') || (!quoted && strings.ContainsAny(name, " \t")) {
			errs = append(errs, &Error{File: file, Line: l.line, Msg: fmt.Sprintf("bad alias name %q", name)})
			continue
		}
		restOff := len(text) - len(rest)
		found, bad := ScanTargets(rest)
		for _, b := range bad {
			errs = append(errs, &Error{File: file, Line: lineAt(l, restOff+b.Off), Msg: b.Msg})
		}
		if len(bad) > 0 {
			continue
		}
		if len(found) == 0 {
			errs = append(errs, &Error{File: file, Line: l.line, Msg: fmt.Sprintf("alias %q has no targets", name)})
			continue
		}
		targets := make([]string, len(found))
		for i, t := range found {
			targets[i] = t.Text
		}
		if prev, dup := seen[name]; dup {
			errs = append(errs, &Error{File: file, Line: l.line, Warning: true,
				Msg: fmt.Sprintf("duplicate alias %q ignored (the entry on line %d is used)", name, prev)})
			continue
		}
		seen[name] = l.line
		out = append(out, Alias{Name: name, Targets: targets, File: file, Line: l.line})
	}
	return out, errs
}

// splitName splits "name: rest" at the first unquoted ':'; the name is
// unquoted and its ASCII letters lowercased (the key Lookup finds it by);
// quoted reports whether it contained quotes.
func splitName(s string) (name, rest string, quoted, ok bool) {
	inq := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			inq = !inq
		case c == '\\' && inq && i+1 < len(s):
			i++
		case c == ':' && !inq:
			name = trimBlanks(s[:i])
			quoted = strings.Contains(name, `"`)
			name = strings.ReplaceAll(name, `"`, "")
			return address.LowerASCII(name), s[i+1:], quoted, true
		}
	}
	return "", "", false, false
}

// Target is a target of a list in its stored form, with the byte offset
// in the list where it starts (its first non-blank byte).
type Target struct {
	Text string
	Off  int
}

// TargetError is a target of a list that is refused: where it starts and
// what is wrong with it.
type TargetError struct {
	Off int
	Msg string
}

// ScanTargets splits a target list at commas (and, outside quotes,
// newlines), checks each target (CheckTarget) and returns it in its
// stored form. It goes on past a bad target, so it returns every good
// target and every bad one, each with its offset in s: a caller can name
// the line of each error, or skip a bad target and keep the rest. An
// unterminated quote takes the rest of s with it. Empty targets are
// dropped.
//
// A list the old rules (oldrules.go) take as a whole is read by them, so
// a line that worked means what it meant. Otherwise each target is read
// by them if they take it, else by the forms below.
//
// A target whose first character (after an opening '"' or '<') is '|',
// '/' or '\', or that starts with ":include:", is a program, a file, a
// local user or an include: quotes group it ("|prog a, b") and are
// removed, as are angle brackets around it; text after the closing quote
// of one that starts with a quote ("|prog" bob: a comma left out) is an
// error (quotedTail). Anything else is an address
// in one of the forms of RFC 5322 (see address.go): a display name before
// <addr>, comments around it, a quoted local part (kept quoted); a comma
// inside quotes, a comment or angle brackets does not split it. A
// target neither reading takes is an error; so is an empty address
// ("", <> and the like are dropped by the old rules, but ""@host and
// Name <> are refused).
func ScanTargets(s string) (good []Target, bad []TargetError) {
	if ts, ok := oldScan(s); ok {
		return ts, nil
	}
	base := 0
	for {
		raw, rest, err := nextTarget(s[base:])
		off := len(s) - len(strings.TrimLeft(s[base:], " \t\n"))
		if err != nil {
			return good, append(bad, TargetError{off, err.Error()})
		}
		t, ok := oldTarget(raw)
		if !ok {
			t, err = normalize(raw)
		}
		switch {
		case err != nil:
			bad = append(bad, TargetError{off, err.Error()})
		case t == "":
		default:
			if msg := CheckTarget(t); msg != "" {
				bad = append(bad, TargetError{off, msg})
			} else {
				good = append(good, Target{t, off})
			}
		}
		if rest < 0 {
			return good, bad
		}
		base += rest
	}
}

// isSpecialTarget reports whether the target starting at s (blanks
// skipped) is a program, file, local user or include.
func isSpecialTarget(s string) bool {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "<") {
		s = s[1:]
	}
	if s != "" && (s[0] == '|' || s[0] == '/' || s[0] == '\\') {
		return true
	}
	return len(s) >= len(":include:") && address.EqualFoldASCII(s[:len(":include:")], ":include:")
}

// nextTarget returns the raw text of the first target of s and the index
// where the next one starts (-1: none). Commas and newlines inside quotes
// never split; inside a comment or angle brackets of an address neither.
func nextTarget(s string) (raw string, rest int, err error) {
	special := isSpecialTarget(s)
	inq := false
	comment, angle := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inq:
			if c == '\\' && i+1 < len(s) {
				i++
			} else if c == '"' {
				inq = false
			}
		case comment > 0:
			switch c {
			case '\\':
				i++
			case '(':
				comment++
			case ')':
				comment--
			}
		case c == '"':
			inq = true
		case !special && c == '(':
			comment++
		case !special && c == '<':
			angle++
		case !special && c == '>' && angle > 0:
			angle--
		case (c == ',' || c == '\n') && angle == 0:
			return s[:i], i + 1, nil
		}
	}
	if inq {
		return "", -1, fmt.Errorf("unterminated quote")
	}
	return s, -1, nil
}

// normalize turns a raw target into its stored form. An address written
// with RFC 5322's brackets, comments or quotes that is not one address
// is an error naming it as written.
//
// An angle bracket is only ever a pair around an address or a target: one
// without its pair is an error (unchecked, "<bob@example.com" became an
// address starting with '<', and "bob@example.com>" one for the host
// "example.com>"). Inside a program's command '<' and '>' are the shell's.
func normalize(raw string) (string, error) {
	if quotedTail(raw) {
		return "", fmt.Errorf("bad target %q: not one target: text after the closing quote of a program or file (a comma missing before it?)", trimBlanks(raw))
	}
	if isSpecialTarget(raw) {
		t := unquote(raw)
		if strings.HasPrefix(t, "<") {
			return "", fmt.Errorf("bad target %q: '<' without '>'", trimBlanks(raw))
		}
		return t, nil
	}
	if local, domain, hasDomain, ok := parseAddress(raw); ok {
		if local == "" {
			// Mail to it would go to an empty local part, reported as
			// delivered: lost. The old rules refused it as well.
			return "", fmt.Errorf("bad address %q: empty address", trimBlanks(raw))
		}
		return canonical(local, domain, hasDomain), nil
	}
	open, closed := angles(raw)
	switch {
	case open > closed:
		return "", fmt.Errorf("bad address %q: '<' without '>'", trimBlanks(raw))
	case closed > open:
		return "", fmt.Errorf("bad address %q: '>' without '<'", trimBlanks(raw))
	}
	// Neither the old rules (ScanTargets tried them first) nor RFC 5322
	// read it. It is given as the old rules read it when CheckTarget
	// says what is wrong with that ("john smith": quote it), else it
	// is not one address (bob(x, y@z: a comma in a comment left open).
	t := unquote(raw)
	if open > 0 || strings.ContainsAny(t, " \t") && strings.ContainsAny(raw, `()"`) || CheckTarget(t) == "" {
		return "", fmt.Errorf("bad address %q: not one address (forms taken: user@domain, Name <user@domain>, user@domain (comment), \"quoted local\"@domain)", trimBlanks(raw))
	}
	return t, nil
}

// quotedTail reports whether the target raw (one piece of a list, as
// written) starts with a double quote (after blanks, and after a '<' and
// blanks) whose text is a program, file, Maildir, include or local user,
// and has more than blanks after the closing quote (the '>' of that '<'
// aside). The old rules joined that text to the target: a comma left
// out, "|/usr/bin/archive" bob@example.com ran the program with the
// argument bob@example.com, and "/tmp/file" bob wrote the file
// "/tmp/file bob". A program or file written without quotes
// (|/usr/bin/archive -x) is not concerned: its blanks are its own.
func quotedTail(raw string) bool {
	s := strings.TrimLeft(raw, blanks)
	angle := strings.HasPrefix(s, "<")
	if angle {
		s = strings.TrimLeft(s[1:], blanks)
	}
	if !strings.HasPrefix(s, `"`) {
		return false
	}
	var in strings.Builder
	i := 1
	for ; i < len(s) && s[i] != '"'; i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		in.WriteByte(s[i])
	}
	if i >= len(s) {
		return false // a quote left open, an error of its own
	}
	t := trimBlanks(in.String())
	if strings.HasPrefix(t, "<") {
		t = trimBlanks(t[1:])
	}
	if k, _ := Classify(t); k == Address || t == "" {
		return false
	}
	rest := trimBlanks(s[i+1:])
	if angle {
		rest = trimBlanks(strings.TrimSuffix(rest, ">"))
	}
	return rest != ""
}

// angles counts the angle brackets of s that open and close, outside
// quotes and comments.
func angles(s string) (open, closed int) {
	inq, comment := false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (inq || comment > 0):
			i++
		case inq:
			inq = c != '"'
		case comment > 0 && c == '(':
			comment++
		case comment > 0 && c == ')':
			comment--
		case comment > 0:
		case c == '"':
			inq = true
		case c == '(':
			comment++
		case c == '<':
			open++
		case c == '>':
			closed++
		}
	}
	return open, closed
}

// unquote removes double quotes (a backslash inside them takes the next
// byte as it is), blanks around the target, and angle brackets around it.
func unquote(raw string) string {
	var cur bytes.Buffer
	inq := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			inq = !inq
		case c == '\\' && inq && i+1 < len(raw):
			i++
			cur.WriteByte(raw[i])
		default:
			cur.WriteByte(c)
		}
	}
	t := trimBlanks(cur.String())
	if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") && len(t) >= 2 {
		t = trimBlanks(t[1 : len(t)-1])
	}
	return t
}

// blanks are what is trimmed around a name or a target: space and tab,
// as qmail and fastforward take blanks, and CR and LF (of a line end,
// and of a file written with CR LF). Other white space, Unicode's
// no-break and ideographic spaces among it, is bytes of the target, as
// it is to qmail: "bob@x.org\u00a0" is not bob@x.org.
const blanks = " \t\r\n"

// trimBlanks returns s without the blanks at its ends.
func trimBlanks(s string) string { return strings.Trim(s, blanks) }

// Kind classifies a target.
type Kind int

// Target kinds.
const (
	Address Kind = iota
	Program
	File
	Maildir
	Include
	Local // \user
)

// Classify returns a target's kind and its argument (without the marker).
func Classify(t string) (Kind, string) {
	switch {
	case strings.HasPrefix(t, "|"):
		return Program, trimBlanks(t[1:])
	case len(t) >= len(":include:") && address.EqualFoldASCII(t[:len(":include:")], ":include:"):
		return Include, trimBlanks(t[len(":include:"):])
	case strings.HasPrefix(t, "/") && strings.HasSuffix(t, "/"):
		return Maildir, t
	case strings.HasPrefix(t, "/"):
		return File, t
	case strings.HasPrefix(t, `\`):
		return Local, t[1:]
	}
	return Address, t
}

// CheckTarget returns a message describing what is wrong with a target, or
// "" if it is acceptable. A NUL, CR or LF is refused in a target of any
// kind: the envelope qmail-queue is given separates addresses with NUL (a
// NUL inside one would add a recipient, or make the queue fail for ever),
// and a line end has no place in an address, a path or a command.
func CheckTarget(t string) string {
	if strings.ContainsAny(t, "\x00\r\n") {
		return fmt.Sprintf("NUL, CR or LF in target %q", t)
	}
	k, arg := Classify(t)
	if k != Program && strings.ContainsAny(arg, "<>") {
		// Brackets are removed in pairs around a target (normalize): one
		// left in a target is one without its pair, or inside quotes.
		// Outside a program's command they are never part of a target.
		return fmt.Sprintf("bad target %q: '<' and '>' may only enclose a target, never be part of one", t)
	}
	switch k {
	case Program:
		if arg == "" {
			return "empty program target"
		}
	case Include:
		if !strings.HasPrefix(arg, "/") {
			return fmt.Sprintf("include file %q must be an absolute path", arg)
		}
	case Local:
		if arg == "" || strings.ContainsAny(arg, " \t@") {
			return fmt.Sprintf("bad local user %q", t)
		}
	case Address:
		if strings.HasPrefix(arg, `"`) {
			// A quoted local part: one address, in the stored form.
			if !quotedOK(arg) {
				return fmt.Sprintf("bad address %q", t)
			}
			return ""
		}
		if strings.ContainsAny(arg, " \t\r") {
			return fmt.Sprintf("bad address %q (quote programs and files that contain spaces)", t)
		}
		if strings.HasSuffix(arg, "@") || strings.HasPrefix(arg, "@") {
			return fmt.Sprintf("bad address %q", t)
		}
	}
	return ""
}
