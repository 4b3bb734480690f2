package qhome

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const precious = "Troot-only contents\x00\n"

// dirLinkTree makes DIR/queue/remote/9/100 (a regular file) and a
// directory standing for a root-only one, DIR/secret, holding 100, 100.tmp
// and new's place. It returns the queue directory and the secret one.
func dirLinkTree(t *testing.T, base string) (q, secret string) {
	t.Helper()
	q = filepath.Join(base, "queue")
	if err := os.MkdirAll(filepath.Join(q, "remote", "9"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q, "remote", "9", "100"), []byte("Tz@y.example\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret = filepath.Join(base, "secret")
	if err := os.MkdirAll(filepath.Join(secret, "9"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(secret, "100"), filepath.Join(secret, "9", "100")} {
		if err := os.WriteFile(p, []byte(precious), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return q, secret
}

// checkSecret fails unless the secret directory holds exactly what
// dirLinkTree put there, unchanged.
func checkSecret(t *testing.T, secret, what string) {
	t.Helper()
	for _, dir := range []string{secret, filepath.Join(secret, "9")} {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		want := "100"
		if dir == secret {
			want = "100 9"
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%s: %s holds %q, want %q", what, dir, got, want)
		}
	}
	for _, p := range []string{filepath.Join(secret, "100"), filepath.Join(secret, "9", "100")} {
		if b, err := os.ReadFile(p); err != nil || string(b) != precious {
			t.Errorf("%s: %s changed: %q, %v", what, p, b, err)
		}
	}
}

// queueOps are the operations that must not follow a directory link below
// the queue directory, each on the file p.
var queueOps = map[string]func(p string) error{
	"read": func(p string) error { _, err := ReadQueueFile(p); return err },
	"open rdwr": func(p string) error {
		f, err := OpenQueueFile(p, os.O_RDWR)
		if err == nil {
			f.WriteAt([]byte("D"), 0)
			f.Close()
		}
		return err
	},
	"open create": func(p string) error {
		f, err := OpenQueueFile(p+"new", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err == nil {
			f.Close()
		}
		return err
	},
	"append":        func(p string) error { return AppendWhole(p, []byte("attacker\n"), 0o600, nil) },
	"append new":    func(p string) error { return AppendWhole(p+"new", []byte("attacker\n"), 0o600, nil) },
	"replace":       func(p string) error { return ReplaceFile(p, []byte("attacker\n"), 0o644, nil) },
	"remove":        RemoveQueueFile,
	"remove absent": func(p string) error { return RemoveQueueFile(p + "new") },
}

// TestQueueFileDirLink: a split directory (remote/9), or a channel
// directory (remote), replaced with a symbolic link to a root-only
// directory is refused by every queue-file operation, naming the link;
// nothing in the linked directory is read, written, made or removed. The
// tree may itself lie below a directory named queue: the last one counts.
func TestQueueFileDirLink(t *testing.T) {
	for _, base := range []string{"", "queue/tree"} {
		for _, linked := range []string{"remote/9", "remote"} {
			for name, op := range queueOps {
				dir := filepath.Join(t.TempDir(), base)
				q, secret := dirLinkTree(t, dir)
				link := filepath.Join(q, linked)
				if err := os.RemoveAll(link); err != nil {
					t.Fatal(err)
				}
				target := filepath.Join(secret, "9")
				if linked == "remote" {
					target = secret
				}
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				what := name + " with " + filepath.Join(base, "queue", linked) + " a link"
				err := op(filepath.Join(q, "remote", "9", "100"))
				if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), "directory "+link+" is a symbolic link") {
					t.Errorf("%s: %v", what, err)
				}
				checkSecret(t, secret, what)
			}
		}
	}
}

// TestQueueFileQueueDirLinkFollowed: the tree's queue directory itself
// may be a link (to another disk), and a path without a queue component
// is followed as before: only its last component is guarded.
func TestQueueFileQueueDirLinkFollowed(t *testing.T) {
	dir := t.TempDir()
	q, _ := dirLinkTree(t, filepath.Join(dir, "disk"))
	if err := os.Symlink(q, filepath.Join(dir, "queue")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "queue", "remote", "9", "100")
	if b, err := ReadQueueFile(p); err != nil || string(b) != "Tz@y.example\x00" {
		t.Errorf("through a linked queue directory: %q, %v", b, err)
	}
	if err := AppendWhole(p, []byte("Tw@x.example\x00"), 0o600, nil); err != nil {
		t.Errorf("append through a linked queue directory: %v", err)
	}
	if err := RemoveQueueFile(p); err != nil {
		t.Errorf("remove through a linked queue directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(q, "remote", "9", "100")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("not removed: %v", err)
	}

	// No queue component: a directory link is followed.
	plain := filepath.Join(dir, "plain")
	os.Mkdir(plain, 0o700)
	os.WriteFile(filepath.Join(plain, "f"), []byte("x"), 0o600)
	os.Symlink(plain, filepath.Join(dir, "alias"))
	if b, err := ReadQueueFile(filepath.Join(dir, "alias", "f")); err != nil || string(b) != "x" {
		t.Errorf("no queue component: %q, %v", b, err)
	}
	if err := ReplaceFile(filepath.Join(dir, "alias", "f"), []byte("y"), 0o600, nil); err != nil {
		t.Errorf("no queue component, replace: %v", err)
	}
}

// TestQueueFileOpsInTree: the walked operations work on an ordinary tree
// (and a relative path).
func TestQueueFileOpsInTree(t *testing.T) {
	dir := t.TempDir()
	q, _ := dirLinkTree(t, dir)
	p := filepath.Join(q, "remote", "9", "100")
	if err := AppendWhole(p, []byte("Tw@x.example\x00"), 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if err := AppendWhole(p+"1", []byte("new"), 0o640, nil); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFile(p+"2", []byte("replaced"), 0o640, nil); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	rel := filepath.Join("queue", "remote", "9", "100")
	if b, err := ReadQueueFile(rel); err != nil || string(b) != "Tz@y.example\x00Tw@x.example\x00" {
		t.Errorf("appended: %q, %v", b, err)
	}
	for name, want := range map[string]string{"1001": "new", "1002": "replaced"} {
		if b, err := ReadQueueFile(filepath.Join("queue", "remote", "9", name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
		if st, _ := os.Stat(filepath.Join("queue", "remote", "9", name)); st == nil || st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v", name, st)
		}
	}
	if _, err := os.Lstat(rel + "2.tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tmp file left: %v", err)
	}
	if err := RemoveQueueFile(rel); err != nil {
		t.Fatal(err)
	}
	if err := RemoveQueueFile(rel); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), rel) {
		t.Errorf("removing a missing file: %v", err)
	}
}

// TestRemoveQueueFile: a symbolic link at the path is removed itself, not
// its target; a directory there is an error and stays.
func TestRemoveQueueFile(t *testing.T) {
	q := filepath.Join(t.TempDir(), "queue")
	os.MkdirAll(filepath.Join(q, "bounce", "dir"), 0o700)
	target := filepath.Join(q, "..", "target")
	os.WriteFile(target, []byte(precious), 0o600)
	link := filepath.Join(q, "bounce", "100")
	os.Symlink(target, link)
	if err := RemoveQueueFile(link); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link not removed: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != precious {
		t.Errorf("target changed: %q", b)
	}
	if err := RemoveQueueFile(filepath.Join(q, "bounce", "dir")); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(q, "bounce", "dir")); err != nil {
		t.Errorf("directory removed: %v", err)
	}
}

// TestQueueFileHardLink: a queue file with a second link (a root file
// hard-linked into queue/bounce where fs.protected_hardlinks is off) is
// never opened for writing nor appended to; it is read (todo/ID is a hard
// link of intd/ID).
func TestQueueFileHardLink(t *testing.T) {
	q := filepath.Join(t.TempDir(), "queue")
	os.MkdirAll(filepath.Join(q, "bounce"), 0o700)
	target := filepath.Join(q, "..", "rootfile")
	os.WriteFile(target, []byte(precious), 0o600)
	p := filepath.Join(q, "bounce", "100")
	if err := os.Link(target, p); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadQueueFile(p); err != nil || string(b) != precious {
		t.Errorf("read of a hard link: %q, %v", b, err)
	}
	for _, flag := range []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_TRUNC, os.O_RDWR | os.O_CREATE | os.O_TRUNC} {
		f, err := OpenQueueFile(p, flag)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, ErrHardLink) || !strings.Contains(err.Error(), p) {
			t.Errorf("flag %#x: %v", flag, err)
		}
	}
	if err := AppendWhole(p, []byte("<x@y>:\nbounced\n\n"), 0o600, nil); !errors.Is(err, ErrHardLink) || !strings.Contains(err.Error(), p) {
		t.Errorf("append: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != precious {
		t.Errorf("hard-linked file changed: %q", b)
	}
	// One link: O_TRUNC still truncates, after the checks.
	os.Remove(target)
	f, err := OpenQueueFile(p, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(p); len(b) != 0 {
		t.Errorf("not truncated: %q", b)
	}
}

// TestTreeUnderQueueNamedDir: a tree kept under a directory named queue
// (/srv/queue/qmail) with control/ a link to /etc/qmail, a common layout:
// a control file is replaced through that link (only the tree's own
// queue/ is walked without links; qmailctl hold failed to edit
// holdremote), while the tree's queue/ is still walked.
func TestTreeUnderQueueNamedDir(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "queue", "qmail")
	etc := filepath.Join(dir, "etc-qmail")
	for _, d := range []string{root, etc, filepath.Join(root, "queue", "lock")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(etc, filepath.Join(root, "control")); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFile(filepath.Join(root, "control", "holdremote"), []byte("1\n"), 0o644, nil); err != nil {
		t.Fatalf("control file through a linked control/: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(etc, "holdremote")); string(b) != "1\n" {
		t.Fatalf("holdremote %q", b)
	}
	// The tree's queue/lock replaced by a link is still refused.
	os.Remove(filepath.Join(root, "queue", "lock"))
	os.Symlink(etc, filepath.Join(root, "queue", "lock"))
	if err := ReplaceFile(filepath.Join(root, "queue", "lock", "sendstatus"), []byte("hold\n"), 0o644, nil); !errors.Is(err, ErrSymlink) {
		t.Errorf("queue/lock as a link: %v, want ErrSymlink", err)
	}
}
