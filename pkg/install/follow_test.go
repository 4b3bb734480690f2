package install

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
)

// TestRepairFollowsRootLinks: in the directories only root writes (the
// root, bin/, control/, etc/, users/) a symbolic link can only be root's
// own choice: it is followed, with a warning, and its target's owner and
// mode are left as they are. A linked users/assign is read into
// users/cdb (the run failed and left users/cdb stale), a linked
// control/me is read for the name, and a linked control/ (-> /etc/qmail)
// is repaired as control/ itself (with me there, no missing control file
// is made). -check agrees.
func TestRepairFollowsRootLinks(t *testing.T) {
	root, o := installed(t)
	var log bytes.Buffer
	o.Log = &log
	install := func(what string) {
		t.Helper()
		log.Reset()
		if err := Install(o); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if dev, err := Check(root); err != nil || len(dev) != 0 {
			t.Errorf("%s: check %q %v", what, dev, err)
		}
	}
	// owner gives uid, gid and mode of p.
	owner := func(p string) (uint32, uint32, uint32) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid, st.Gid, st.Mode & 0o7777
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	out := searchableDir(t)

	// users/assign kept elsewhere, mode 0600.
	assign := filepath.Join(out, "assign")
	if err := os.WriteFile(assign, []byte("=joe:joe:1001:1001:/home/joe:::\n.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "users", "assign")
	os.Remove(p)
	if err := os.Symlink(assign, p); err != nil {
		t.Fatal(err)
	}
	install("users/assign a link")
	want := "qmail-install: warning: users/assign: a symbolic link to " + assign + "; its target's owner and mode are left as they are\n"
	if !strings.Contains(log.String(), want) {
		t.Errorf("log %q lacks %q", log.String(), want)
	}
	db, err := cdb.Open(filepath.Join(root, "users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Get([]byte("!joe\x00")); !ok || err != nil {
		t.Errorf("users/cdb lacks joe: %v %v", ok, err)
	}
	db.Close()
	if u, g, mode := owner(assign); u != uid || g != gid || mode != 0o600 {
		t.Errorf("the link's target: uid %d gid %d mode %04o", u, g, mode)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link is gone: %v", err)
	}

	// A link that leads nowhere: said, users/cdb not rebuilt, exit 111.
	os.Remove(assign)
	if err := Install(o); err == nil || !strings.Contains(err.Error(), p+": a symbolic link that cannot be read as a file") {
		t.Errorf("a dangling users/assign: %v", err)
	}
	os.Remove(p)

	// control -> a directory elsewhere (/etc/qmail), holding me, itself
	// a link to a file of root's (the name is read from it), locals and
	// rcpthosts: an existing tree, where no missing control file is made.
	ctl := filepath.Join(root, "control")
	etc := filepath.Join(out, "etc-qmail")
	os.Mkdir(etc, 0o755)
	os.Chmod(etc, 0o755)
	me := filepath.Join(out, "me")
	os.WriteFile(me, []byte("mail.linked.example\n"), 0o644)
	if err := os.Symlink(me, filepath.Join(etc, "me")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"locals", "rcpthosts"} {
		os.WriteFile(filepath.Join(etc, n), []byte("mail.linked.example\nlocalhost\nlocalhost.mail.linked.example\n"), 0o644)
	}
	if err := os.Rename(ctl, ctl+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(etc, ctl); err != nil {
		t.Fatal(err)
	}
	o.Me = "other.example"
	install("control a link")
	o.Me = ""
	for _, l := range []string{
		"qmail-install: warning: control: a symbolic link to " + etc + "; its target's owner and mode are left as they are\n",
		"qmail-install: note: control/me exists and says mail.linked.example; -me other.example changes nothing",
	} {
		if !strings.Contains(log.String(), l) {
			t.Errorf("log %q lacks %q", log.String(), l)
		}
	}
	for _, n := range []string{"defaultdomain", "plusdomain"} {
		if _, err := os.Lstat(filepath.Join(etc, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s made in a tree that has me: %v", n, err)
		}
	}
	if b, _ := os.ReadFile(me); string(b) != "mail.linked.example\n" {
		t.Errorf("me's target now holds %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(etc, "me")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("control/me's link is gone: %v", err)
	}
	if u, g, mode := owner(etc); u != uid || g != gid || mode != 0o755 {
		t.Errorf("control's target: uid %d gid %d mode %04o", u, g, mode)
	}
	os.Remove(ctl)
	if err := os.Rename(ctl+".saved", ctl); err != nil {
		t.Fatal(err)
	}
	install("links gone")
	if strings.Contains(log.String(), "symbolic link") {
		t.Errorf("log without links: %q", log.String())
	}
}

// TestRootLinkNotFollowedInOpenDir: a link in one of root's directories
// that another user may write is not followed: root did not necessarily
// put it there. Here users/ is root's link to a directory of mode 0777,
// which the repair leaves as it is.
func TestRootLinkNotFollowedInOpenDir(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	out := filepath.Join(searchableDir(t), "assign")
	os.WriteFile(out, []byte(".\n"), 0o600)
	users := filepath.Join(root, "users")
	real := filepath.Join(searchableDir(t), "users")
	os.Mkdir(real, 0o777)
	os.Chmod(real, 0o777)
	if err := os.Symlink(out, filepath.Join(real, "assign")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(users)
	if err := os.Symlink(real, users); err != nil {
		t.Fatal(err)
	}
	err := Install(o)
	want := filepath.Join(root, "users", "assign") + ": is a symbolic link, want a regular file: not followed, as users/ can be written by others than root; left alone"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
	var st syscall.Stat_t
	if syscall.Stat(out, &st) != nil || st.Mode&0o7777 != 0o600 {
		t.Errorf("the link's target: mode %04o", st.Mode&0o7777)
	}
	if _, err := os.Stat(filepath.Join(real, "cdb")); err == nil {
		t.Errorf("users/cdb made from a link not followed")
	}
}

// TestCheckFollowsRootLinks: -check follows a link in root's directories
// as the repair does: one that leads to the right kind is no deviation
// (its target's owner and mode are the administrator's), one that leads
// to another kind or nowhere is named, and nothing below it examined.
func TestCheckFollowsRootLinks(t *testing.T) {
	root, _ := installed(t)
	out := searchableDir(t)
	ctl := filepath.Join(root, "control")
	if err := os.Rename(ctl, filepath.Join(out, "control")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(out, "control"), ctl); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("control a link to a directory: %q %v", dev, err)
	}
	os.Remove(ctl)
	os.WriteFile(filepath.Join(out, "file"), nil, 0o644)
	os.Symlink(filepath.Join(out, "file"), ctl)
	want := "control: is a symbolic link to a regular file, want a directory; nothing below it was checked"
	if dev, _ := Check(root); len(dev) != 1 || dev[0] != want {
		t.Errorf("control a link to a file:\n got %q\nwant %q", dev, want)
	}
	os.Remove(ctl)
	os.Symlink(filepath.Join(out, "missing"), ctl)
	want = "control: is a symbolic link that cannot be followed (no such file or directory), want a directory; nothing below it was checked"
	if dev, _ := Check(root); len(dev) != 1 || dev[0] != want {
		t.Errorf("control a dangling link:\n got %q\nwant %q", dev, want)
	}
	os.Remove(ctl)
	os.Rename(filepath.Join(out, "control"), ctl)
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("no link: %q %v", dev, err)
	}
}
