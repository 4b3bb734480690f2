package usertools

import (
	"fmt"
	"io"
	"os"

	"github.com/hqmail/hqmail/pkg/forward"
	"github.com/hqmail/hqmail/pkg/qerr"
)

const (
	bouncesayingUsage = "bouncesaying error [program [arg ...]]"
	exceptUsage       = "except program [arg ...]"
	condredirectUsage = "condredirect newaddress program [arg ...]"
)

// exceptCode is except's exit code for a program that exited with code,
// as qmail's except reads it: success becomes a permanent failure (the
// message bounces), 111 stays a temporary failure, and every other code
// (100, false's 1, grep's 1 for "no match") becomes success, so
// qmail-local goes on with the next line.
func exceptCode(code int) int {
	switch code {
	case 0:
		return exitPerm
	case exitTemp:
		return exitTemp
	}
	return exitNext
}

// bounceAfter is what bouncesaying does when its program exited with
// code: 0 means the test matched, so bounce (say the error, exit 100);
// 111 is a temporary failure passed on; anything else means no bounce,
// and qmail-local goes on with the next line.
func bounceAfter(code int) (exit int, say bool) {
	switch code {
	case 0:
		return exitPerm, true
	case exitTemp:
		return exitTemp, false
	}
	return exitNext, false
}

// redirectAfter is what condredirect does when its program exited with
// code: 0 means forward (and then exit 99); 111 is passed on; anything
// else means no forward, go on with the next line.
func redirectAfter(code int) (exit int, forward bool) {
	switch code {
	case 0:
		return exitSkip, true
	case exitTemp:
		return exitTemp, false
	}
	return exitNext, false
}

// ExceptMain is except(1): run program, and exit 100 where it exited 0,
// 111 where it exited 111 (or could not be started, or was killed), and 0
// for every other exit code.
func ExceptMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, exceptUsage)
	}
	code, ok := runTest("except", args, stdin, stdout, stderr)
	if !ok {
		return exitTemp
	}
	return exceptCode(code)
}

// BouncesayingMain is bouncesaying(1). With only the error text, it prints
// it and exits 100: qmail-local bounces the message with that text. With a
// program, it runs it on the message and bounces only if it exits 0
// (bounceAfter).
func BouncesayingMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, bouncesayingUsage)
	}
	text := args[0]
	exit, say := exitPerm, true
	if len(args) > 1 {
		code, ok := runTest("bouncesaying", args[1:], stdin, stdout, stderr)
		if !ok {
			return exitTemp
		}
		exit, say = bounceAfter(code)
	}
	if say {
		fmt.Fprintln(stdout, text)
	}
	return exit
}

// CondredirectMain is condredirect(1): run program on the message, and if
// it exits 0 forward the message to newaddress (as forward(1) does) and
// exit 99 so that qmail-local skips the lines after this one. A program
// exit of 111 gives 111, any other 0. root is the qmail tree whose
// qmail-queue takes the forward.
func CondredirectMain(root string, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	const tool = "condredirect"
	if len(args) < 2 || args[0] == "" {
		return usageError(stderr, condredirectUsage)
	}
	env, missing := forwardEnv()
	if missing != "" {
		return missingVar(stderr, tool, missing)
	}
	// The program may read the message to its end: the forward rewinds
	// it. A message on a pipe (a run by hand) is copied to a file first.
	msg, err := forward.Seekable(stdin)
	if err != nil {
		return fail(stderr, tool, exitTemp, "%s", errText(err))
	}
	code, ok := runTest(tool, args[1:], msg, stdout, stderr)
	if !ok {
		return exitTemp
	}
	exit, fwd := redirectAfter(code)
	if !fwd {
		return exit
	}
	if err := forwardMessage(root, tool, msg, env, args[:1], stderr); err != nil {
		return fail(stderr, tool, qerr.ExitCode(err), "%s", errText(err))
	}
	return exit
}
