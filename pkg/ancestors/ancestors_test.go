package ancestors

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mkdirMode makes dir with exactly mode, as chmod takes it (umask aside).
func mkdirMode(t *testing.T, dir string, mode uint32) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantError wants Check(root) to refuse dir (a link
// when link) with every one of want in its message.
func wantError(t *testing.T, what, root, dir string, link bool, want ...string) {
	t.Helper()
	err := Check(root)
	var ae *Error
	if !errors.As(err, &ae) {
		t.Errorf("%s: Check(%s) = %v, want a refusal of %s", what, root, err, dir)
		return
	}
	if ae.Dir != dir || ae.Link != link {
		t.Errorf("%s: refused %s (link %v), want %s (link %v): %v", what, ae.Dir, ae.Link, dir, link, err)
	}
	for _, w := range append(want, dir+" above the tree "+root, ", or put the tree under directories only root",
		"e.g. /var/qmail (make run: RUNROOT=/var/tmp/NAME)") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q lacks %q", what, err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: %q is more than one line", what, err)
	}
}

// TestCheck (QA rnewcomer): a tree under a directory another
// user can change is refused, naming that directory, its owner and why:
// root's make run in a checkout an ordinary user owned ran their own
// bin/qmail-local as alias after they renamed run/ and made their own.
// A tree under t.TempDir(), under root's sticky /tmp, passes.
func TestCheck(t *testing.T) {
	base := t.TempDir()
	if err := Check(filepath.Join(base, "tree")); err != nil {
		t.Errorf("a tree not made yet under t.TempDir(): %v", err)
	}
	good := mkdirMode(t, filepath.Join(base, "tree"), 0o755)
	if err := Check(good); err != nil {
		t.Errorf("a tree under t.TempDir(): %v", err)
	}
	// The root itself is not judged here (qmail-install's own check).
	os.Chmod(good, 0o777)
	if err := Check(good); err != nil {
		t.Errorf("a tree writable by others, under good directories: %v", err)
	}
	os.Chmod(good, 0o755)
	if err := Check("run"); err == nil {
		t.Error("a relative name passed")
	}

	// Writable by others, not sticky: anyone could rename the tree.
	open := mkdirMode(t, filepath.Join(base, "open"), 0o777)
	tree := mkdirMode(t, filepath.Join(open, "tree"), 0o755)
	wantError(t, "mode 0777", tree, open, false, "is writable by others", "mode 0777",
		"; make it writable by its owner only (chmod go-w "+open+"), or put")
	wantError(t, "mode 0777, the tree not made yet", filepath.Join(open, "new", "tree"), open, false)
	// Deeper down: the first one from / is named.
	deep := mkdirMode(t, filepath.Join(tree, "sub"), 0o755)
	wantError(t, "mode 0777 two levels up", filepath.Join(deep, "tree"), open, false)

	// Writable by its group, of which another user is a member.
	grp := mkdirMode(t, filepath.Join(base, "grp"), 0o775)
	gtree := mkdirMode(t, filepath.Join(grp, "tree"), 0o755)
	fakeDatabases(t, grp, "intruder")
	wantError(t, "mode 0775", gtree, grp, false, "is writable by group ", "mode 0775", "(chmod g-w "+grp+")")
	passwdFile, groupFile = "/nonexistent", "/nonexistent"
	wantError(t, "mode 0775, a group the files do not list", gtree, grp, false, "is writable by group ")
	// Writable by others only.
	oth := mkdirMode(t, filepath.Join(base, "oth"), 0o757)
	wantError(t, "mode 0757", filepath.Join(oth, "tree"), oth, false, "is writable by others", "(chmod o-w "+oth+")")

	// A symbolic link to a tree under a bad directory: its real
	// directories are judged.
	link := filepath.Join(base, "link")
	if err := os.Symlink(tree, link); err != nil {
		t.Fatal(err)
	}
	wantError(t, "a link to a tree under mode 0777", link, open, false)
	// A link with a relative target, through "..".
	rel := filepath.Join(base, "rel")
	if err := os.Symlink("good/../open/tree", rel); err != nil {
		t.Fatal(err)
	}
	os.Symlink("tree", filepath.Join(base, "good"))
	wantError(t, "a relative link through ..", rel, open, false)
	// A link that lies in a bad directory, to a good tree: the
	// directory holding the link is judged (its users can replace it).
	badLink := filepath.Join(open, "link")
	if err := os.Symlink(good, badLink); err != nil {
		t.Fatal(err)
	}
	wantError(t, "a link in a directory of mode 0777", badLink, open, false)
	// A link of the user's in a good directory, to a good tree: passes,
	// and so does a path through it.
	goodLink := filepath.Join(base, "goodlink")
	if err := os.Symlink(good, goodLink); err != nil {
		t.Fatal(err)
	}
	if err := Check(goodLink); err != nil {
		t.Errorf("a link to a good tree: %v", err)
	}
	mkdirMode(t, filepath.Join(good, "sub"), 0o755)
	if err := Check(filepath.Join(goodLink, "sub")); err != nil {
		t.Errorf("a tree below a link to a good directory: %v", err)
	}
	// A loop of links.
	os.Symlink("loop2", filepath.Join(base, "loop1"))
	os.Symlink("loop1", filepath.Join(base, "loop2"))
	if err := Check(filepath.Join(base, "loop1", "tree")); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("a loop of links: %v", err)
	}
}

// TestCheckOwners: as root, a directory above the tree that
// belongs to another user is refused (the finding: the checkout of an
// ordinary user), as is a symbolic link of another user's on the way
// (in a sticky directory its owner can replace it); root's sticky
// directories (/tmp, /var/tmp) pass.
func TestCheckOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user, or making a sticky one of root's, needs root")
	}
	const nobody = 65534
	base := t.TempDir()
	co := mkdirMode(t, filepath.Join(base, "checkout"), 0o755)
	if err := os.Chown(co, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	run := mkdirMode(t, filepath.Join(co, "run"), 0o755) // root's, as make run makes it
	wantError(t, "a checkout of uid 65534", run, co, false, "belongs to ", "(uid 65534), not root's",
		"; make it root's (chown root "+co+") if its owner needs it no more, or put")

	sticky := mkdirMode(t, filepath.Join(base, "tmp"), 0o1777)
	st := mkdirMode(t, filepath.Join(sticky, "tree"), 0o755)
	if err := Check(st); err != nil {
		t.Errorf("a tree in root's sticky directory: %v", err)
	}
	// Group-writable and sticky, root's: passes too.
	syscall.Chmod(sticky, 0o1775)
	if err := Check(st); err != nil {
		t.Errorf("a tree in root's sticky directory of mode 1775: %v", err)
	}
	syscall.Chmod(sticky, 0o1777)
	// Another user's sticky directory: refused for its owner.
	if err := os.Chown(sticky, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	wantError(t, "a sticky directory of uid 65534", st, sticky, false, "belongs to ")
	os.Chown(sticky, 0, 0)

	// A link of another user's in root's sticky directory, to a good
	// tree: they can replace it.
	good := mkdirMode(t, filepath.Join(base, "good"), 0o755)
	link := filepath.Join(sticky, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if err := Check(link); err != nil {
		t.Errorf("root's link in root's sticky directory: %v", err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	wantError(t, "a link of uid 65534", link, link, true, "symbolic link "+link, "belongs to ", "point it at a tree of their own",
		"; make it root's (chown -h root "+link+") once you have checked where it points, or put")
	wantError(t, "a path through a link of uid 65534", filepath.Join(link, "tree"), link, true)
}

// fakeDatabases points privateGroup at a passwd and a group file of the
// test's: this process's user (named "owner") with dir's group as its
// primary group, and that group with the members given, until the test
// ends.
func fakeDatabases(t *testing.T, dir string, members ...string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	gid := st.Sys().(*syscall.Stat_t).Gid
	tmp := t.TempDir()
	pw := filepath.Join(tmp, "passwd")
	gr := filepath.Join(tmp, "group")
	if err := os.WriteFile(pw, []byte(fmt.Sprintf("owner:x:%d:%d::/:/bin/sh\n", os.Geteuid(), gid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gr, []byte(fmt.Sprintf("grp:x:%d:%s\n", gid, strings.Join(members, ","))), 0o644); err != nil {
		t.Fatal(err)
	}
	savedPw, savedGr := passwdFile, groupFile
	t.Cleanup(func() { passwdFile, groupFile = savedPw, savedGr })
	passwdFile, groupFile = pw, gr
}

// TestCheckPrivateGroup (QA rtoday8): a directory writable by its
// owner's own group (no member but the owner, nobody else's primary
// group), as a checkout is under umask 002 with user private groups
// (USERGROUPS_ENAB: 0775 user:user), lets no one else rename anything:
// it passes. A group with another member, or another user's primary
// group, does not.
func TestCheckPrivateGroup(t *testing.T) {
	base := t.TempDir()
	top := mkdirMode(t, filepath.Join(base, "hqmail"), 0o775)
	tree := filepath.Join(top, "run")
	fakeDatabases(t, top)
	if err := Check(tree); err != nil {
		t.Errorf("under a directory of mode 0775 of the owner's private group: %v", err)
	}
	fakeDatabases(t, top, "owner")
	if err := Check(tree); err != nil {
		t.Errorf("the group listing its owner as member: %v", err)
	}
	fakeDatabases(t, top, "owner", "bob")
	wantError(t, "a group with another member", tree, top, false, "is writable by group ")
	// Another user's primary group.
	fakeDatabases(t, top)
	st, _ := os.Stat(top)
	gid := st.Sys().(*syscall.Stat_t).Gid
	extra := fmt.Sprintf("bob:x:%d:%d::/:/bin/sh\n", os.Geteuid()+1, gid)
	f, err := os.OpenFile(passwdFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(extra)
	f.Close()
	wantError(t, "another user's primary group", tree, top, false, "is writable by group ")
}
