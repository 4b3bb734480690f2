package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// trustedRoot makes a tree as qmail-install leaves it, all of it the
// test's user's: the root, etc/ 0755, etc/ids 0644 naming uid 1234
// qmaild, queue/ 0750 (and its subdirectories, for a job to run in).
func trustedRoot(t *testing.T) string {
	t.Helper()
	root := newRoot(t)
	ids := qhome.SharedIDs(5000, 5000)
	ids.Shared = false
	ids.Qmaild = qhome.User{UID: 1234, GID: 1234}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	for p, m := range map[string]os.FileMode{".": 0o755, "etc": 0o755, qhome.IDsFile: 0o644, "queue": 0o750} {
		if err := os.Chmod(filepath.Join(root, p), m); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// refused wants openTree to refuse root for path (relative to it, "."
// the root), in an *untrustedError whose text has why.
func refused(t *testing.T, root string, owner int, path, why string) {
	t.Helper()
	tr, err := openTree(root, owner)
	if err == nil {
		tr.close()
		t.Fatalf("openTree accepted %s with %s %s", root, path, why)
	}
	var ue *untrustedError
	if !errors.As(err, &ue) {
		t.Fatalf("openTree: %v, want a refusal", err)
	}
	if want := filepath.Join(root, path); ue.path != want || ue.root != root ||
		!strings.Contains(err.Error(), want+" "+why) {
		t.Errorf("openTree refused %s for %s: %v; want it for %s %s", ue.root, ue.path, err, want, why)
	}
}

// TestOpenTreeInstalled: a tree with qmail-install's owners and modes
// passes, its ids read and its queue/ open.
func TestOpenTreeInstalled(t *testing.T) {
	root := trustedRoot(t)
	tr, err := openTree(root, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	if tr.ids == nil || tr.ids.Qmaild.UID != 1234 || tr.qfd < 0 || tr.qerr != nil {
		t.Errorf("tree %+v", tr)
	}
}

// TestOpenTreeWritable: a root, etc/, etc/ids or queue/ that a group or
// others may write is refused: its caller (or anyone) could have put
// what it likes there.
func TestOpenTreeWritable(t *testing.T) {
	for _, tc := range []struct {
		path string
		mode os.FileMode
		says string
	}{
		{".", 0o775, "0775"},
		{".", 0o757, "0757"},
		{"etc", 0o775, "0775"},
		{qhome.IDsFile, 0o664, "0664"},
		{qhome.IDsFile, 0o646, "0646"},
		{"queue", 0o770, "0770"},
		{".", 0o777 | os.ModeSticky, "1777"}, // /tmp: a bin/ there is anyone's
	} {
		root := trustedRoot(t)
		if err := os.Chmod(filepath.Join(root, tc.path), tc.mode); err != nil {
			t.Fatal(err)
		}
		refused(t, root, os.Geteuid(), tc.path, "is writable by group or others (mode "+tc.says+")")
	}
}

// TestOpenTreeOwner: a root, etc/, etc/ids or queue/ of a user other
// than root and the one qmail-queue runs as is refused. As root the
// test gives each to uid 65534 in turn; otherwise its own files stand
// for another user's when only root is trusted (owner -1, a set-gid
// qmail-queue).
func TestOpenTreeOwner(t *testing.T) {
	for _, p := range []string{".", "etc", qhome.IDsFile, "queue"} {
		root := trustedRoot(t)
		if os.Geteuid() != 0 {
			refused(t, root, -1, ".", "is owned by uid "+strconv.Itoa(os.Geteuid()))
			t.Skip("not root: giving the tree's files to another user needs root " +
				"(checked only that the test's own files are refused when only root is trusted)")
		}
		if err := os.Lchown(filepath.Join(root, p), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		refused(t, root, 64014, p, "is owned by uid 65534")
		// Owned by the user qmail-queue runs as (a tree of an ordinary
		// user, qmail-queue set-uid to them): trusted.
		tr, err := openTree(root, 65534)
		if err != nil {
			t.Errorf("%s of uid 65534, qmail-queue running as 65534: %v", p, err)
		} else {
			tr.close()
		}
	}
}

// TestOpenTreeLinks: the root's own links (etc/ or queue/ leading to
// another disk) are followed and what they lead to is checked; a queue
// link into a directory anyone may write is refused.
func TestOpenTreeLinks(t *testing.T) {
	root := trustedRoot(t)
	elsewhere := t.TempDir()
	os.Chmod(elsewhere, 0o755)
	q := filepath.Join(elsewhere, "queue")
	if err := os.Rename(filepath.Join(root, "queue"), q); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(q, filepath.Join(root, "queue")); err != nil {
		t.Fatal(err)
	}
	tr, err := openTree(root, os.Geteuid())
	if err != nil {
		t.Fatalf("queue a link to a directory like queue/: %v", err)
	}
	tr.close()
	os.Chmod(q, 0o777)
	refused(t, root, os.Geteuid(), "queue", "is writable by group or others (mode 0777)")
}

// TestOpenTreeMissing: a tree without etc/ids reads no ids (every caller
// "by uid N", as always); one without queue/ leaves its error to the job
// (62).
func TestOpenTreeMissing(t *testing.T) {
	root := trustedRoot(t)
	os.Remove(filepath.Join(root, qhome.IDsFile))
	if err := os.Rename(filepath.Join(root, "queue"), filepath.Join(root, "queue.old")); err != nil {
		t.Fatal(err)
	}
	tr, err := openTree(root, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	if tr.ids != nil || tr.qfd != -1 || tr.qerr == nil {
		t.Errorf("tree %+v", tr)
	}
	if code := Run(&Config{Root: root, Message: strings.NewReader("x\n"), Envelope: strings.NewReader("Fa@b\x00Tc@d\x00\x00"),
		UID: 1234, PID: 4321, Now: now, Who: whoIDs(tr.ids, 1234), tree: tr}); code != 62 {
		t.Errorf("exit %d, want 62", code)
	}
}

// TestTreeUsedByDescriptor: once checked, the tree is used through the
// descriptors that were checked: a root renamed away and replaced by
// another directory (a caller racing qmail-queue in a directory of its
// own) gets nothing, and the ids are those read at the check.
func TestTreeUsedByDescriptor(t *testing.T) {
	root := trustedRoot(t)
	tr, err := openTree(root, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	moved := root + ".checked"
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })
	newRootAt(t, root)
	c := &Config{Root: root, Message: strings.NewReader("x\n"), Envelope: strings.NewReader("Fa@b\x00Tc@d\x00\x00"),
		UID: 1234, PID: 4321, Now: now, Who: whoIDs(tr.ids, 1234), tree: tr}
	if code := Run(c); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if f := files(t, root); len(f) != 0 {
		t.Errorf("the replacement root got %v", f)
	}
	f := files(t, moved)
	if len(f) != 3 { // intd/ID, mess/S/ID, todo/ID
		t.Fatalf("the checked tree holds %v", f)
	}
	for _, p := range f {
		if strings.HasPrefix(p, "mess/") {
			b, _ := os.ReadFile(filepath.Join(moved, "queue", p))
			if !strings.HasPrefix(string(b), "Received: (qmail 4321 invoked from network); ") {
				t.Errorf("message %q", b)
			}
		}
	}
	// The tree's descriptors stay open after the job, for the next one
	// of a -m run.
	if code := Run(&Config{Root: root, Message: strings.NewReader("y\n"), Envelope: strings.NewReader("Fa@b\x00Tc@d\x00\x00"),
		UID: 1234, PID: 4321, Now: now, Who: whoIDs(tr.ids, 1234), tree: tr}); code != 0 {
		t.Errorf("second job: exit %d", code)
	}
}

// newRootAt makes newRoot's queue directories at root.
func newRootAt(t *testing.T, root string) {
	t.Helper()
	if err := os.Rename(newRoot(t), root); err != nil {
		t.Fatal(err)
	}
}
