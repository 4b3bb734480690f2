// Package dotqmail reads qmail's per-address delivery instructions: which
// .qmail file applies to an address extension (the search order with
// safe extensions and -default files) and how each line of it is
// classified (spec/delivery.md §4, dot-qmail(5)).
//
// The package only classifies; it never delivers. Bytes are kept as they
// are: a line may hold any byte except '\n', and a NUL ends the part of the
// line that is used as a path, command or address, as it does in qmail,
// while a dry run (-n) still prints the whole line.
package dotqmail

import (
	"bytes"
	"strings"
)

// Kind is what a .qmail line asks for.
type Kind int

const (
	// Blank is an empty line (after trailing blanks are removed) or one
	// that starts with a NUL. Skipped, but an error as the first line.
	Blank Kind = iota
	// Comment is a line starting with '#'.
	Comment
	// Maildir is a line starting with '.' or '/' whose last byte is '/'.
	Maildir
	// Mbox is any other line starting with '.' or '/'.
	Mbox
	// Program is a line starting with '|': the rest goes to /bin/sh -c.
	Program
	// Plus is a line starting with '+'. "+list" makes the rest of the
	// file forward-only; any other '+' line does nothing.
	Plus
	// Forward is a line starting with '&' (which is dropped) or with any
	// byte not named above: the line is an address to forward to.
	Forward
)

var kindNames = [...]string{"blank", "comment", "maildir", "mbox", "program", "plus", "forward"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Line is one classified instruction.
type Line struct {
	Kind Kind
	// Offset is where the line starts in the instructions; 0 means it is
	// the first line.
	Offset int
	// Text is the line without its '\n' and without trailing spaces and
	// tabs.
	Text []byte
}

// Arg is the part of the line that names the target, exactly as a dry run
// prints it: the whole line for files, the line after '|' for programs, the
// line after a leading '&' for forwards, after '+' for Plus lines.
func (l Line) Arg() []byte {
	switch l.Kind {
	case Program, Plus:
		return l.Text[1:]
	case Forward:
		if len(l.Text) > 0 && l.Text[0] == '&' {
			return l.Text[1:]
		}
	}
	return l.Text
}

// Target is Arg up to its first NUL: the path, command or address that is
// used for a real delivery.
func (l Line) Target() string {
	a := l.Arg()
	if i := bytes.IndexByte(a, 0); i >= 0 {
		a = a[:i]
	}
	return string(a)
}

// IsList reports whether the line is a "+list" line.
func (l Line) IsList() bool {
	return l.Kind == Plus && l.Target() == "list"
}

// Classify returns the kind of one line that has already lost its '\n'
// and its trailing blanks.
func Classify(text []byte) Kind {
	if len(text) == 0 || text[0] == 0 {
		return Blank
	}
	switch text[0] {
	case '#':
		return Comment
	case '.', '/':
		if text[len(text)-1] == '/' {
			return Maildir
		}
		return Mbox
	case '|':
		return Program
	case '+':
		return Plus
	}
	return Forward
}

// Parse splits instructions at '\n', removes trailing spaces and tabs from
// each line and classifies it. A last line without '\n' counts as a line.
// Parse never fails: every byte sequence is a list of lines.
func Parse(cmds []byte) []Line {
	var lines []Line
	start := 0
	for start < len(cmds) {
		end := bytes.IndexByte(cmds[start:], '\n')
		next := 0
		if end < 0 {
			end = len(cmds)
			next = len(cmds)
		} else {
			end += start
			next = end + 1
		}
		k := end
		for k > start && (cmds[k-1] == ' ' || cmds[k-1] == '\t') {
			k--
		}
		text := cmds[start:k]
		lines = append(lines, Line{Kind: Classify(text), Offset: start, Text: text})
		start = next
	}
	return lines
}

// SafeExt is the extension as it appears in a .qmail file name: lower
// case, with every '.' turned into ':' (so no name can reach "..").
func SafeExt(ext string) string {
	b := []byte(ext)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case c == '.':
			b[i] = ':'
		}
	}
	return string(b)
}

// Candidate is one file name to try, in order.
type Candidate struct {
	Name string
	// Default is the value of $DEFAULT when this file is used: the part
	// of the extension the "default" stands for. HasDefault is false when
	// DEFAULT is not set.
	Default    string
	HasDefault bool
}

// Candidates lists the .qmail files tried for an address, first match
// wins: .qmail<dash><safeext>, then .qmail<dash><prefix>default for every
// prefix of safeext that is empty or ends in '-', longest first. Example
// for dash "-" and ext "foo-bar": .qmail-foo-bar, .qmail-foo-bar-default
// is not tried (no trailing '-'), .qmail-foo-default, .qmail-default.
func Candidates(dash, ext string) []Candidate {
	safe := SafeExt(ext)
	var out []Candidate
	exact := Candidate{Name: ".qmail" + dash + safe}
	// A name that happens to end in "default" sets DEFAULT too.
	if i := len(safe) - len("default"); i >= 0 && strings.HasSuffix(safe, "default") && i <= len(ext) {
		exact.Default, exact.HasDefault = ext[i:], true
	}
	out = append(out, exact)
	for i := len(safe); i >= 0; i-- {
		if i > 0 && safe[i-1] != '-' {
			continue
		}
		c := Candidate{Name: ".qmail" + dash + safe[:i] + "default"}
		if i <= len(ext) {
			c.Default, c.HasDefault = ext[i:], true
		}
		out = append(out, c)
	}
	return out
}

// OwnerName is the file whose existence makes bounces of mail forwarded
// from this address go to local-owner (suffix "-owner") or to
// local-owner-<bounced address> (suffix "-owner-default").
func OwnerName(dash, ext, suffix string) string {
	return ".qmail" + dash + SafeExt(ext) + suffix
}
