package testutil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// MainOrTests is a command's TestMain: when the environment variable env
// is "1" the test binary is the command itself (main runs, and the process
// exits 0 if main returns); otherwise the tests run. RunMain starts it so.
func MainOrTests(m *testing.M, env string, main func()) {
	if os.Getenv(env) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// RunMain runs the test binary as its command (env set to "1", see
// MainOrTests) with args, extra added to the environment, an empty
// standard input and a temporary working directory, and returns what it
// printed and its exit code.
func RunMain(t *testing.T, env string, extra []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	cmd := exec.Command(exe, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(), env+"=1"), extra...)
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
