package forward

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// runsPreline reports whether a program target's command starts with
// preline(1) (bare, or any path that ends in /preline, possibly after
// "exec"), which puts the lines before the message itself: it gets the
// message as it is, so that a qmail user's "|preline procmail" does not
// give procmail the lines twice.
func runsPreline(prog string) bool {
	w := strings.Fields(prog)
	if len(w) > 0 && w[0] == "exec" {
		w = w[1:]
	}
	return len(w) > 0 && (w[0] == "preline" || strings.HasSuffix(w[0], "/preline"))
}

// ErrPipe is Feed's failure to make the pipe for the program's input.
var ErrPipe = errors.New("unable to make a pipe")

// ReadError is a failure to read the message that Feed was handing a
// program. The program was killed before it could see the end of its
// input, so that it never takes a cut message for a whole one.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "unable to read the message: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Feed runs cmd, set up but for its standard input, with a pipe on its
// standard input that carries head and then msg, streamed: the message
// is never held in memory. It returns an error wrapping ErrPipe, or
// cmd.Start's (cmd.Process is then nil: nothing ran); else a *ReadError
// if msg could not be read; else cmd.Wait's error. When it returns,
// nothing reads msg any more.
//
// The program may stop reading at any point, or close its input and go
// on: writes into the pipe then fail (EPIPE; Go reports it instead of
// dying of SIGPIPE on a descriptor other than 1 and 2), the copy stops,
// and the program's own exit counts. Once the program has exited, the
// pipe is closed, which ends a write blocked because a process the
// program left behind holds the pipe open without reading.
func Feed(cmd *exec.Cmd, head []byte, msg io.Reader) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPipe, err)
	}
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	r.Close()
	var closeOnce sync.Once
	closeW := func() { closeOnce.Do(func() { w.Close() }) }
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if readErr = copyTo(w, head, msg); readErr != nil {
			cmd.Process.Kill()
		}
		closeW() // end of input for the program
	}()
	werr := cmd.Wait()
	closeW()
	// The copy ends at once now (its writes fail): wait for it, so that
	// nothing reads msg any more once Feed has returned (the caller
	// rewinds it for the next target).
	<-done
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
