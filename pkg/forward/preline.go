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

// rawTools are qmail's own programs that take the message as
// qmail-local hands it over: preline puts the lines before it itself, and
// condredirect, forward, bouncesaying and except pass it on or test it
// (qmail 1.03's condredirect rewinds its input; forward and condredirect
// would forward a From_ line and a second Delivered-To inside the header).
var rawTools = map[string]bool{"preline": true, "condredirect": true, "forward": true, "bouncesaying": true, "except": true}

// wantsRaw reports whether a program target's command runs one of
// rawTools: its first word, after any "exec", env (or a path ending in
// /env) and VAR=value words
// and with shell quotes taken off, is the bare name or any path that
// ends in /NAME. Such a command gets the message as it is: a qmail user's
// "|preline procmail" does not give procmail the lines twice.
func wantsRaw(prog string) bool {
	for _, w := range shellWords(prog) {
		name := w[strings.LastIndexByte(w, '/')+1:]
		if w == "exec" || name == "env" || isAssignment(w) {
			continue
		}
		return rawTools[name]
	}
	return false
}

// isAssignment reports whether a shell word is NAME=value.
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

// shellWords splits the first simple command of a /bin/sh command line
// into words, taking off single and double quotes and backslashes; it
// stops at the first operator (; & | < > ( ) or a newline). It is only as
// good as wantsRaw needs: no expansions are made.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in := false // a word is being read (it may be "" as in '')
	end := func() {
		if in {
			words = append(words, w.String())
		}
		w.Reset()
		in = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			end()
		case strings.IndexByte(";&|<>()\n", c) >= 0:
			end()
			return words
		case c == '\\':
			in = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					w.WriteByte(s[i])
				}
			}
		case c == '\'':
			in = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			in = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
		default:
			in = true
			w.WriteByte(c)
		}
	}
	end()
	return words
}

// ErrPipe is Feed's failure to make the pipe for the program's input.
var ErrPipe = errors.New("unable to make a pipe")

// ReadError is a failure to read the message that Feed was handing a
// program. The program, and every process of its process group, was
// killed before it could see the end of its input, so that none takes a
// cut message for a whole one.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "unable to read the message: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Feed runs cmd, set up but for its standard input, in a process group
// of its own, with a pipe on its standard input that carries head and
// then msg, streamed: the message is never held in memory. It returns an
// error wrapping ErrPipe, or cmd.Start's (cmd.Process is then nil:
// nothing ran); else a *ReadError if msg could not be read; else
// cmd.Wait's error. When it returns, nothing reads msg any more.
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
// If msg cannot be read, the program's whole process group is killed
// before the pipe is closed, so that neither the program nor a process
// it started sees the end of a cut message.
func Feed(cmd *exec.Cmd, head []byte, msg io.Reader) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPipe, err)
	}
	cmd.Stdin = r
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
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
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
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
