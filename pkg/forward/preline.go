package forward

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// A Line is one of the lines qmail-local hands its programs in the
// environment and writes before a message in an mbox.
type Line struct {
	Opt byte   // the preline(1) option that leaves it out (its upper case puts it back)
	Var string // the environment variable that holds it
	of  func(*Env) string
}

// Lines are the lines preline(1) puts before a message, in the order
// qmail-local writes them in an mbox: the From_ line ($UFLINE), the
// Return-Path ($RPLINE) and the Delivered-To line ($DTLINE). An mbox
// target and a program target of a forwarding list get the same.
var Lines = []Line{
	{Opt: 'f', Var: "UFLINE", of: func(e *Env) string { return e.UFLine }},
	{Opt: 'r', Var: "RPLINE", of: func(e *Env) string { return e.RPLine }},
	{Opt: 'd', Var: "DTLINE", of: func(e *Env) string { return e.DTLine }},
}

// Head joins, in the order of Lines, the values value gives for the
// lines that want takes (all of them for a nil want). missing is the
// Var of the first of them that value reports unset, "" if none; an
// unset line adds nothing.
func Head(value func(Line) (string, bool), want func(Line) bool) (head []byte, missing string) {
	for _, l := range Lines {
		if want != nil && !want(l) {
			continue
		}
		v, ok := value(l)
		if !ok && missing == "" {
			missing = l.Var
		}
		head = append(head, v...)
	}
	return head, missing
}

// FromOS is a value for Head: the line's variable in the environment.
func FromOS(l Line) (string, bool) { return os.LookupEnv(l.Var) }

// Head is what an mbox or a program target gets before the message: all
// of Lines, as env holds them. A variable that was not set (a program run
// by hand) adds nothing; with none set the message goes as it is.
func (e *Env) Head() []byte {
	head, _ := Head(func(l Line) (string, bool) { v := l.of(e); return v, v != "" }, nil)
	return head
}

// rawTools are the programs that take the message as qmail-local hands
// it over: qmail's preline puts the lines before it itself;
// condredirect, forward, bouncesaying and except pass it on or test it
// (qmail 1.03's condredirect rewinds its input; forward and condredirect
// would forward a From_ line and a second Delivered-To inside the
// header); sendmail and qmail-inject forward it, and would forward the
// lines as header fields (qmail's dot-forward passes the message as it
// is).
var rawTools = map[string]bool{
	"preline": true, "condredirect": true, "forward": true, "bouncesaying": true, "except": true,
	"sendmail": true, "qmail-inject": true,
}

// wantsRaw reports whether a program target's command runs one of
// rawTools, and so gets the message as it is: a qmail user's
// "|preline procmail" does not give procmail the lines twice.
//
// The command is split as /bin/sh reads it into simple commands, at its
// list operators and grouping (; & && || | ( ) and newlines), with
// quotes and backslashes taken off, comments and redirections left out
// (a here-document ends the reading). A simple command runs a tool if,
// after any { and ! words, NAME=value words, and the prefix commands
// (prefix) with their options, its name is one of rawTools, bare or any
// path that ends in /NAME (the path may hold expansions, as
// $HOME/bin/preline; NAME not). The command runs one if any of its
// simple commands does.
//
// It is conservative: what it does not know for sure (an option of a
// prefix command not listed there, a word made by an unquoted expansion
// where an option, its argument or env's NAME=value must be, a name
// made by an expansion) makes the simple command not one that runs a
// tool, and the program gets the lines, as any program not of qmail's.
func wantsRaw(prog string) bool {
	for _, c := range simpleCommands(prog) {
		if runsRawTool(c) {
			return true
		}
	}
	return false
}

// runsRawTool reports whether the simple command ws runs one of
// rawTools (wantsRaw).
func runsRawTool(ws []word) bool {
	i := 0
	for i < len(ws) && (ws[i].src == "{" || ws[i].src == "!") {
		i++ // reserved words: only unquoted
	}
	for i < len(ws) && isAssignment(ws[i].src) {
		i++
	}
	for i >= 0 && i < len(ws) {
		t := ws[i].text
		name := t[strings.LastIndexByte(t, '/')+1:]
		if strings.ContainsAny(name, expansions) {
			return false
		}
		p, ok := prefix[name]
		if !ok || p.builtin && name != t {
			return rawTools[name]
		}
		i = p.skip(ws, i+1)
	}
	return false
}

// A prefixCmd is a command that runs the command its arguments name:
// skip passes over its options from ws[i] and returns the index of the
// name, -1 for an option it does not know.
type prefixCmd struct {
	builtin bool // only as the bare name
	skip    func(ws []word, i int) int
}

// prefix are the prefix commands wantsRaw passes over, with their
// options: bash's exec (-c, -l, -a NAME; dash's takes none), command
// (-p; not -v or -V, which run nothing), coreutils' env (not -S, which
// splits a string into the command, nor -0, which runs nothing),
// nice and nohup, util-linux's setsid. Each may end its options with
// "--".
var prefix = map[string]prefixCmd{
	"exec": {builtin: true, skip: func(ws []word, i int) int {
		return options(ws, i, "cl", "a", nil)
	}},
	"command": {builtin: true, skip: func(ws []word, i int) int {
		return options(ws, i, "p", "", nil)
	}},
	"env": {skip: func(ws []word, i int) int {
		i = options(ws, i, "iv", "uCa", map[string]int{
			"ignore-environment": noArg, "unset": needArg, "chdir": needArg,
			"argv0": needArg, "debug": noArg, "list-signal-handling": noArg,
			"block-signal": optArg, "default-signal": optArg, "ignore-signal": optArg,
		})
		if i >= 0 && i < len(ws) && ws[i].text == "-" {
			i++ // as -i
		}
		for ; i >= 0 && i < len(ws) && strings.IndexByte(ws[i].text, '=') >= 0; i++ {
			if strings.IndexByte(ws[i].text, unquoted) >= 0 {
				return -1 // it may be split into other words
			}
		}
		return i
	}},
	"nice": {skip: func(ws []word, i int) int {
		for ; i < len(ws); i++ {
			t := ws[i].text
			switch {
			case t == "--":
				return i + 1
			case len(t) > 1 && t[0] == '-' && isNumber(t[1:]):
				// -N, --N, -+N: coreutils' old form.
			case t == "-n" || t == "--adjustment":
				if i++; i == len(ws) || !isNumber(ws[i].text) {
					return -1
				}
			case strings.HasPrefix(t, "--adjustment="):
				if !isNumber(t[len("--adjustment="):]) {
					return -1
				}
			case strings.HasPrefix(t, "-n"):
				if !isNumber(t[2:]) {
					return -1
				}
			case len(t) > 1 && t[0] == '-':
				return -1
			default:
				return i
			}
		}
		return i
	}},
	"nohup": {skip: func(ws []word, i int) int {
		return options(ws, i, "", "", nil)
	}},
	"setsid": {skip: func(ws []word, i int) int {
		return options(ws, i, "cfw", "", map[string]int{"ctty": noArg, "fork": noArg, "wait": noArg})
	}},
}

// The arguments of long options, for options.
const (
	noArg   = iota // none
	needArg        // after = or in the next word
	optArg         // only after =
)

// options passes over a command's options from ws[i], as getopt reads
// them: flags are the letters that take no argument, args those that
// take one (the rest of their word, else the next word), long the long
// options and their arguments. The options end after "--", or at the
// first word that does not start with "-" or is "-". It returns the
// index of the word after them, or -1 for an option not known, a word
// that starts with "-" and holds an unquoted expansion (it may be split
// or vanish), or an argument word that holds one.
func options(ws []word, i int, flags, args string, long map[string]int) int {
	argWord := func(i int) bool {
		return i < len(ws) && strings.IndexByte(ws[i].text, unquoted) < 0
	}
	for ; i < len(ws); i++ {
		t := ws[i].text
		switch {
		case t == "--":
			return i + 1
		case len(t) < 2 || t[0] != '-':
			return i
		case strings.IndexByte(t, unquoted) >= 0:
			return -1
		case t[1] == '-':
			name, _, hasArg := strings.Cut(t[2:], "=")
			kind, ok := long[name]
			switch {
			case !ok, kind == noArg && hasArg:
				return -1
			case kind == needArg && !hasArg:
				if i++; !argWord(i) {
					return -1
				}
			}
			continue
		}
		for j := 1; j < len(t); j++ {
			switch {
			case strings.IndexByte(flags, t[j]) >= 0:
			case strings.IndexByte(args, t[j]) >= 0:
				if j+1 == len(t) {
					if i++; !argWord(i) {
						return -1
					}
				}
				j = len(t)
			default:
				return -1
			}
		}
	}
	return i
}

// isNumber reports whether s is a decimal number, signed or not.
func isNumber(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isAssignment reports whether a shell word, as written, is NAME=value.
func isAssignment(w string) bool {
	i := strings.IndexByte(w, '=')
	if i <= 0 {
		return false
	}
	for j, c := range w[:i] {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// A word is a word of a shell command: src as written, text with
// quotes and backslashes taken off and each expansion ($name, ${...},
// $(...), `...`) replaced by the byte unquoted or quoted. (A target
// holds no control bytes: parseFile and the aliases refuse them.)
type word struct{ src, text string }

// The bytes that stand for an expansion in a word's text.
const (
	unquoted   = '\x00' // any number of words, any text
	quoted     = '\x01' // one word, any text
	expansions = "\x00\x01"
)

// simpleCommands splits a /bin/sh command line into its simple
// commands' words: at ; & | ( ) and newlines (&& and || too), with
// comments and redirections (and an IO number before them) left out.
// A here-document's text is not read: the command line ends at the
// newline after <<. It is only as good as wantsRaw needs: words are not
// expanded, and reserved words are words as any other.
func simpleCommands(s string) [][]word {
	var cmds [][]word
	var cur []word
	var src, text strings.Builder
	in := false       // a word is being read (it may be "" as in '')
	redirect := false // the next word is a redirection's target
	heredoc := false  // the command line ends at the next newline
	endWord := func() {
		if in {
			if redirect {
				redirect = false
			} else {
				cur = append(cur, word{src.String(), text.String()})
			}
		}
		src.Reset()
		text.Reset()
		in = false
	}
	endCmd := func() {
		endWord()
		if len(cur) > 0 {
			cmds = append(cmds, cur)
		}
		cur, redirect = nil, false
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
			i++
		case c == '\n':
			endCmd()
			if heredoc {
				return cmds
			}
			i++
		case strings.IndexByte(";&|()", c) >= 0:
			endCmd()
			i++
		case c == '<' || c == '>':
			if in && strings.Trim(src.String(), "0123456789") == "" {
				in = false // an IO number: 2>file
			}
			endWord()
			i++
			switch {
			case c == '<' && i < len(s) && s[i] == '<':
				heredoc = true
				i++
				if i < len(s) && s[i] == '-' {
					i++
				}
			case i < len(s) && strings.IndexByte("<>&|", s[i]) >= 0:
				i++
			}
			redirect = true
		case c == '#' && !in:
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(s)
			}
		case c == '\\':
			if i+1 < len(s) && s[i+1] == '\n' {
				i += 2 // a line continued
				continue
			}
			in = true
			j := min(i+2, len(s))
			src.WriteString(s[i:j])
			text.WriteString(s[i+1 : j])
			i = j
		case c == '\'':
			in = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			text.WriteString(s[i+1 : i+1+j])
			j = min(i+j+2, len(s))
			src.WriteString(s[i:j])
			i = j
		case c == '"':
			in = true
			j := i + 1
			for j < len(s) && s[j] != '"' {
				switch d := s[j]; {
				case d == '\\' && j+1 < len(s) && strings.IndexByte("$`\"\\\n", s[j+1]) >= 0:
					if s[j+1] != '\n' {
						text.WriteByte(s[j+1])
					}
					j += 2
				case d == '$' || d == '`':
					if k := expansionEnd(s, j); k > j+1 {
						text.WriteByte(quoted)
						j = k
						continue
					}
					text.WriteByte(d)
					j++
				default:
					text.WriteByte(d)
					j++
				}
			}
			j = min(j+1, len(s))
			src.WriteString(s[i:j])
			i = j
		case c == '$' || c == '`':
			in = true
			j := expansionEnd(s, i)
			if j > i+1 {
				text.WriteByte(unquoted)
			} else {
				text.WriteByte(c)
			}
			src.WriteString(s[i:j])
			i = j
		default:
			in = true
			src.WriteByte(c)
			text.WriteByte(c)
			i++
		}
	}
	endCmd()
	return cmds
}

// expansionEnd returns the index just after the expansion that starts
// at s[i] ($ or `), or i+1 if a $ starts none.
func expansionEnd(s string, i int) int {
	if s[i] == '`' {
		return skipTo(s, i+1, '`')
	}
	if i+1 == len(s) {
		return i + 1
	}
	switch c := s[i+1]; {
	case c == '(' || c == '{':
		return skipTo(s, i+2, map[byte]byte{'(': ')', '{': '}'}[c])
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		j := i + 2
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		return j
	case c >= '0' && c <= '9' || strings.IndexByte("@*#?-$!", c) >= 0:
		return i + 2
	}
	return i + 1
}

// skipTo returns the index just after the close that ends what starts
// at s[i]: a ` for a backquoted command, the ) or } that matches one
// opened before i, passing over quotes, backslashes and nested pairs
// (well enough for wantsRaw); len(s) if there is none.
func skipTo(s string, i int, close byte) int {
	depth := 1
	open := map[byte]byte{')': '(', '}': '{'}[close]
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == close:
			if depth--; depth == 0 || close == '`' {
				return i + 1
			}
		case c == open && open != 0:
			depth++
		case c == '\'' && close != '`':
			if j := strings.IndexByte(s[i+1:], '\''); j >= 0 {
				i += j + 1
			} else {
				return len(s)
			}
		case c == '"' && close != '`':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case c == '`' && close != '`':
			i = skipTo(s, i+1, '`') - 1
		}
	}
	return len(s)
}

// ErrPipe is Feed's failure to make the pipe for the program's input.
var ErrPipe = errors.New("unable to make a pipe")

// ReadError is a failure to read the message that Feed was handing a
// program. The program (and, in a process group of its own, every
// process of the group) was killed before it could see the end of its
// input, so that it takes no cut message for a whole one.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "unable to read the message: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// NoTerminal reports whether the process has no controlling terminal,
// as under qmail-local (qmail-send runs detached from any terminal):
// opening /dev/tty fails with ENXIO. With one, or when the open fails
// otherwise, which says nothing for sure, it is false.
func NoTerminal() bool {
	f, err := os.Open("/dev/tty")
	if err == nil {
		f.Close()
	}
	return noTerminal(err)
}

// noTerminal is NoTerminal's answer for the error of opening /dev/tty.
func noTerminal(openErr error) bool { return errors.Is(openErr, syscall.ENXIO) }

// Feed runs cmd, set up but for its standard input, with a pipe on its
// standard input that carries head and then msg, streamed: the message
// is never held in memory. With group, cmd runs in a process group of
// its own. It returns an error wrapping ErrPipe, or cmd.Start's
// (cmd.Process is then nil: nothing ran); else a *ReadError if msg could
// not be read; else cmd.Wait's error. When it returns, nothing reads msg
// any more.
//
// As qmail's preline does, Feed writes until all is written, and only
// then closes the pipe and waits for the program: a process the program
// leaves behind to read its input (the program itself exits at once)
// gets all of it. The program may stop reading at any point, or close
// its input: once no process holds the pipe any more, writes fail
// (EPIPE; Go reports it instead of dying of SIGPIPE on a descriptor
// other than 1 and 2), the copy stops, and the program's own exit counts.
// A process that holds the pipe and never reads keeps Feed waiting, as
// it keeps qmail's preline.
//
// If msg cannot be read, the program is killed before the pipe is
// closed, so that it does not see the end of a cut message; with group,
// its whole process group is, so that no process it started does
// either. Without group (preline run from a terminal, where a program
// in a group of its own would be stopped reading the terminal and left
// running by ^C), only the program is.
func Feed(cmd *exec.Cmd, head []byte, msg io.Reader, group bool) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPipe, err)
	}
	cmd.Stdin = r
	if group {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	r.Close()
	// The program is not waited for before the copy ends: its pid, and
	// so its process group's id, stays its own until then.
	readErr := copyTo(w, head, msg)
	if readErr != nil {
		if group {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		} else {
			cmd.Process.Kill()
		}
	}
	w.Close() // end of input
	werr := cmd.Wait()
	if readErr != nil {
		return &ReadError{readErr}
	}
	return werr
}

// copyTo writes head and then all of msg to w. It returns an error only
// when msg cannot be read: a failed write means the reader is gone, which
// is the program's business, and simply ends the copy.
func copyTo(w io.Writer, head []byte, msg io.Reader) error {
	if len(head) > 0 {
		if _, err := w.Write(head); err != nil {
			return nil
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := msg.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
