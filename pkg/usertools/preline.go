package usertools

import (
	"errors"
	"io"

	"github.com/hqmail/hqmail/pkg/forward"
)

const prelineUsage = "preline [-dfrDFR] program [arg ...]"

// PrelineMain is preline(1): run program with, on its standard input,
// $UFLINE (the From_ line), $RPLINE (Return-Path) and $DTLINE
// (Delivered-To) followed by the message read from stdin, byte for byte.
// As in qmail 1.03, -f leaves out the From_ line, -r the Return-Path, -d
// the Delivered-To, and -F, -R, -D put each back; a later option wins.
// The lines and their order are forward.Lines, the same a program target
// of a .forward or an alias gets.
//
// It exits with the program's exit code; 111 when the program could not
// be started, was killed by a signal, or the message could not be read;
// 100 for a usage error or a variable that is needed and not set.
func PrelineMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const tool = "preline"
	skip := map[byte]bool{}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a[1] == '-' {
			// "--", and as qmail's getopt has it any argument
			// starting with "--", ends the options and is skipped.
			i++
			break
		}
		for j := 1; j < len(a); j++ {
			switch c := a[j]; c {
			case 'd', 'f', 'r':
				skip[c] = true
			case 'D', 'F', 'R':
				skip[c+'a'-'A'] = false
			default:
				return usageError(stderr, prelineUsage)
			}
		}
	}
	argv := args[i:]
	if len(argv) == 0 {
		return usageError(stderr, prelineUsage)
	}
	head, missing := forward.Head(forward.FromOS, func(l forward.Line) bool { return !skip[l.Opt] })
	if missing != "" {
		return missingVar(stderr, tool, missing)
	}
	return feed(tool, argv, head, stdin, stdout, stderr)
}

// ownGroup tells feed whether to run the program in a process group of
// its own: only with no controlling terminal (forward.NoTerminal), as
// under qmail-local. From a terminal the program stays in preline's
// group, the terminal's foreground one, as with qmail's preline: it may
// read the terminal, and ^C reaches it. A variable for the tests.
var ownGroup = forward.NoTerminal

// feed runs argv with head and then msg on its standard input
// (forward.Feed: streamed through a pipe; as qmail's preline, it writes
// until all is written or no process holds the pipe any more, so a
// process the program leaves behind to read its input gets all of it)
// and returns the exit code for the caller.
//
// If the message cannot be read, the program is killed before the pipe
// closes, with the processes it started if it runs in a process group of
// its own (ownGroup), so that none takes a cut message for a whole one,
// and feed returns 111.
func feed(tool string, argv []string, head []byte, msg io.Reader, stdout, stderr io.Writer) int {
	cmd := command(argv, nil, stdout, stderr)
	err := forward.Feed(cmd, head, msg, ownGroup())
	var re *forward.ReadError
	switch {
	case errors.Is(err, forward.ErrPipe):
		return fail(stderr, tool, exitTemp, "unable to make a pipe: %s", errText(err))
	case cmd.Process == nil && err != nil:
		return fail(stderr, tool, exitTemp, "%s", startError(argv[0], err))
	case errors.As(err, &re):
		return fail(stderr, tool, exitTemp, "unable to read the message: %s", errText(re.Err))
	}
	code, _ := status(stderr, tool, argv[0], err)
	return code
}
