package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// runGotestSh runs scripts/gotest.sh with GO=goCmd and args, bounded, and
// returns its output and exit code.
func runGotestSh(t *testing.T, dir, goCmd string, args ...string) (string, int) {
	t.Helper()
	mod, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{filepath.Join(mod, "scripts", "gotest.sh")}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GO="+goCmd, "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("gotest.sh: %v\n%s", err, out)
	}
	return string(out), 0
}

// fakeGo is a stand-in for go that prints the file out and exits with
// code, whatever its arguments.
func fakeGo(t *testing.T, out string, code int) string {
	t.Helper()
	dir := t.TempDir()
	rec := filepath.Join(dir, "output")
	if err := os.WriteFile(rec, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "go")
	script := "#!/bin/sh\ncat '" + rec + "'\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGotestShSkipReasons: gotest.sh lists every skipped test with its
// reason, from a recorded go test -v run (Go 1.26) whose skips include a
// subtest whose "--- SKIP" line comes among its parent's results after
// its siblings ran (the reason was dropped when the next "=== RUN" came
// first), a parallel subtest, a nested one, one without a reason, a
// parent skipping after its subtest passed, a benchmark, and a second
// package with a test of the same name that passes; and from output in
// the unstreamed shape, the reason indented below the "--- SKIP" line.
// Log lines of tests that did not skip are not listed. On a failure
// the whole output is shown, with go test's exit code.
func TestGotestShSkipReasons(t *testing.T) {
	rec, err := os.ReadFile(filepath.Join("testdata", "gotest-skips.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := `--- SKIP: TestServiceLockUnusable/mode_0 (0.00s)
    a_test.go:12: mode 0: root reads a file of mode 0
        whatever its bits
--- SKIP: TestParallel/p1 (0.00s)
    a_test.go:24: p1 needs IPv6 loopback
--- SKIP: TestNested/outer/inner (0.00s)
    a_test.go:33: inner skipped
--- SKIP: TestNoReason/quiet (0.00s)
--- SKIP: TestParentSkipsAfterSub (0.00s)
    a_test.go:45: parent skipped after a subtest
--- SKIP: TestTop (0.00s)
    a_test.go:48: no useradd
--- SKIP: BenchmarkSkip/sub
    a_test.go:51: bench sub skipped
ok  	example.com/skips/a	0.006s
--- SKIP: TestOther (0.00s)
    b_test.go:9: no /bin/sh
ok  	example.com/skips/b	0.003s
(8 skipped tests; reasons above)
`
	out, code := runGotestSh(t, t.TempDir(), fakeGo(t, string(rec), 0), "./...")
	if code != 0 || out != want {
		t.Errorf("gotest.sh on the recorded run: exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}

	unstreamed := `=== RUN   TestOld
=== RUN   TestOld/sub
=== RUN   TestOld/other
--- PASS: TestOld (0.00s)
    old_test.go:20: parent log
    --- SKIP: TestOld/sub (0.00s)
        old_test.go:7: reason below the line
            its second line
    --- PASS: TestOld/other (0.00s)
        old_test.go:9: not a skip's reason
=== RUN   TestOldTop
--- SKIP: TestOldTop (0.00s)
    old_test.go:12: top reason below the line
PASS
ok  	example.com/old	0.001s
`
	want = `--- SKIP: TestOld/sub (0.00s)
    old_test.go:7: reason below the line
        its second line
--- SKIP: TestOldTop (0.00s)
    old_test.go:12: top reason below the line
ok  	example.com/old	0.001s
(2 skipped tests; reasons above)
`
	out, code = runGotestSh(t, t.TempDir(), fakeGo(t, unstreamed, 0), "./...")
	if code != 0 || out != want {
		t.Errorf("gotest.sh on unstreamed output: exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}

	failed := strings.Replace(string(rec), "ok  \texample.com/skips/b", "FAIL\texample.com/skips/b", 1)
	out, code = runGotestSh(t, t.TempDir(), fakeGo(t, failed, 1), "./...")
	// The whole run, then the failures again for a log read from its
	// end: here no test failed, only the package's line.
	wantFailed := failed + "\ngotest: the failures again, from the output above:\nFAIL\texample.com/skips/b\t0.003s\n"
	if code != 1 || out != wantFailed {
		t.Errorf("gotest.sh on a failed run: exit %d (want 1), output:\n%s\nwant the whole run and the failures again:\n%s", code, out, wantFailed)
	}
}

// TestGotestShLive: gotest.sh over a real go test run of a package whose
// first subtest skips before its siblings run lists the skip with its
// reason (the shape go test prints today).
func TestGotestShLive(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs go test on a package of its own")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH: ", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/live\n\ngo 1.26\n",
		"live_test.go": `package live

import "testing"

func TestModes(t *testing.T) {
	for _, m := range []string{"mode_0", "mode_1", "mode_2"} {
		t.Run(m, func(t *testing.T) {
			if m == "mode_0" {
				t.Skip("live reason for mode_0")
			}
			t.Log("ran", m)
		})
	}
}
`,
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOFLAGS", "")
	t.Setenv("GOWORK", "off")
	t.Setenv("GOTOOLCHAIN", "local")
	out, code := runGotestSh(t, dir, goCmd, "-count=1", ".")
	want := "--- SKIP: TestModes/mode_0 ("
	i := strings.Index(out, want)
	if code != 0 || i < 0 {
		t.Fatalf("gotest.sh: exit %d, no %q:\n%s", code, want, out)
	}
	rest := strings.SplitN(out[i:], "\n", 3)
	if len(rest) < 2 || !strings.HasPrefix(rest[1], "    live_test.go:") || !strings.HasSuffix(rest[1], ": live reason for mode_0") {
		t.Errorf("gotest.sh: the skip of TestModes/mode_0 is not followed by its reason:\n%s", out)
	}
	if strings.Contains(out, "ran mode_") {
		t.Errorf("gotest.sh lists log lines of tests that passed:\n%s", out)
	}
}
