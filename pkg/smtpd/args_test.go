package smtpd

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestOneSessionIgnoresArgs (regression QA): operands of the one-session
// mode are ignored with a warning, as qmail's qmail-smtpd never reads its
// arguments, and the session runs. A run script of an SMTP AUTH patch
// passes some; they were a usage error (exit 100, no greeting), so that
// every connection of a migrated server was dropped without a word.
func TestOneSessionIgnoresArgs(t *testing.T) {
	root := testRoot(t, nil)
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "bin", "qmail-smtpd")
	testutil.CopyTestBinary(t, prog)
	for _, args := range [][]string{
		{"host", "/bin/checkpassword", "/bin/true"},
		{"-r", "host", "-x"}, // flags end at the first operand
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.Stdin = strings.NewReader("QUIT\r\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			t.Errorf("%q: %v, want exit 0; stderr %q", args, err, stderr.String())
		}
		if want := "220 mx.example.org ESMTP\r\n221 mx.example.org\r\n"; stdout.String() != want {
			t.Errorf("%q: dialogue %q, want %q", args, stdout.String(), want)
		}
		operands := args
		if args[0] == "-r" {
			operands = args[1:]
		}
		want := "qmail-smtpd: " + ignoredArgs(operands) + "\n"
		if stderr.String() != want {
			t.Errorf("%q: stderr %q, want %q", args, stderr.String(), want)
		}
	}
}

// TestIgnoredArgsText: the warning names each operand bare when it is
// made of letters, digits and _./:=@%+,- only, else (and the empty one)
// in double quotes with Go's escapes, and says no AUTH is offered. A
// quote, a $ and a raw byte that is no UTF-8 were shown bare, under a
// comment that promised the shell's form (QA).
func TestIgnoredArgsText(t *testing.T) {
	got := ignoredArgs([]string{"host", "/bin/checkpassword", "/bin/true", "", "a b",
		"it's", "$HOME", "\xff", "a\"b\\c", "-x", "u@h:25,v=1%+_.", "~", "é"})
	want := `warning: ignoring arguments host /bin/checkpassword /bin/true "" "a b" "it's" "$HOME" "\xff" "a\"b\\c" -x u@h:25,v=1%+_. "~" "é", ` +
		`as qmail's qmail-smtpd does (SMTP AUTH is not offered; no checkpassword program is run)`
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestOneSessionStderrOnClientStream (regression QA): when descriptor 2
// is the client's output stream (socat's "pipes,stderr", a 2>&1 into
// the client's pipe) while descriptor 0 is another, the warning about
// ignored operands reached the client before the greeting, as only a
// socket shared by 0 and 2 was recognized. Every diagnostic is
// discarded then: the client reads the dialogue alone.
func TestOneSessionStderrOnClientStream(t *testing.T) {
	root := testRoot(t, nil)
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "bin", "qmail-smtpd")
	testutil.CopyTestBinary(t, prog)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, "host", "/bin/checkpassword", "/bin/true")
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	cmd.Stdout, cmd.Stderr = w, w // one pipe for both
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v, want 0", err)
	}
	if want := "220 mx.example.org ESMTP\r\n221 mx.example.org\r\n"; string(out) != want {
		t.Errorf("the client's stream: %q, want %q (no warning)", out, want)
	}
}

// TestOptionErrors: an unknown option or one without its argument is a
// usage error (exit 100) said with the program's name, then the usage; -h
// prints the usage alone and exits 0. Nothing goes to the client.
func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		code  int
		first string
	}{
		{[]string{"-x"}, 100, "qmail-smtpd: flag provided but not defined: -x\n"},
		{[]string{"-c"}, 100, "qmail-smtpd: flag needs an argument: -c\n"},
		{[]string{"-h"}, 0, "usage: qmail-smtpd [-r] | qmail-smtpd -listen ADDR [-c N]\n"},
		{[]string{"--help"}, 0, "usage: qmail-smtpd [-r] | qmail-smtpd -listen ADDR [-c N]\n"},
	} {
		var stderr bytes.Buffer
		code := Main(tc.args, &stderr)
		out := stderr.String()
		if code != tc.code || !strings.HasPrefix(out, tc.first) || !strings.Contains(out, "-listen ADDR\n") {
			t.Errorf("%q: exit %d, stderr %q; want %d, starting %q, with the options listed", tc.args, code, out, tc.code, tc.first)
		}
		if n := strings.Count(out, "usage: "); n != 1 {
			t.Errorf("%q: the usage said %d times:\n%s", tc.args, n, out)
		}
	}
}
