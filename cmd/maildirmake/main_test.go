package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "HQMAIL_TEST_MAILDIRMAKE_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// TestMaildirmakeUsageLine: the usage, on stdout for -h and on stderr for
// a usage error, is "maildirmake [--] dir": it names --, the option
// maildirmake(1) documents for a dir that starts with "-".
func TestMaildirmakeUsageLine(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const line = "usage: maildirmake [--] dir\n"
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"-h"}, 0}, {[]string{"--help"}, 0}, {nil, 100}, {[]string{"-x"}, 100}} {
		var o, e bytes.Buffer
		cmd := exec.Command(exe, tc.args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		cmd.Stdout, cmd.Stderr = &o, &e
		code := 0
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%q: %v", tc.args, err)
			}
			code = ee.ExitCode()
		}
		got, other := o.String(), e.String()
		if tc.code != 0 {
			got, other = other, got
		}
		if code != tc.code || !strings.HasPrefix(got, line) || other != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, o.String(), e.String(), tc.code, line)
		}
	}
}
