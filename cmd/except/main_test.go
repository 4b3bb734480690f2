package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "HQMAIL_TEST_EXCEPT_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs main() in a child, except with args, env added to the
// environment and an empty message on stdin, and returns what it printed
// and its exit code.
func runMain(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &o, &e
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%q: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
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
