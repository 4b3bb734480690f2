package main

import (
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "HQMAIL_TEST_PRELINE_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// runMain runs main() in a child with args, env added to the environment
// and an empty message on stdin (testutil.RunMain).
func runMain(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testutil.RunMain(t, runMainEnv, env, args...)
}

// TestPrelineHelp: -h and --help print the usage on stdout and exit 100,
// not 0, which in a .qmail file lets qmail-local go on with the next line as
// if the line had done its work (the filter never ran); with 100 the message
// bounces and the usage is the reason. qmail's preline has no -h and exits
// 100 for it too, with a usage error.
func TestPrelineHelp(t *testing.T) {
	env := []string{"UFLINE=From a@example.com Thu Jan  1 00:00:00 2026\n", "RPLINE=Return-Path: <a@example.com>\n", "DTLINE=Delivered-To: b@example.com\n"}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "cat"}} {
		out, errs, code := runMain(t, env, args...)
		if code != 100 || out != help || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 100, the usage on stdout and nothing on stderr", args, code, out, errs)
		}
	}
	// A usage error is as before: the one-line usage on stderr, exit 100.
	out, errs, code := runMain(t, env, "-f")
	if code != 100 || out != "" || errs != "usage: preline [-dfrDFR] program [arg ...]\n" {
		t.Errorf("-f and no program: exit %d, stdout %q, stderr %q; want 100 and the usage line on stderr", code, out, errs)
	}
}

// TestPrelineQmailOptions: qmail 1.03's -F, -R and -D are taken (they put
// back a line a lower-case option left out), not a usage error: a .qmail
// line "|preline -F prog" bounced every message with exit 100.
func TestPrelineQmailOptions(t *testing.T) {
	uf, rp, dt := "From a@example.com Thu Jan  1 00:00:00 2026\n", "Return-Path: <a@example.com>\n", "Delivered-To: b@example.com\n"
	env := []string{"UFLINE=" + uf, "RPLINE=" + rp, "DTLINE=" + dt}
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{[]string{"-F", "cat"}, uf + rp + dt},
		{[]string{"-R", "-D", "cat"}, uf + rp + dt},
		{[]string{"-f", "-F", "cat"}, uf + rp + dt},
		{[]string{"-F", "-f", "cat"}, rp + dt},
	} {
		out, errs, code := runMain(t, env, tc.args...)
		if code != 0 || out != tc.out || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and %q", tc.args, code, out, errs, tc.out)
		}
	}
}
