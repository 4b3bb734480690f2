package test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// TestAdminToolsHelpAndArgs: the admin tools that take no arguments answer
// -h and --help with a usage text on stdout (exit 0) and refuse any other
// argument (usage on stderr, exit 100), in both cases without doing their
// work: qmail-tcpok -h must not clear queue/lock/tcpto, qmail-newu -h and
// qmail-newmrh -h must not compile, and the readers print no report.
// Without arguments they work as before.
func TestAdminToolsHelpAndArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	seen := bytes.Repeat([]byte{9}, 64)
	cdbInstalled, err := os.ReadFile(tr.Path("users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	// reset puts back what the tools' work would change: a tcpto with
	// entries, an assign that compiles to another users/cdb than the
	// installed one, a morercpthosts without its cdb.
	reset := func(t *testing.T) {
		t.Helper()
		for p, data := range map[string][]byte{
			"queue/lock/tcpto":      seen,
			"users/cdb":             cdbInstalled,
			"users/assign":          []byte("=joe:joe:1234:100:/nonexistent:::\n.\n"),
			"control/morercpthosts": []byte("more.example\n"),
		} {
			if err := os.WriteFile(tr.Path(p), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(tr.Path("control", "morercpthosts.cdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	// state sums up those files.
	state := func() string {
		var b strings.Builder
		for _, p := range []string{"queue/lock/tcpto", "users/cdb", "control/morercpthosts.cdb"} {
			data, err := os.ReadFile(tr.Path(p))
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(&b, "%s: absent\n", p)
				continue
			}
			fmt.Fprintf(&b, "%s: %d bytes, sha256 %x\n", p, len(data), sha256.Sum256(data))
		}
		return b.String()
	}
	run := func(t *testing.T, name string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		var o, e bytes.Buffer
		cmd := tr.Command(name, args...)
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%s: %v", name, err)
			}
			code = ee.ExitCode()
		}
		return o.String(), e.String(), code
	}

	tools := []string{"qmail-tcpok", "qmail-tcpto", "qmail-newu", "qmail-newmrh", "qmail-qread", "qmail-qstat", "qmail-showctl"}
	for _, name := range tools {
		t.Run(name, func(t *testing.T) {
			for _, args := range [][]string{{"-h"}, {"--help"}, {"-h", "foo"}} {
				reset(t)
				before := state()
				out, errs, code := run(t, name, args...)
				if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: "+name+"\n") ||
					!strings.Contains(out, tr.Root) || !strings.Contains(out, "100") {
					t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and a usage naming the tree and the exit codes",
						args, code, out, errs)
				}
				if now := state(); now != before {
					t.Errorf("%q changed the tree:\n%swas\n%s", args, now, before)
				}
			}
			for _, args := range [][]string{{"-x"}, {"foo"}, {"--"}, {""}, {"-v", "-h"}} {
				reset(t)
				before := state()
				out, errs, code := run(t, name, args...)
				if code != 100 || out != "" || !strings.HasPrefix(errs, "usage: "+name+"\n") {
					t.Errorf("%q: exit %d, stdout %q, stderr %q; want 100 and a usage on stderr", args, code, out, errs)
				}
				if now := state(); now != before {
					t.Errorf("%q changed the tree:\n%swas\n%s", args, now, before)
				}
			}
		})
	}

	// No arguments: each does its work, as before.
	reset(t)
	for _, tc := range []struct{ name, want string }{
		{"qmail-qstat", "messages in queue: 0\n"},
		{"qmail-qread", ""},
		{"qmail-showctl", "qmail home directory: " + tr.Root + ".\n"},
		{"qmail-tcpto", ""},
		{"qmail-tcpok", ""},
		{"qmail-newu", ""},
		{"qmail-newmrh", ""},
	} {
		out, errs, code := run(t, tc.name)
		if code != 0 || errs != "" || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, code, out, errs)
		}
	}
	if b, _ := os.ReadFile(tr.Path("queue", "lock", "tcpto")); len(b) == 0 || bytes.Count(b, []byte{0}) != len(b) {
		t.Errorf("qmail-tcpok left tcpto %v", b[:min(len(b), 16)])
	}
	if b, _ := os.ReadFile(tr.Path("users", "cdb")); bytes.Equal(b, cdbInstalled) {
		t.Error("qmail-newu did not rewrite users/cdb")
	}
	if _, err := os.Stat(tr.Path("control", "morercpthosts.cdb")); err != nil {
		t.Errorf("qmail-newmrh: %v", err)
	}
}
