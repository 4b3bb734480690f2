package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests: a copy
// of it in DIR/bin/qmail-tcpto is qmail-tcpto of the tree DIR.
const runMainEnv = "HQMAIL_TEST_QMAIL_TCPTO_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// TestTcptoArgs: qmail-tcpto takes no arguments but -h, as qmail-tcpok.
// -h and --help print the usage on stdout and exit 0 without listing the
// table; any other argument (an option or not) is a usage error: the usage
// on stderr, exit 100, nothing listed. Without arguments it lists.
func TestTcptoArgs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"bin", "queue/lock"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prog := filepath.Join(root, "bin", "qmail-tcpto")
	testutil.CopyTestBinary(t, prog)
	table := make([]byte, 1024)
	copy(table, []byte{192, 0, 2, 7, 3})
	binary.LittleEndian.PutUint32(table[8:12], uint32(time.Now().Unix()))
	if err := os.WriteFile(filepath.Join(root, "queue", "lock", "tcpto"), table, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		var o, e bytes.Buffer
		cmd := exec.Command(prog, args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
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
	const listed = "192.0.2.7 timed out "

	out, errs, code := run()
	if code != 0 || errs != "" || !strings.HasPrefix(out, listed) || !strings.Contains(out, "# recent timeouts: 3\n") {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q; want 0 and the table", code, out, errs)
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "foo"}} {
		out, errs, code := run(args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: qmail-tcpto\n") ||
			!strings.Contains(out, root) || strings.Contains(out, listed) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and the usage naming the tree, no table", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"-x"}, {"foo"}, {"--"}, {""}, {"-v", "-h"}} {
		out, errs, code := run(args...)
		if code != 100 || out != "" || !strings.HasPrefix(errs, "usage: qmail-tcpto\n") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 100, the usage on stderr, no table", args, code, out, errs)
		}
	}
}
