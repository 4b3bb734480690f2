package forward

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// The lines localEnv sets for alice, in mbox order.
const (
	aliceUF = "From bob@example.net Thu Nov 26 03:22:00 2026\n"
	aliceRP = "Return-Path: <bob@example.net>\n"
	aliceDT = "Delivered-To: alice@example.org\n"
)

// bigBody is a message larger than a pipe holds, with a From_ look-alike
// in its body (left as it is: a program gets no >From quoting).
var bigBody = "Subject: x\n\n" + strings.Repeat("From the body, a line of it\n", 20000)

// inHome makes a home directory (not writable by others) the working
// directory and returns it.
func inHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	os.Chmod(home, 0o755)
	t.Chdir(home)
	return home
}

// bounded runs f and fails the test if it has not returned in 2 minutes
// (a program input that was never closed).
func bounded[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not return within 2 minutes", what)
	}
	panic("unreachable")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDotForwardProgramGetsMboxLines: "|cat > file" in a .forward gets
// the From_ line, Return-Path and Delivered-To, then the message byte for
// byte, as from sendmail's prog mailer or Postfix's local(8). It got the
// bare message: "|/usr/bin/procmail" wrote mboxes with no From_ line
// between the messages, which no mail reader could split.
func TestDotForwardProgramGetsMboxLines(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	os.WriteFile(".forward", []byte("\"|cat > "+home+"/prog.out\"\n"), 0o644)
	var out bytes.Buffer
	code := bounded(t, "dot-forward", func() int {
		return DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, bigBody), &out)
	})
	if code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if got, want := readFile(t, filepath.Join(home, "prog.out")), aliceUF+aliceRP+aliceDT+bigBody; got != want {
		t.Fatalf("program got %d bytes, want %d; first 200: %q", len(got), len(want), got[:min(len(got), 200)])
	}
}

// TestFastforwardProgramGetsMboxLines: the same for a program target of
// an alias.
func TestFastforwardProgramGetsMboxLines(t *testing.T) {
	root := t.TempDir()
	prog := filepath.Join(root, "prog.out")
	writeAliases(t, root, "log: \"|cat > "+prog+"\"\n")
	localEnv(t, "alias", "log", "log")
	var out bytes.Buffer
	code := bounded(t, "fastforward", func() int { return FastforwardMain(root, nil, msgFile(t, bigBody), &out) })
	if code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	want := aliceUF + aliceRP + "Delivered-To: log@example.org\n" + bigBody
	if got := readFile(t, prog); got != want {
		t.Fatalf("program got %d bytes, want %d; first 200: %q", len(got), len(want), got[:min(len(got), 200)])
	}
}

// TestProgramRunningPrelineGetsMessage: a command that runs one of
// qmail's own tools that take the message as qmail-local hands it over
// (preline, condredirect, forward, bouncesaying, except: bare, any path
// ending in /NAME, after exec, env or VAR=value words, quoted) gets the
// message as it is: "|preline procmail" from a qmail user's habits gives
// procmail the lines once, and "|forward addr" or "|condredirect addr
// cmd" forward no From_ line and no second Delivered-To inside the
// header. A name that only looks like it (prelinex, preline as an
// argument) gets them.
func TestProgramRunningPrelineGetsMessage(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	bin := filepath.Join(home, "bin")
	os.Mkdir(bin, 0o755)
	// Stand-ins: each stores its input in the file named last.
	for _, name := range []string{"preline", "prelinex", "condredirect", "forward", "bouncesaying", "except"} {
		os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nfor f; do :; done\nexec cat > \"$f\"\n"), 0o755)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	lines := aliceUF + aliceRP + aliceDT
	for _, tc := range []struct {
		cmd, head string
	}{
		{bin + "/preline " + home + "/a", ""},
		{"preline " + home + "/b", ""},
		{"exec preline " + home + "/c", ""},
		{"  exec  " + bin + "/preline " + home + "/d", ""},
		{"prelinex " + home + "/e", lines},
		{"echo preline >/dev/null; cat > " + home + "/f", lines},
		{"/usr/bin/env preline " + home + "/g", ""},
		{"'preline' " + home + "/h", ""},
		{"exec env LC_ALL=C \"" + bin + "/preline\" -d " + home + "/i", ""},
		{"FOO='a b' preline " + home + "/j", ""},
		{"condredirect bob@example.com false " + home + "/k", ""},
		{bin + "/forward bob@example.com " + home + "/l", ""},
		{"exec bouncesaying 'no such list' false " + home + "/m", ""},
		{"except true " + home + "/n", ""},
		{"pre\\line " + home + "/o", ""},
		{"true env preline; cat > " + home + "/p", lines},
		{"cat > " + home + "/q", lines},
	} {
		os.WriteFile(".forward", []byte("\"|"+strings.ReplaceAll(tc.cmd, `"`, `\"`)+"\"\n"), 0o644)
		var out bytes.Buffer
		code := bounded(t, "dot-forward", func() int {
			return DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, bigBody), &out)
		})
		if code != 99 {
			t.Fatalf("%q: exit %d: %s", tc.cmd, code, out.String())
		}
		f := tc.cmd[strings.LastIndex(tc.cmd, " ")+1:]
		if got := readFile(t, f); got != tc.head+bigBody {
			t.Errorf("%q: program got %d bytes, want %d; first 200: %q", tc.cmd, len(got), len(tc.head+bigBody), got[:min(len(got), 200)])
		}
	}
}

// TestProgramNoVariables: run by hand, without qmail-local's variables,
// a program gets the message as it is, with nothing added.
func TestProgramNoVariables(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	for _, v := range []string{"UFLINE", "RPLINE", "DTLINE"} {
		os.Unsetenv(v) // restored by localEnv's t.Setenv
	}
	os.WriteFile(".forward", []byte("\"|cat > "+home+"/prog.out\"\n"), 0o644)
	var out bytes.Buffer
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "Subject: x\n\nhi\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if got := readFile(t, filepath.Join(home, "prog.out")); got != "Subject: x\n\nhi\n" {
		t.Fatalf("program got %q", got)
	}
}

// TestProgramReadsPart: a program that reads a part of its input, none
// of it, or leaves behind a process that holds its input open, ends the
// delivery with its own exit code; no hang. The next program still gets
// the whole message.
func TestProgramReadsPart(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	pidfile := filepath.Join(home, "pid")
	t.Cleanup(func() {
		b, _ := os.ReadFile(pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	env := EnvFromOS(t.TempDir())
	p := &Plan{Programs: []string{
		"head -c 10 > " + home + "/head.out",
		"exit 0",
		"exec 0<&-; exit 0",
		// (An asynchronous command of a script reads /dev/null unless
		// told otherwise: hand it the pipe through fd 3.)
		"exec 3<&0; sleep 600 <&3 >/dev/null 2>&1 & echo $! > " + pidfile + "; exit 0",
		"cat > " + home + "/all.out",
	}}
	var out bytes.Buffer
	err := bounded(t, "Deliver", func() error { _, err := Deliver(p, msgFile(t, bigBody), &env, &out); return err })
	if err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got := readFile(t, filepath.Join(home, "head.out")); got != aliceUF[:10] {
		t.Errorf("head -c 10 got %q", got)
	}
	if got := readFile(t, filepath.Join(home, "all.out")); got != aliceUF+aliceRP+aliceDT+bigBody {
		t.Errorf("the last program got %d bytes", len(got))
	}
	// A permanent exit is still one.
	p = &Plan{Programs: []string{"head -c 10 >/dev/null; exit 100"}}
	err = bounded(t, "Deliver", func() error { _, err := Deliver(p, msgFile(t, bigBody), &env, &out); return err })
	if !qerr.IsPerm(err) {
		t.Errorf("exit 100: %v", err)
	}
}

// TestProgramReadError: a message that cannot be read to its end defers
// the delivery, and the program never runs: it is started only once the
// whole message is in its input file. It was started on a pipe and
// killed on the error, and a process it had started (cat > file) took
// the cut message for a whole one.
func TestProgramReadError(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	env := EnvFromOS(t.TempDir())
	ran := filepath.Join(home, "ran")
	p := &Plan{Programs: []string{"touch " + ran + "; cat >/dev/null"}}
	var out bytes.Buffer
	err := bounded(t, "Deliver", func() error { _, err := Deliver(p, &testutil.FailingReader{N: 100000}, &env, &out); return err })
	if err == nil || qerr.IsPerm(err) || err.Error() != "Unable to read message: input/output error. (#4.3.0)" {
		t.Errorf("got %v, want a temporary failure to read the message", err)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Error("the program ran on a cut message")
	}
}

var _ io.ReadSeeker = (*testutil.FailingReader)(nil)
