package start

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestMainRefusesUnsafeParent (QA rnewcomer): qmail-start as root
// refuses, with one line and exit 111, a tree below a directory another
// user can change (writable by others; another user's, as an ordinary
// user's checkout holding root's run/): who can rename it can put their
// own tree, and their bin/qmail-lspawn, in its place. Nothing is
// started. A tree can be moved there after qmail-install, which refuses
// it too.
func TestMainRefusesUnsafeParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("qmail-start checks the directories above its tree as root only")
	}
	for _, tc := range []struct {
		what  string
		mode  uint32
		owner int
		why   string
	}{
		{"mode 0777", 0o777, 0, "is writable by others"},
		{"another user's", 0o755, 65534, "(uid 65534), not root's"},
	} {
		above := filepath.Join(t.TempDir(), "above")
		if err := os.Mkdir(above, 0o755); err != nil {
			t.Fatal(err)
		}
		ran := filepath.Join(t.TempDir(), "ran")
		root := filepath.Join(above, "q")
		for _, d := range []string{"bin", "etc"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"qmail-lspawn", "qmail-rspawn", "qmail-clean", "qmail-send"} {
			script := "#!/bin/sh\necho " + name + " >>" + ran + "\n"
			if err := os.WriteFile(filepath.Join(root, "bin", name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// As fakeTree's: without the check, everything would run.
		ids := qhome.SharedIDs(os.Getuid(), os.Getgid()).Format()
		if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(above, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(above, tc.owner, tc.owner); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runMain(t, root, "./Maildir/")
		if code != 111 {
			t.Errorf("%s: exit %d, want 111; stderr:\n%s", tc.what, code, stderr)
		}
		want := "qmail-start: fatal: directory " + above + " above the tree " + root + " "
		if !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 ||
			!strings.Contains(stderr, tc.why) || !strings.HasSuffix(stderr, "; not starting\n") {
			t.Errorf("%s: stderr %q, want one line %q... %q", tc.what, stderr, want, tc.why)
		}
		if b, err := os.ReadFile(ran); err == nil {
			t.Errorf("%s: started %q", tc.what, b)
		}
	}
}
