package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// TestBadAssignStops: a users/assign that qmail's qmail-newu took (a
// blank after a uid) stops a takeover in writeUsers, after the
// directories, etc/ids and the control files and before the programs;
// its line is named with users/assign said once (it was "users/assign:
// bad format in users/assign: ...") and with what to do. Fixed, the
// next run completes. -check names it once as well.
func TestBadAssignStops(t *testing.T) {
	root, o := installed(t)
	os.Remove(filepath.Join(root, "etc", "ids"))
	prog := filepath.Join(root, "bin", "qmail-send")
	os.Remove(prog)
	assign := filepath.Join(root, "users", "assign")
	if err := os.WriteFile(assign, []byte("=joe:joe:47100 :47101:/h:::\n.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Install(o)
	const line = `bad format in users/assign: line 1: uid "47100 " is not a decimal number below 4294967295`
	if err == nil || qerr.ExitCode(err) != 111 || !strings.HasPrefix(err.Error(), line+"; ") ||
		strings.Count(err.Error(), "users/assign") != 1 ||
		!strings.Contains(err.Error(), "fix that line and run qmail-install again") {
		t.Fatalf("install: %v (exit %d), want %q once, then what to do", err, qerr.ExitCode(err), line)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "ids")); err != nil {
		t.Errorf("etc/ids not made before the stop: %v", err)
	}
	if _, err := os.Lstat(prog); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bin/qmail-send installed by a run that stopped at users/assign: %v", err)
	}
	dev, err := Check(root)
	want := line + ": users/cdb cannot be rebuilt (the repair fails)"
	found := false
	for _, l := range dev {
		found = found || l == want
	}
	if err != nil || !found {
		t.Errorf("check: %q %v, want %q", dev, err, want)
	}

	os.WriteFile(assign, []byte("=joe:joe:47100:47101:/h:::\n.\n"), 0o644)
	if err := Install(o); err != nil {
		t.Fatalf("install once the line is fixed: %v", err)
	}
	if _, err := os.Stat(prog); err != nil {
		t.Errorf("bin/qmail-send: %v", err)
	}
}
