package usertools

import (
	"io"
	"os"
	"sync"

	"github.com/hqmail/hqmail/pkg/qerr"
)

const prelineUsage = "preline [-d] [-f] [-r] program [arg ...]"

// PrelineMain is preline(1): run program with, on its standard input,
// $UFLINE (the From_ line), $RPLINE (Return-Path) and $DTLINE
// (Delivered-To) followed by the message read from stdin, byte for byte.
// -f leaves out the From_ line, -r the Return-Path, -d the Delivered-To.
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
			switch a[j] {
			case 'd', 'f', 'r':
				skip[a[j]] = true
			default:
				return usageError(stderr, prelineUsage)
			}
		}
	}
	argv := args[i:]
	if len(argv) == 0 {
		return usageError(stderr, prelineUsage)
	}
	// The lines in mbox order, as qmail-local writes them before a message.
	var head []byte
	for _, l := range []struct {
		opt  byte
		name string
	}{{'f', "UFLINE"}, {'r', "RPLINE"}, {'d', "DTLINE"}} {
		if skip[l.opt] {
			continue
		}
		v, missing := need(l.name)
		if missing != "" {
			return missingVar(stderr, tool, missing)
		}
		head = append(head, v[0]...)
	}
	return feed(tool, argv, head, stdin, stdout, stderr)
}

// feed runs argv with a pipe on its standard input that carries head and
// then msg, and returns the exit code for the caller.
//
// The program may stop reading at any point, or close its input and go
// on: writes into the pipe then fail (EPIPE; Go reports it instead of
// dying of SIGPIPE on a descriptor other than 1 and 2), the copy stops,
// and the program's own exit code counts. Once the program has exited,
// the pipe is closed, which ends a write blocked because a process the
// program left behind holds the pipe open without reading.
//
// If the message cannot be read, the program is killed before it could
// see the end of its input, so that it never takes a cut message for a
// whole one, and feed returns 111.
func feed(tool string, argv []string, head []byte, msg io.Reader, stdout, stderr io.Writer) int {
	r, w, err := os.Pipe()
	if err != nil {
		return fail(stderr, tool, exitTemp, "unable to make a pipe: %s", qerr.Str(err))
	}
	cmd := command(argv, r, stdout, stderr)
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fail(stderr, tool, exitTemp, "%s", startError(argv[0], err))
	}
	r.Close()
	var closeOnce sync.Once
	closeW := func() { closeOnce.Do(func() { w.Close() }) }
	var mu sync.Mutex
	var readErr error
	go func() {
		if err := copyTo(w, head, msg); err != nil {
			mu.Lock()
			readErr = err
			mu.Unlock()
			cmd.Process.Kill()
		}
		closeW() // end of input for the program
	}()
	werr := cmd.Wait()
	closeW()
	mu.Lock()
	rerr := readErr
	mu.Unlock()
	if rerr != nil {
		return fail(stderr, tool, exitTemp, "unable to read the message: %s", errText(rerr))
	}
	code, _ := status(stderr, tool, argv[0], werr)
	return code
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
