package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
)

// TestHoldEditReplacesLink: a control/holdremote (or holdlocal) that is a
// symbolic link is read through the link, but a hold or release that
// changes it replaces the link with a file of its own, or removes the
// link, and never writes its target, which may be a list shared by other
// hosts or trees: qmailctl says so on standard error, one line. (It was
// replaced silently, and an admin who kept a shared domain list there
// found it cut off at the first hold.) A change that leaves the flag as
// it is leaves the link too, and the target's mode is not touched.
func TestHoldEditReplacesLink(t *testing.T) {
	root := makeTree(t)
	ctl := filepath.Join(root, "control")
	shared := filepath.Join(t.TempDir(), "holdremote.shared")
	link := func(name, contents string, mode os.FileMode) {
		t.Helper()
		os.Remove(filepath.Join(ctl, name))
		if err := os.WriteFile(shared, []byte(contents), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(shared, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(shared, filepath.Join(ctl, name)); err != nil {
			t.Fatal(err)
		}
	}
	isLink := func(name string) bool {
		fi, err := os.Lstat(filepath.Join(ctl, name))
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	}
	sharedIs := func(what, want string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(shared)
		fi, serr := os.Stat(shared)
		if err != nil || serr != nil || string(b) != want || fi.Mode().Perm() != mode {
			t.Errorf("%s: the link's target now %q (%v, %v), mode %v; want %q, mode %v", what, b, err, serr, fi.Mode().Perm(), want, mode)
		}
	}
	notes := func(errs string) []string {
		var n []string
		for _, l := range strings.SplitAfter(errs, "\n") {
			if strings.HasPrefix(l, "qmailctl: note: ") {
				n = append(n, l)
			}
		}
		return n
	}
	replaced := "qmailctl: note: control/holdremote was a symbolic link to " + shared + ": it is a file of its own now, and " +
		shared + " is left as it was\n"
	removed := func(name string) string {
		return "qmailctl: note: control/" + name + " was a symbolic link to " + shared + ": the link is removed, and " +
			shared + " is left as it was\n"
	}

	// A hold that adds a domain: a file of its own, the target unchanged.
	link(hold.RemoteFile, "a.example\n", 0o644)
	code, out, errs := run(t, root, "hold", "remote", "b.example")
	if code != ExitNotRunning || out != "remote delivery held for a.example b.example\n" {
		t.Errorf("hold remote b.example: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if n := notes(errs); len(n) != 1 || n[0] != replaced {
		t.Errorf("hold remote b.example: notes %q, want %q", n, replaced)
	}
	if file, _ := readFlag(t, root, hold.RemoteFile); isLink(hold.RemoteFile) || file != "a.example\nb.example\n" {
		t.Errorf("control/holdremote: link %v, %q", isLink(hold.RemoteFile), file)
	}
	sharedIs("hold remote b.example", "a.example\n", 0o644)
	// The next change has no link to replace: no note.
	if _, _, errs := run(t, root, "hold", "remote", "c.example"); len(notes(errs)) != 0 {
		t.Errorf("hold remote c.example over a file: stderr %q", errs)
	}

	// A release that takes the last domain: the link is removed.
	link(hold.RemoteFile, "a.example\n", 0o644)
	code, out, errs = run(t, root, "release", "remote", "a.example")
	if code != ExitNotRunning || out != "remote delivery not held\n" {
		t.Errorf("release remote a.example: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if n := notes(errs); len(n) != 1 || n[0] != removed(hold.RemoteFile) {
		t.Errorf("release remote a.example: notes %q, want %q", n, removed(hold.RemoteFile))
	}
	if _, err := os.Lstat(filepath.Join(ctl, hold.RemoteFile)); !os.IsNotExist(err) {
		t.Errorf("control/holdremote after the release: %v", err)
	}
	sharedIs("release remote a.example", "a.example\n", 0o644)

	// Nothing to change: the link stays, no note, and its target's mode
	// (one qmails may not read) is left alone.
	link(hold.RemoteFile, "*\n", 0o600)
	code, out, errs = run(t, root, "hold", "remote")
	if code != ExitNotRunning || out != "remote delivery held (all destinations) (unchanged)\n" || len(notes(errs)) != 0 {
		t.Errorf("hold remote over a link that holds all: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !isLink(hold.RemoteFile) {
		t.Error("the link was replaced by a hold that changed nothing")
	}
	sharedIs("hold remote, unchanged", "*\n", 0o600)
	os.Remove(filepath.Join(ctl, hold.RemoteFile))

	// release local removes a linked holdlocal, the link alone.
	link(hold.LocalFile, "*\n", 0o644)
	code, out, errs = run(t, root, "release", "local")
	if code != ExitNotRunning || out != "local delivery not held\n" {
		t.Errorf("release local: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if n := notes(errs); len(n) != 1 || n[0] != removed(hold.LocalFile) {
		t.Errorf("release local: notes %q, want %q", n, removed(hold.LocalFile))
	}
	sharedIs("release local", "*\n", 0o644)
}
