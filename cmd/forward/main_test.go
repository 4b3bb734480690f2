package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "HQMAIL_TEST_FORWARD_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// runMain runs main() in a child with args, env added to the environment
// and an empty message on stdin (testutil.RunMain).
func runMain(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testutil.RunMain(t, runMainEnv, env, args...)
}

// TestForwardHelp: -h and --help print the usage on stdout and exit 100.
// Exit 0 tells qmail-local that a .qmail line did its work: with it a line
// "|forward -h" gave a "success" report and forwarded the message nowhere
// (lost, when it was the only line). With 100 the message bounces and the
// usage is the reason. Nothing is queued.
func TestForwardHelp(t *testing.T) {
	dir := t.TempDir()
	queued := filepath.Join(dir, "queued")
	qq := filepath.Join(dir, "qq")
	if err := os.WriteFile(qq, []byte("#!/bin/sh\n: > '"+queued+"'\nexec cat > /dev/null\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"NEWSENDER=a@example.com", "DTLINE=Delivered-To: b@example.com\n", "QMAILQUEUE=" + qq}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "c@example.com"}} {
		out, errs, code := runMain(t, env, args...)
		if code != 100 || out != help || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 100, the usage on stdout and nothing on stderr", args, code, out, errs)
		}
	}
	// A usage error is as before: the one-line usage on stderr, exit 100.
	out, errs, code := runMain(t, env)
	if code != 100 || out != "" || errs != "usage: forward address [address ...]\n" {
		t.Errorf("no address: exit %d, stdout %q, stderr %q; want 100 and the usage line on stderr", code, out, errs)
	}
	if _, err := os.Stat(queued); err == nil {
		t.Error("forward -h ran $QMAILQUEUE")
	}
	// The recorder works: a real call reaches it.
	runMain(t, env, "c@example.com")
	if _, err := os.Stat(queued); err != nil {
		t.Errorf("forward c@example.com did not run $QMAILQUEUE: %v", err)
	}
}
