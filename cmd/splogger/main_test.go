package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "HQMAIL_TEST_SPLOGGER_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// TestSploggerArgs: -h and --help print the usage on stdout and exit 0;
// more than two arguments, a tag that starts with "-" and an unknown
// facility are usage errors (exit 100, stdout empty, the reason on
// stderr), all before a line is read; [tag [facility]] reads stdin to its
// end and exits 0 (syslog unreachable here: the lines are dropped).
func TestSploggerArgs(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "no-syslog")
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		var o, e bytes.Buffer
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "SPLOGGER_SOCKET="+sock)
		cmd.Stdin = strings.NewReader("a log line\n")
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%q: %v", args, err)
			}
			code = ee.ExitCode()
		}
		return o.String(), e.String(), code
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "mail"}} {
		out, errs, code := run(args...)
		if code != 0 || errs != "" || out != help {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"qmail", "mail", "extra"}, {"-t", "qmail"}, {"--version"}, {"-"}, {"--", "qmail"}} {
		out, errs, code := run(args...)
		if code != 100 || out != "" || errs != help {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 100 and the usage on stderr", args, code, out, errs)
		}
	}
	for _, fac := range []string{"bogus", "", "25", "-1", "192"} {
		out, errs, code := run("qmail", fac)
		if code != 100 || out != "" || !strings.HasPrefix(errs, "splogger: fatal: unknown facility ") {
			t.Errorf("facility %q: exit %d, stdout %q, stderr %q; want 100 and unknown facility", fac, code, out, errs)
		}
	}
	for _, args := range [][]string{nil, {"qmail"}, {"qmail", "local0"}, {"qmail", "16"}} {
		if out, errs, code := run(args...); code != 0 || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0", args, code, out, errs)
		}
	}
}

// TestSploggerParseArgs: the tag and facility code of good arguments.
func TestSploggerParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		tag  string
		fac  int
	}{
		{nil, "splogger", 2},
		{[]string{"qmail"}, "qmail", 2},
		{[]string{"qmail-start", "local0"}, "qmail-start", 16},
		{[]string{"q", "128"}, "q", 16},
		{[]string{"q", "3"}, "q", 3},
		{[]string{"", "mail"}, "", 2},
	} {
		var stderr bytes.Buffer
		tag, fac, code := parseArgs(tc.args, &stderr)
		if code != 0 || tag != tc.tag || fac != tc.fac || stderr.Len() != 0 {
			t.Errorf("%q: %q %d exit %d %q; want %q %d", tc.args, tag, fac, code, stderr.String(), tc.tag, tc.fac)
		}
	}
}
