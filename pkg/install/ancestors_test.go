package install

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestInstallRefusesUnsafeParent (QA rnewcomer): a root below a
// directory another user can change is refused before anything changes,
// for every installer, naming that directory: who can rename it can put
// a tree of their own where the programs are run by name (root's make
// run in a checkout an ordinary user owned ran their qmail-local as
// alias). A new root is not made there; one that exists is left as it
// is; a link to one is judged by the directories it leads through.
func TestInstallRefusesUnsafeParent(t *testing.T) {
	open := filepath.Join(searchableDir(t), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	refused(t, "a new root below a directory of mode 0777", filepath.Join(open, "q"),
		"directory "+open+" above the tree ", "is writable by others", "mode 0777")
	root := filepath.Join(open, "q")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	refused(t, "a root below a directory of mode 0777", root, "directory "+open+" above the tree "+root)
	link := filepath.Join(searchableDir(t), "q")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	refused(t, "a link to a root below a directory of mode 0777", link, "directory "+open+" above the tree "+link)

	// Writable by others but not by its group (a group-writable one is
	// refused unless the group is its owner's own: pkg/ancestors' tests).
	oth := filepath.Join(searchableDir(t), "oth")
	os.Mkdir(oth, 0o755)
	if err := syscall.Chmod(oth, 0o757); err != nil {
		t.Fatal(err)
	}
	refused(t, "a root below a directory of mode 0757", filepath.Join(oth, "q"), "is writable by others")

	// The directories a test's tree lies in pass (root's or the user's,
	// not writable by others), and so does a sticky one of root's.
	if err := Install(opts(t, filepath.Join(searchableDir(t), "q"))); err != nil {
		t.Errorf("a root below t.TempDir(): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Log("as root only: a root below another user's directory, or root's sticky one")
		return
	}
	// The finding: root's run/ in a checkout of another user's.
	co := filepath.Join(searchableDir(t), "checkout")
	os.Mkdir(co, 0o755)
	if err := os.Chown(co, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	refused(t, "a root below a directory of uid 65534", filepath.Join(co, "run"),
		"directory "+co+" above the tree ", "(uid 65534), not root's", "RUNROOT=/var/tmp/NAME")
	sticky := filepath.Join(searchableDir(t), "tmp")
	os.Mkdir(sticky, 0o755)
	if err := syscall.Chmod(sticky, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := Install(opts(t, filepath.Join(sticky, "q"))); err != nil {
		t.Errorf("a root below root's sticky directory: %v", err)
	}
}
