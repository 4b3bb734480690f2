package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// TestInstallLinksAsRoot: the repair run as root never follows a link a
// qmail user put in a directory it owns, never changes a file with a
// second name through that name (a record that must change is left alone
// and named, a cache replaced), and -check names both, as well as an
// aliases database the alias user cannot read; a directory that is a link
// is named once by -check, nothing below it.
func TestInstallLinksAsRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("a repair as root needs root")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	check := func(what string, wantCode int, want ...string) {
		t.Helper()
		out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check")
		if code != wantCode {
			t.Errorf("%s: -check exit %d, want %d\n%s", what, code, wantCode, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: -check output lacks %q:\n%s", what, w, out)
			}
		}
	}
	repair := func(what string, wantCode int, want ...string) {
		t.Helper()
		out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root)
		if code != wantCode {
			t.Errorf("%s: repair exit %d, want %d\n%s", what, code, wantCode, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: repair output lacks %q:\n%s", what, w, out)
			}
		}
	}

	// qmails links qmailr's tcpto into queue/bounce (it owns it): the
	// repair gave the one file to qmailr 0664, then to qmails 0600, on
	// every run. Now tcpto (right) is left as it is, and holdperiods
	// (a record, that must change) left alone and named.
	tcpto, hp := tr.Path("queue", "lock", "tcpto"), tr.Path("queue", "bounce", "holdperiods")
	if err := os.Link(tcpto, hp); err != nil {
		t.Fatal(err)
	}
	check("tcpto linked", 100, "qmail-install: warning: queue/bounce/holdperiods: 2 hard links, want 1: a re-run leaves it alone while it must change; "+
		"remove the other link and run qmail-install again")
	repair("tcpto linked", 111, hp+": 2 hard links and owner qmailr, want qmails and mode 0664, want 0600: left alone; remove the other link")
	if st := statOf(t, tcpto); st.Nlink != 2 || int(st.Uid) != ids.Qmailr.UID || st.Mode&0o7777 != 0o664 {
		t.Errorf("tcpto: links %d uid %d mode %04o; want 2 %d 0664", st.Nlink, st.Uid, st.Mode&0o7777, ids.Qmailr.UID)
	}
	os.Remove(hp)
	repair("the link removed", 0)
	check("after the repair", 0)

	// alias swaps its Maildir for a link to a directory outside: the
	// repair leaves it, and makes nothing there.
	out := filepath.Join(harness.TempRoot(t), "var")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	md := tr.Path("alias", "Maildir")
	if err := os.Rename(md, md+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, md); err != nil {
		t.Fatal(err)
	}
	repair("Maildir a link", 111, md+": is a symbolic link, want a directory: not followed")
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("made in the link's target: %v", ents)
	}
	if st := statOf(t, out); st.Uid != 0 || st.Mode&0o7777 != 0o755 {
		t.Errorf("the link's target: uid %d mode %04o", st.Uid, st.Mode&0o7777)
	}

	// qmails swaps queue/bounce for a link to a directory of root's
	// (mode 0700, holding records of root's) as well: -check names each
	// link once, and says nothing of what is below it (it advised
	// "chmod o+x" of the target and a chown of the files there).
	secret := filepath.Join(harness.TempRoot(t), "secret")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"holdperiods", "heldmsgs"} {
		os.WriteFile(filepath.Join(secret, n), []byte("root's\n"), 0o600)
	}
	for _, n := range []string{"cur", "new", "tmp"} {
		os.Mkdir(filepath.Join(out, n), 0o700)
	}
	bounce := tr.Path("queue", "bounce")
	if err := os.Rename(bounce, bounce+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, bounce); err != nil {
		t.Fatal(err)
	}
	cout, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check")
	want := "qmail-install: warning: alias/Maildir: is a symbolic link, want a directory: not followed; nothing below it was checked\n" +
		"qmail-install: warning: queue/bounce: is a symbolic link, want a directory: not followed; nothing below it was checked\n"
	if code != 100 || cout != want {
		t.Errorf("-check of two links: exit %d\n got %q\nwant %q", code, cout, want)
	}
	for _, target := range []string{out, secret} {
		if strings.Contains(cout, target) {
			t.Errorf("-check names %s, outside the tree:\n%s", target, cout)
		}
	}
	repair("queue/bounce a link", 111, bounce+": is a symbolic link, want a directory: not followed")
	if st := statOf(t, secret); st.Uid != 0 || st.Mode&0o7777 != 0o700 {
		t.Errorf("queue/bounce's target: uid %d mode %04o", st.Uid, st.Mode&0o7777)
	}
	for _, n := range []string{"holdperiods", "heldmsgs"} {
		if st := statOf(t, filepath.Join(secret, n)); st.Uid != 0 || st.Mode&0o7777 != 0o600 {
			t.Errorf("%s in queue/bounce's target: uid %d mode %04o", n, st.Uid, st.Mode&0o7777)
		}
	}
	os.Remove(bounce)
	if err := os.Rename(bounce+".real", bounce); err != nil {
		t.Fatal(err)
	}
	os.Remove(md)
	if err := os.Rename(md+".real", md); err != nil {
		t.Fatal(err)
	}

	// An aliases database only root can read defers every alias delivery.
	db := tr.Path("etc", "aliases.cdb")
	src := filepath.Join(harness.TempRoot(t), "aliases")
	if err := os.WriteFile(src, []byte("postmaster: root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := tr.Run(t, nil, "newaliases", "-f", src); code != 0 {
		t.Fatalf("newaliases: %d %s", code, out)
	}
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}
	check("aliases.cdb 0600", 100, "etc/aliases.cdb: not readable by alias (fastforward): mode 0600")
	repair("aliases.cdb 0600", 0)
	var st syscall.Stat_t
	if err := syscall.Stat(db, &st); err != nil || st.Mode&0o7777 != 0o644 {
		t.Errorf("aliases.cdb after repair: mode %04o %v", st.Mode&0o7777, err)
	}
	check("the end", 0)
}
