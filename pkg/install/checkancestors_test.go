package install

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCheckUnsafeParent (QA rupgrade2): -check names a directory above
// the tree that another user can change, first and in the words of the
// repair's refusal, as a deviation: a tree installed below a directory
// made group-writable since (or moved there) is refused by the repair and
// not started by root's qmail-start, and -check said nothing, so the next
// restart after an upgrade checked with -check left the system down.
func TestCheckUnsafeParent(t *testing.T) {
	grp := filepath.Join(searchableDir(t), "grp")
	if err := os.Mkdir(grp, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(grp, "q")
	o := opts(t, root)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check below a directory of mode 0755: %q %v", dev, err)
	}
	if err := syscall.Chmod(grp, 0o757); err != nil {
		t.Fatal(err)
	}
	ierr := Install(o)
	if ierr == nil {
		t.Fatal("the repair below a directory of mode 0757 was not refused")
	}
	refusal, _, _ := strings.Cut(ierr.Error(), "; refusing to install there")
	dev, err := Check(root)
	if err != nil || len(dev) != 1 {
		t.Fatalf("check below a directory of mode 0757: %q %v, want one line", dev, err)
	}
	want := refusal + "; qmail-install refuses to repair the tree there, and qmail-start as root to start it"
	if dev[0] != want {
		t.Errorf("check's line\n%q, want\n%q", dev[0], want)
	}
	for _, w := range []string{"directory " + grp + " above the tree " + root + " ", "is writable by others", "(chmod o-w " + grp + ")"} {
		if !strings.Contains(dev[0], w) {
			t.Errorf("check's line %q lacks %q", dev[0], w)
		}
	}
	// A relative name is judged as the absolute one.
	t.Chdir(grp)
	if dev, err := Check("q"); err != nil || len(dev) != 1 || !strings.HasPrefix(dev[0], "directory "+grp+" above the tree "+root+" ") {
		t.Errorf("check of the relative name q: %q %v", dev, err)
	}
	if err := syscall.Chmod(grp, 0o755); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check once the directory is mode 0755 again: %q %v", dev, err)
	}
}

// TestCheckControlLock: qmailctl's control/lock, 0600 on purpose (read
// by others, they could hold it and block every hold and release: QA
// rsec3), is no deviation to -check, which told to chmod it 644; and a
// tree with nothing in control/ but that lock is still a new tree.
func TestCheckControlLock(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	if err := Install(opts(t, root)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "control", "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check with control/lock 0600: %q %v", dev, err)
	}
}
