package usertools

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// Exit codes a .qmail program gives qmail-local (qmail-command(8)).
const (
	exitNext = 0             // done: qmail-local goes on with the next line
	exitSkip = 99            // done: qmail-local skips the lines that follow
	exitPerm = qerr.ExitPerm // permanent failure: the message bounces
	exitTemp = qerr.ExitTemp // temporary failure: the delivery is retried
)

// fail prints "tool: fatal: text" on w and returns code.
func fail(w io.Writer, tool string, code int, format string, a ...any) int {
	fmt.Fprintf(w, "%s: fatal: %s\n", tool, fmt.Sprintf(format, a...))
	return code
}

// usageError prints the one-line usage on w and returns 100, qmail's code
// for a usage error (the same call will never work).
func usageError(w io.Writer, usage string) int {
	fmt.Fprintf(w, "usage: %s\n", usage)
	return exitPerm
}

// Help answers -h or --help as the first argument: it writes text (the
// usage) on w and returns exitPerm and true; for any other call it writes
// nothing and returns false. The caller exits with the code.
//
// Exit 100, not 0, because these programs run from .qmail lines, where
// exit 0 tells qmail-local the line did its work and to go on: a line such
// as "|forward -h" would then pass the message on (or, as the last line,
// drop it with a success) without forwarding it anywhere. With 100 the
// message bounces and the usage, in the delivery report, is the reason, as
// for dot-forward and fastforward.
func Help(args []string, text string, w io.Writer) (code int, asked bool) {
	if len(args) == 0 || (args[0] != "-h" && args[0] != "--help") {
		return 0, false
	}
	io.WriteString(w, text)
	return exitPerm, true
}

// need returns the values of qmail-local's environment variables names,
// or the name of the first one that is not set. An empty value counts as
// set ($NEWSENDER is empty for a bounce).
func need(names ...string) (vals []string, missing string) {
	for _, n := range names {
		v, ok := os.LookupEnv(n)
		if !ok {
			return nil, n
		}
		vals = append(vals, v)
	}
	return vals, ""
}

// missingVar reports an unset qmail-local variable.
func missingVar(w io.Writer, tool, name string) int {
	return fail(w, tool, exitPerm, "$%s is not set; %s runs from a .qmail file, under qmail-local", name, tool)
}

// command is argv[0] (looked up in $PATH unless it holds a slash) with
// argv[1:], its descriptors 0, 1 and 2 as given. A descriptor that is an
// *os.File is handed over as it is (the program shares its offset).
func command(argv []string, stdin io.Reader, stdout, stderr io.Writer) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	if _, set := os.LookupEnv("PATH"); !set && !strings.Contains(argv[0], "/") {
		// No $PATH at all (env -i): look in /bin and /usr/bin, as qmail's
		// tools do; the program's environment is left as it is.
		for _, dir := range []string{"/bin", "/usr/bin"} {
			if p := filepath.Join(dir, argv[0]); unix.Access(p, unix.X_OK) == nil {
				cmd.Path, cmd.Err = p, nil
				break
			}
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd
}

// startError is the text for a program that could not be started.
func startError(prog string, err error) string {
	why := errText(err)
	if errors.Is(err, exec.ErrNotFound) {
		why = "not found in $PATH"
	}
	return fmt.Sprintf("unable to run %s: %s", prog, why)
}

// status turns what cmd.Wait returned into the program's exit code. A
// program killed by a signal (or whose end cannot be told) is reported on
// w and gives ok false: the caller exits 111.
func status(w io.Writer, tool, prog string, err error) (code int, ok bool) {
	if err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, isWS := ee.Sys().(syscall.WaitStatus); isWS {
			if ws.Exited() {
				return ws.ExitStatus(), true
			}
			if ws.Signaled() {
				fail(w, tool, exitTemp, "%s was killed by signal %d", prog, int(ws.Signal()))
				return exitTemp, false
			}
		}
	}
	fail(w, tool, exitTemp, "%s crashed: %v", prog, err)
	return exitTemp, false
}

// runProgram runs argv with the given descriptors and returns its exit
// code; ok is false (the reason printed on stderr) when it could not be
// started or did not exit by itself.
func runProgram(tool string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	cmd := command(argv, stdin, stdout, stderr)
	if err := cmd.Start(); err != nil {
		fail(stderr, tool, exitTemp, "%s", startError(argv[0], err))
		return exitTemp, false
	}
	return status(stderr, tool, argv[0], cmd.Wait())
}

// runTest runs a test program for bouncesaying, condredirect or except:
// runProgram, and a program that exited 111 is named on stderr, so that
// qmail-local's report of the deferral says why (its own output may be
// empty).
func runTest(tool string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	code, ok = runProgram(tool, argv, stdin, stdout, stderr)
	if ok && code == exitTemp {
		fail(stderr, tool, exitTemp, "%s exited 111: a temporary failure; the delivery will be tried again", argv[0])
	}
	return code, ok
}
