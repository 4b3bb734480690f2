package usertools

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() {
		t.Fatalf("%s is not a directory", p)
	}
	return st.Mode().Perm()
}

func TestMaildirmakeModes(t *testing.T) {
	// The modes are 0700 whatever the umask: a lax one must not open the
	// Maildir, a strict one must not leave it unusable.
	for _, mask := range []int{0, 0o022, 0o077, 0o277} {
		// The temporary directory first: made under a umask of 0277 it
		// would have mode 0500, which only root could make the Maildir in.
		dir := filepath.Join(t.TempDir(), "Maildir")
		old := syscall.Umask(mask)
		var stderr bytes.Buffer
		code := MaildirmakeMain([]string{dir}, &stderr)
		syscall.Umask(old)
		if code != 0 || stderr.Len() != 0 {
			t.Fatalf("umask %03o: exit %d, %q", mask, code, stderr.String())
		}
		for _, p := range []string{"", "tmp", "new", "cur"} {
			if m := mode(t, filepath.Join(dir, p)); m != 0o700 {
				t.Errorf("umask %03o: %s/%s has mode %03o", mask, dir, p, m)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 3 {
			t.Errorf("umask %03o: %d entries in the Maildir", mask, len(ents))
		}
	}
}

func TestMaildirmakeExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o640)
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{dir}, &stderr); code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
	if !strings.Contains(stderr.String(), dir) || !strings.Contains(stderr.String(), "file already exists") {
		t.Errorf("message %q does not name %s and the cause", stderr.String(), dir)
	}
	// Untouched: mode, contents, no subdirectories added.
	if m := mode(t, dir); m != 0o750 {
		t.Errorf("mode changed to %03o", m)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("existing directory changed: %v", ents)
	}
	// A symbolic link by that name is not followed either.
	link := filepath.Join(t.TempDir(), "link")
	other := t.TempDir()
	os.Symlink(other, link)
	if code := MaildirmakeMain([]string{link}, &stderr); code != 111 {
		t.Fatalf("link: exit %d, want 111", code)
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("made %v through a link", ents)
	}
}

func TestMaildirmakeCannotMake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such", "Maildir")
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{dir}, &stderr); code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
	if want := "maildirmake: fatal: unable to make " + dir + ": file does not exist\n"; stderr.String() != want {
		t.Errorf("message %q, want %q", stderr.String(), want)
	}
}

func TestMaildirmakeUndo(t *testing.T) {
	// A failure after the directory was made (here: cur) removes what was
	// made, so that the command can be run again.
	mkdirat = func(fd int, path string, mode uint32) error {
		if path == "cur" {
			return unix.ENOSPC
		}
		return unix.Mkdirat(fd, path, mode)
	}
	t.Cleanup(func() { mkdirat = unix.Mkdirat })
	dir := filepath.Join(t.TempDir(), "Maildir")
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{dir}, &stderr); code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
	if !strings.Contains(stderr.String(), filepath.Join(dir, "cur")+": out of disk space") {
		t.Errorf("message %q", stderr.String())
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", dir, err)
	}
}

func TestMaildirmakeUsage(t *testing.T) {
	// The usage names -- too, the one option maildirmake(1) documents.
	for _, args := range [][]string{nil, {""}, {"a", "b"}, {"-x"}, {"--"}, {"--", ""}} {
		var stderr bytes.Buffer
		if code := MaildirmakeMain(args, &stderr); code != 100 || stderr.String() != "usage: maildirmake [--] dir\n" {
			t.Errorf("%q: exit %d, %q", args, code, stderr.String())
		}
	}
	// "--" lets a name start with a dash.
	t.Chdir(t.TempDir())
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{"--", "-box"}, &stderr); code != 0 {
		t.Fatalf("-- -box: exit %d, %q", code, stderr.String())
	}
	mode(t, "-box/new")
}
