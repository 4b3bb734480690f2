package main

import (
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "HQMAIL_TEST_EXCEPT_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// runMain runs main() in a child with args, env added to the environment
// and an empty message on stdin (testutil.RunMain).
func runMain(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testutil.RunMain(t, runMainEnv, env, args...)
}

// TestExceptHelp: -h and --help print the usage on stdout and exit 100,
// not 0, which in a .qmail file lets qmail-local go on with the next line as
// if the line had done its work; with 100 the message bounces and the usage
// is the reason.
func TestExceptHelp(t *testing.T) {
	var env []string
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "true"}} {
		out, errs, code := runMain(t, env, args...)
		if code != 100 || out != help || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 100, the usage on stdout and nothing on stderr", args, code, out, errs)
		}
	}
	// A usage error is as before: the one-line usage on stderr, exit 100.
	out, errs, code := runMain(t, env)
	if code != 100 || out != "" || errs != "usage: except program [arg ...]\n" {
		t.Errorf("no program: exit %d, stdout %q, stderr %q; want 100 and the usage line on stderr", code, out, errs)
	}
}
