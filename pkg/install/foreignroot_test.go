package install

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// nobody is the uid (and gid) of another user the tests give files to.
const nobody = 65534

// prepared makes at root what an ordinary user leaves for root's
// qmail-install (QA rsec): a delivery program in control/defaultdelivery,
// a users/assign line sending another user's mail to the user's home, an
// alias/.qmail-root running the user's program.
func prepared(t *testing.T, root string) {
	t.Helper()
	files := map[string]string{
		"control/defaultdelivery": "|/home/atk/evil.sh\n",
		"control/virtualdomains":  "example.org:atk\n",
		"users/assign":            "=victim:atk:1000:1000:/home/atk:::\n.\n",
		"alias/.qmail-root":       "|/home/atk/evil.sh\n",
	}
	for rel, data := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// chownAll gives everything at and below dir (links as themselves) to uid
// and gid.
func chownAll(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// refused runs Install on root and wants it refused with exit 100 and
// every one of want in its message, with nothing changed in the
// directory that holds root, nor in the one that holds a link's target.
func refused(t *testing.T, what, root string, want ...string) {
	t.Helper()
	dirs := []string{filepath.Dir(root)}
	if r, err := filepath.EvalSymlinks(root); err == nil && filepath.Dir(r) != dirs[0] {
		dirs = append(dirs, filepath.Dir(r)) // a link's target
	}
	var before []map[string]fileState
	for _, d := range dirs {
		before = append(before, snapshot(t, d))
	}
	err := Install(opts(t, root))
	if err == nil || !errors.Is(err, ErrRefused) || qerr.ExitCode(err) != 100 {
		t.Fatalf("%s: %v, want a refusal with exit 100", what, err)
	}
	for _, w := range append(want, "refusing to install there", "; nothing was changed") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q lacks %q", what, err, w)
		}
	}
	for i, d := range dirs {
		sameSnapshot(t, what, before[i], snapshot(t, d))
	}
}

// TestInstallRefusesForeignRoot: a root qmail-install over a directory
// another user made (the finding: RUNROOT=/var/tmp/hqmail-run made by
// atk, with their control/defaultdelivery, users/assign and
// alias/.qmail-root) is refused before anything changes: it chowned the
// root, control/, users/ and alias/ to root and qmail's users and kept
// the user's files, which then ran their program for every delivery. An
// empty one is refused too, and so is a link to one (the directory as
// opened is judged). root's own directory passes, as does a new one.
func TestInstallRefusesForeignRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user needs root")
	}
	for _, full := range []bool{true, false} {
		root := filepath.Join(searchableDir(t), "q")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if full {
			prepared(t, root)
		}
		chownAll(t, root, nobody, nobody)
		refused(t, "a directory of uid 65534", root, root+" belongs to ", "uid 65534", "not to root")
	}

	// A link to one: the directory it leads to is judged.
	away := filepath.Join(searchableDir(t), "atk")
	os.Mkdir(away, 0o755)
	prepared(t, away)
	chownAll(t, away, nobody, nobody)
	link := filepath.Join(searchableDir(t), "q")
	if err := os.Symlink(away, link); err != nil {
		t.Fatal(err)
	}
	refused(t, "a link to a directory of uid 65534", link, link+" belongs to ", "uid 65534")

	// Root's own, made beforehand (as /var/qmail of a qmail taken over),
	// and through a link of root's, pass.
	mine := filepath.Join(searchableDir(t), "q")
	os.Mkdir(mine, 0o755)
	if err := Install(opts(t, mine)); err != nil {
		t.Errorf("root's empty directory: %v", err)
	}
	link = filepath.Join(searchableDir(t), "q")
	os.Symlink(mine, link)
	if err := Install(opts(t, link)); err != nil {
		t.Errorf("a link to root's tree: %v", err)
	}
}

// TestInstallRefusesWritableRoot: a root directory others can write
// (sticky or not: the sticky bit does not keep them from adding names),
// or any group (root's and qmail's too), is refused before anything
// changes, as any of them may have filled it. As an ordinary user, the
// user's own group is such a group too.
func TestInstallRefusesWritableRoot(t *testing.T) {
	groups := []int{os.Getgid()}
	if os.Geteuid() == 0 {
		groups = []int{0, 64110, nobody} // root's, qmail's (opts's UIDBase), another's
	}
	type tc struct {
		mode uint32
		gid  int
		by   string
	}
	cases := []tc{
		{0o777, -1, "can be written by others"},
		{0o1777, -1, "can be written by others (the sticky bit"},
		{0o757, -1, "can be written by others"},
	}
	for _, g := range groups {
		cases = append(cases, tc{0o775, g, "can be written by its group "}, tc{0o3775, g, "can be written by its group "})
	}
	for _, c := range cases {
		root := filepath.Join(searchableDir(t), "q")
		os.Mkdir(root, 0o755)
		if os.Geteuid() == 0 {
			prepared(t, root)
		}
		if c.gid >= 0 {
			if err := os.Chown(root, -1, c.gid); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Chmod(root, c.mode); err != nil {
			t.Fatal(err)
		}
		refused(t, fmt.Sprintf("mode %04o gid %d", c.mode, c.gid), root, c.by, "chmod go-w "+root)
	}
}

// TestCheckNamesForeignOwned: -check names what lies directly in
// control/, users/ or alias/ and belongs to a user neither root, nor the
// tree's, nor one of qmail's (a tree root's qmail-install took over from
// a user before it refused that): their defaultdelivery or .qmail-root is
// obeyed. Those of root and of qmail's users are not named.
func TestCheckNamesForeignOwned(t *testing.T) {
	root, ids := rootTree(t)
	for _, rel := range []string{"control/defaultdelivery", "alias/.qmail-root", "users/notes"} {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte("|/home/atk/evil.sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(filepath.Join(root, "alias", ".qmail-root"), ids.Alias.UID, ids.Nofiles)
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check with root's and alias's files: %q %v", dev, err)
	}
	var want []string
	for _, rel := range []string{"control/defaultdelivery", "alias/.qmail-root", "users/notes"} {
		if err := os.Lchown(filepath.Join(root, rel), nobody, nobody); err != nil {
			t.Fatal(err)
		}
		want = append(want, rel+": belongs to ")
	}
	// A link of theirs, as itself.
	if err := os.Symlink("/home/atk/virtualdomains", filepath.Join(root, "control", "virtualdomains")); err != nil {
		t.Fatal(err)
	}
	os.Lchown(filepath.Join(root, "control", "virtualdomains"), nobody, nobody)
	want = append(want, "control/virtualdomains: belongs to ")
	dev, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		i := slices.IndexFunc(dev, func(l string) bool { return strings.HasPrefix(l, w) })
		if i < 0 {
			t.Errorf("check %q lacks a line %q...", dev, w)
			continue
		}
		if l := dev[i]; !strings.Contains(l, "uid 65534") || !strings.Contains(l, "neither root, the tree's owner nor one of qmail's users") {
			t.Errorf("check line %q", l)
		}
	}
}
