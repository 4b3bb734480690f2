package usertools

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

func TestPrelineStream(t *testing.T) {
	big := make([]byte, 1<<20+3)
	rand.New(rand.NewSource(1)).Read(big)
	bodies := map[string][]byte{
		"plain":        []byte("Subject: hi\n\nhello\n"),
		"no final nl":  []byte("Subject: hi\n\nno newline at the end"),
		"empty":        nil,
		"odd bytes":    []byte("Subject: x\r\n\r\nFrom the start\n>From quoted\x00nul\r\n.\n\xff\xfe"),
		"pipe buffer":  bytes.Repeat([]byte("a"), 65536),
		"1 MB, random": big,
	}
	flags := []struct {
		args []string
		head string
	}{
		{nil, testUF + testRP + testDT},
		{[]string{"-f"}, testRP + testDT},
		{[]string{"-r"}, testUF + testDT},
		{[]string{"-d"}, testUF + testRP},
		{[]string{"-fr"}, testDT},
		{[]string{"-f", "-d"}, testRP},
		{[]string{"-dfr", "--"}, ""},
	}
	localEnv(t)
	for name, body := range bodies {
		for _, fl := range flags {
			t.Run(name+" "+strings.Join(fl.args, " "), func(t *testing.T) {
				out := outFile(t)
				var stderr bytes.Buffer
				args := append(append([]string(nil), fl.args...), "cat")
				code := within(t, "preline cat", func() int { return PrelineMain(args, msgFile(t, body), out, &stderr) })
				if code != 0 || stderr.Len() != 0 {
					t.Fatalf("exit %d, stderr %q", code, stderr.String())
				}
				want := append([]byte(fl.head), body...)
				if got := read(t, out); !bytes.Equal(got, want) {
					t.Fatalf("program got %d bytes, want %d; first 200: %q", len(got), len(want), got[:min(len(got), 200)])
				}
			})
		}
	}
}

func TestPrelineStdinNotAFile(t *testing.T) {
	// A pipe or any reader works too (preline never seeks).
	localEnv(t)
	out := outFile(t)
	var stderr bytes.Buffer
	body := "Subject: piped\n\nbody"
	if code := PrelineMain([]string{"cat"}, strings.NewReader(body), out, &stderr); code != 0 {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
	if got := string(read(t, out)); got != testUF+testRP+testDT+body {
		t.Errorf("got %q", got)
	}
}

func TestPrelineProgramReadsNothing(t *testing.T) {
	// A 1 MB message is far more than a pipe holds: preline's writes
	// block until the program has gone, then fail. Neither a hang nor
	// SIGPIPE; the program's own exit code is the answer.
	localEnv(t)
	body := bytes.Repeat([]byte("0123456789abcdef\n"), 1<<20/17+1)
	for _, tc := range []struct {
		argv []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "exit 100"}, 100},
		{[]string{"sh", "-c", "exit 99"}, 99},
		{[]string{"head", "-c", "10"}, 0}, // reads a little, then stops
		{[]string{"sh", "-c", "exec 0<&-; exit 7"}, 7},
	} {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := within(t, "preline", func() int { return PrelineMain(tc.argv, msgFile(t, body), &stdout, &stderr) })
			if code != tc.code || stderr.Len() != 0 {
				t.Errorf("exit %d (want %d), stderr %q", code, tc.code, stderr.String())
			}
		})
	}
}

func TestPrelineProgramLeavesReader(t *testing.T) {
	// The program exits and leaves a process behind that holds its input
	// open a while and reads nothing: as qmail's preline, preline writes
	// until no process holds the pipe any more, then ends with the
	// program's exit code.
	localEnv(t)
	body := bytes.Repeat([]byte("x"), 1<<20)
	// (An asynchronous command of a script reads /dev/null unless told
	// otherwise: hand it the pipe through fd 3.)
	script := "exec 3<&0; sleep 1 <&3 >/dev/null 2>&1 & exit 5"
	var stdout, stderr bytes.Buffer
	code := within(t, "preline", func() int { return PrelineMain([]string{"sh", "-c", script}, msgFile(t, body), &stdout, &stderr) })
	if code != 5 {
		t.Errorf("exit %d, want 5 (stderr %q)", code, stderr.String())
	}
}

func TestPrelineExit(t *testing.T) {
	localEnv(t)
	for _, tc := range []struct {
		argv   []string
		code   int
		stderr string
	}{
		{[]string{"sh", "-c", "cat >/dev/null; exit 111"}, 111, ""},
		{[]string{"sh", "-c", "cat >/dev/null; exit 64"}, 64, ""},
		{[]string{"sh", "-c", "kill -9 $$"}, 111, "preline: fatal: sh was killed by signal 9\n"},
		{[]string{"/no/such/program"}, 111, "preline: fatal: unable to run /no/such/program: file does not exist\n"},
		{[]string{"no-such-program-here"}, 111, "preline: fatal: unable to run no-such-program-here: not found in $PATH\n"},
		// An argument starting with "--" ends the options and is
		// skipped, as qmail's getopt does.
		{[]string{"--x", "sh", "-c", "cat >/dev/null; exit 64"}, 64, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := PrelineMain(tc.argv, msgFile(t, []byte("Subject: x\n\nbody\n")), &stdout, &stderr)
		if code != tc.code || stderr.String() != tc.stderr {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tc.argv, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}

func TestPrelineUsage(t *testing.T) {
	localEnv(t)
	for _, args := range [][]string{nil, {"-f"}, {"-x", "cat"}, {"--"}} {
		var stdout, stderr bytes.Buffer
		code := PrelineMain(args, strings.NewReader(""), &stdout, &stderr)
		if code != 100 || stderr.String() != "usage: "+prelineUsage+"\n" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

func TestPrelineMissingVariable(t *testing.T) {
	for _, tc := range []struct{ unset, flag string }{{"UFLINE", "-f"}, {"RPLINE", "-r"}, {"DTLINE", "-d"}} {
		t.Run(tc.unset, func(t *testing.T) {
			localEnv(t)
			unsetenv(t, tc.unset)
			out := outFile(t)
			var stderr bytes.Buffer
			code := PrelineMain([]string{"cat"}, strings.NewReader("body\n"), out, &stderr)
			if code != 100 || !strings.Contains(stderr.String(), "$"+tc.unset+" is not set") {
				t.Errorf("exit %d, stderr %q", code, stderr.String())
			}
			if n := len(read(t, out)); n != 0 {
				t.Errorf("the program ran (%d bytes)", n)
			}
			// The option that leaves that line out needs no variable.
			stderr.Reset()
			if code := PrelineMain([]string{tc.flag, "cat"}, strings.NewReader("body\n"), out, &stderr); code != 0 {
				t.Errorf("%s: exit %d, stderr %q", tc.flag, code, stderr.String())
			}
		})
	}
	// Set and empty is set.
	localEnv(t)
	t.Setenv("DTLINE", "")
	var stdout, stderr bytes.Buffer
	if code := PrelineMain([]string{"cat"}, strings.NewReader("b"), &stdout, &stderr); code != 0 || stdout.String() != testUF+testRP+"b" {
		t.Errorf("empty DTLINE: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
}

func TestPrelineReadError(t *testing.T) {
	// The program must never take a cut message for a whole one: it is
	// killed before its input ends, and preline defers the delivery.
	localEnv(t)
	done := filepath.Join(t.TempDir(), "done")
	var stdout, stderr bytes.Buffer
	code := PrelineMain([]string{"sh", "-c", "cat >/dev/null && touch " + done}, &testutil.FailingReader{N: 100000}, &stdout, &stderr)
	if code != 111 || !strings.Contains(stderr.String(), "preline: fatal: unable to read the message: input/output error") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(done); !errors.Is(err, os.ErrNotExist) {
		t.Error("the program saw the end of a cut message and went on")
	}
}
