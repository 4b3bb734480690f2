package test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/test/harness"
)

// TestInstallFollowsRootLinks: users/ and control/ are root's, so a link
// there is root's own choice: qmail-install follows it with a warning
// (a symlinked users/assign made the repair exit 111 and left users/cdb
// stale), and control -> a directory elsewhere (/etc/qmail) gets its
// missing files there. A link in queue/ is still refused, saying what to
// do.
func TestInstallFollowsRootLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	out := harness.TempRoot(t)
	assign := filepath.Join(out, "assign")
	if err := os.WriteFile(assign, []byte("=qa:qa:4321:4321:/nonexistent:::\n.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(tr.Path("users", "assign"))
	if err := os.Symlink(assign, tr.Path("users", "assign")); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(out, "etc-qmail")
	if err := os.Rename(tr.Path("control"), etc); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(etc, tr.Path("control")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(etc, "plusdomain"))

	res, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root)
	if code != 0 {
		t.Fatalf("repair: exit %d\n%s", code, res)
	}
	for _, w := range []string{
		"qmail-install: warning: users/assign: a symbolic link to " + assign + "; its target's owner and mode are left as they are\n",
		"qmail-install: warning: control: a symbolic link to " + etc + "; its target's owner and mode are left as they are\n",
	} {
		if !strings.Contains(res, w) {
			t.Errorf("output lacks %q:\n%s", w, res)
		}
	}
	db, err := cdb.Open(tr.Path("users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Get([]byte("!qa\x00")); !ok {
		t.Errorf("users/cdb was not built from the linked users/assign")
	}
	db.Close()
	// A repair of an existing tree makes no control file: a missing
	// plusdomain stays missing (qmail's default, me, applies), in the
	// link's target too.
	if _, err := os.Lstat(filepath.Join(etc, "plusdomain")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plusdomain in control's target: %v, want it still missing", err)
	}
	if cout, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check"); code != 0 {
		t.Errorf("-check with the links: exit %d\n%s", code, cout)
	}

	// queue/ is qmailq's: a link there is refused, with what to do (as
	// root; in a tree of an ordinary user, queue/ is the caller's).
	if os.Geteuid() != 0 {
		return
	}
	bounce := tr.Path("queue", "bounce")
	if err := os.Rename(bounce, filepath.Join(out, "bounce")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(out, "bounce"), bounce); err != nil {
		t.Fatal(err)
	}
	res, code = tr.Run(t, nil, "qmail-install", "-root", tr.Root)
	want := bounce + ": is a symbolic link, want a directory: not followed, as queue/ belongs to qmailq; it and everything below it were left alone " +
		"(put the directory itself in its place, or remove the link, and run qmail-install again)"
	if code != 111 || !strings.Contains(res, want) {
		t.Errorf("queue/bounce a link: exit %d, want 111 and %q\n%s", code, want, res)
	}
}
