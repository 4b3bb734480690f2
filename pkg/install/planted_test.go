package install

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// plant makes a symbolic link at p to target that belongs to uid, as one
// a qmail user made (the test, as root, gives it away with lchown).
func plant(t *testing.T, target, p string, uid, gid int) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// sharedBin makes a directory outside the tree that stands for
// /usr/local/bin: root's, mode 0755, with a set-uid program, a program
// and a private script of root's, and returns it.
func sharedBin(t *testing.T) string {
	t.Helper()
	d := filepath.Join(searchableDir(t), "usr-local-bin")
	os.Mkdir(d, 0o755)
	os.Chmod(d, 0o755)
	for name, mode := range map[string]uint32{"sudo": 0o4755, "ls": 0o755, "backup": 0o700} {
		p := filepath.Join(d, name)
		os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600)
		if err := syscall.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestRepairRefusesPlantedLinks: a symbolic link in one of root's
// directories that belongs to a qmail user is not followed, whatever the
// directory's mode is now: qmails, while the root was group-writable,
// replaced bin/ with a link to a shared directory, and once the root was
// 0755 again (an earlier repair's chmod) the repair followed it, dropped
// its programs there and gave every file there root:qmail 0755 (a
// set-uid sudo lost its bit); a qmails-owned users/assign was compiled
// into users/cdb. Each is named, with why and what to do, the run exits
// 111, nothing outside the tree changes, and -check names them too. (A
// bin/ that is a link out of the tree, planted or root's, is now refused
// before the repair changes anything: binelsewhere.go.)
func TestRepairRefusesPlantedLinks(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	qs, qg := ids.Qmails.UID, ids.Qmail

	out := sharedBin(t)
	bin := filepath.Join(root, "bin")
	if err := os.Rename(bin, bin+".old"); err != nil {
		t.Fatal(err)
	}
	plant(t, out, bin, qs, qg)
	assign := filepath.Join(searchableDir(t), "assign")
	os.WriteFile(assign, []byte("=joe:joe:1001:1001:/home/joe:::\n.\n"), 0o644)
	os.Remove(filepath.Join(root, "users", "assign"))
	plant(t, assign, filepath.Join(root, "users", "assign"), qs, qg)
	db := filepath.Join(searchableDir(t), "aliases.cdb")
	os.WriteFile(db, make([]byte, 2048), 0o644)
	plant(t, db, filepath.Join(root, "etc", "aliases.cdb"), qs, qg)
	before := snapshot(t, filepath.Dir(out))
	beforeDB := snapshot(t, filepath.Dir(db))
	beforeTree := snapshot(t, root)

	// A bin/ that is a link out of the tree, whoever's, is refused
	// before anything changes (binelsewhere.go).
	err := Install(o)
	if err == nil || qerr.ExitCode(err) != 111 || !strings.HasPrefix(err.Error(), bin+": is a symbolic link to "+out+": ") ||
		!strings.HasSuffix(err.Error(), "; nothing was changed") {
		t.Fatalf("repair with bin a planted link: %v, want exit 111 and the refusal", err)
	}
	sameSnapshot(t, "bin a planted link", before, snapshot(t, filepath.Dir(out)))
	sameSnapshot(t, "bin a planted link (the tree)", beforeTree, snapshot(t, root))
	dev, _ := Check(root)
	if want := "bin: is a symbolic link, want a directory: not followed, as the link belongs to qmails, not to root; nothing below it was checked"; !slices.Contains(dev, want) {
		t.Errorf("check %q lacks %q", dev, want)
	}
	os.Remove(bin)
	if err := os.Rename(bin+".old", bin); err != nil {
		t.Fatal(err)
	}

	err = Install(o)
	if err == nil || qerr.ExitCode(err) != 111 {
		t.Fatalf("repair: %v, want exit 111", err)
	}
	for _, want := range []string{
		filepath.Join(root, "users", "assign") + ": is a symbolic link, want a regular file: not followed, as the link belongs to qmails, not to root; left alone",
		filepath.Join(root, "etc", "aliases.cdb") + ": is a symbolic link, want a regular file: not followed, as the link belongs to qmails, not to root: " +
			aliasesEffect + "; left alone (put the file it names in its place, and run qmail-install again)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	sameSnapshot(t, "etc/aliases.cdb a planted link", beforeDB, snapshot(t, filepath.Dir(db)))
	if c, err := cdb.Open(filepath.Join(root, "users", "cdb")); err == nil {
		if _, ok, _ := c.Get([]byte("!joe\x00")); ok {
			t.Errorf("users/cdb compiled from a planted users/assign")
		}
		c.Close()
	}
	dev, _ = Check(root)
	for _, want := range []string{
		"users/assign: is a symbolic link, want a regular file: not followed, as the link belongs to qmails, not to root",
		"etc/aliases.cdb: is a symbolic link, want a regular file: not followed, as the link belongs to qmails, not to root: " +
			aliasesEffect + " (put the file it names in its place)",
	} {
		if !slices.Contains(dev, want) {
			t.Errorf("check %q lacks %q", dev, want)
		}
	}

	// Root's own links there are followed, as before.
	for _, p := range []string{filepath.Join(root, "users", "assign"), filepath.Join(root, "etc", "aliases.cdb")} {
		if err := os.Lchown(p, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := Install(o); err != nil {
		t.Fatalf("root's links: %v", err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check of root's links: %q %v", dev, err)
	}
}

// TestRepairLinkInDirOpenToOthers: a root directory a group can write
// (chmod 775; its group is qmail) when the run begins is refused before
// anything changes (rootTrusted): qmail's users could have put a link,
// or a control/ of theirs, there. Once the administrator has looked and
// made it 0755, the run follows root's link.
// (control/ stands for the link: a bin/ link out of the tree is refused
// whatever its owner, binelsewhere.go.)
func TestRepairLinkInDirOpenToOthers(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	out := filepath.Join(searchableDir(t), "etc-qmail")
	ctl := filepath.Join(root, "control")
	if err := os.Rename(ctl, out); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, ctl); err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o775)
	before := snapshot(t, out)
	err := Install(o)
	want := root + " (mode 0775) can be written by its group "
	if err == nil || qerr.ExitCode(err) != 100 || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "; nothing was changed") {
		t.Errorf("repair: %v, want exit 100 and %q", err, want)
	}
	sameSnapshot(t, "control a link in a 0775 root", before, snapshot(t, out))
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o775 {
		t.Errorf("the root after the refused run: %v %v", fi, err)
	}
	// Made 0755 by the administrator, root's link is followed.
	os.Chmod(root, 0o755)
	if err := Install(o); err != nil {
		t.Errorf("the run again: %v", err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check: %q %v", dev, err)
	}
}

// TestRepairTouchesOnlyPrograms: the repair copies hqmail's programs and
// gives only those their owner and mode. An administrator's own script in
// bin/ keeps its owner and mode, and so does every file of a shared
// directory bin/ is root's link to (/usr/local/bin): every regular file
// there became root:qmail 0755, and a set-uid program lost its bit; such a
// bin/ is now refused before anything changes. -check compares only the
// programs too.
func TestRepairTouchesOnlyPrograms(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	mine := filepath.Join(root, "bin", "site-script")
	os.WriteFile(mine, []byte("#!/bin/sh\n"), 0o700)
	syscall.Chmod(mine, 0o4710)
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check with a script of the administrator's: %q %v", dev, err)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mine, &st); err != nil || st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o4710 {
		t.Errorf("the administrator's script: uid %d gid %d mode %04o %v", st.Uid, st.Gid, st.Mode&0o7777, err)
	}

	// A bin/ that is root's link to a shared directory is no longer
	// taken: every program run from there would find no tree
	// (TestBinElsewhere). Nothing there changes.
	out := sharedBin(t)
	bin := filepath.Join(root, "bin")
	os.RemoveAll(bin)
	if err := os.Symlink(out, bin); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, out)
	if err := Install(o); err == nil || qerr.ExitCode(err) != 111 {
		t.Errorf("bin a link to a shared directory: %v, want exit 111", err)
	}
	sameSnapshot(t, "bin a link to a shared directory", before, snapshot(t, out))
	if st := before["sudo"]; st.mode&0o7777 != 0o4755 {
		t.Fatalf("the set-uid program was not made so: %o", st.mode)
	}
}

// TestRepairSaysSendStops: the repair never changes a control file, but
// one qmail-send reads and cannot (qmails cannot read it, or it is no
// file) keeps qmail-send from starting: the run says so and exits 111
// (it exited 0 while -check said qmail-send does not start).
func TestRepairSaysSendStops(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	locals := filepath.Join(root, "control", "locals")
	os.Chmod(locals, 0o600)
	bf := filepath.Join(root, "control", "bouncefrom")
	os.Mkdir(bf, 0o755)
	err := Install(o)
	for _, want := range []string{
		"control/bouncefrom: is a directory, want a regular file: qmail-send does not start (replace it by a regular file); left alone (qmail-install never changes a control file)",
		"control/locals: not readable by qmails (qmail-send): mode 0600, owner root, group qmail (chmod 644): qmail-send does not start; left alone (qmail-install never changes a control file)",
	} {
		if err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), want) {
			t.Errorf("repair: %v, want exit 111 and %q", err, want)
		}
	}
	if fi, err := os.Stat(locals); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("locals changed: %v %v", fi, err)
	}
	os.Chmod(locals, 0o644)
	os.Remove(bf)
	if err := Install(o); err != nil {
		t.Errorf("repair once they are readable: %v", err)
	}
}

// TestCheckNamesEveryRepair: -check names what the repair changes. It
// said nothing of an etc/aliases.cdb of alias:nofiles 0600 (alias reads
// it) that the repair gives mode 0644, of a missing control file the
// repair makes (TestCheckNewTreeWithoutMe, TestTakeoverWithoutMe), or of
// a users/cdb that is not users/assign compiled, which the repair
// rebuilds.
func TestCheckNamesEveryRepair(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	db := filepath.Join(root, "etc", "aliases.cdb")
	os.WriteFile(db, make([]byte, 2048), 0o600)
	os.Chown(db, ids.Alias.UID, ids.Nofiles)
	assign := filepath.Join(root, "users", "assign")
	b, _ := os.ReadFile(assign)
	os.WriteFile(assign, append([]byte("=joe:joe:1001:1001:/home/joe:::\n"), b...), 0o644)
	want := []string{
		"etc/aliases.cdb: mode 0600, want 0644",
		"users/cdb: not compiled from the users/assign there (a re-run rebuilds it, as qmail-newu does)",
	}
	dev, err := Check(root)
	if err != nil || len(dev) != len(want) {
		t.Errorf("check: %q %v, want %q", dev, err, want)
	}
	for _, l := range want {
		if !slices.Contains(dev, l) {
			t.Errorf("check %q lacks %q", dev, l)
		}
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the repair: %q %v", dev, err)
	}
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("aliases.cdb: %v %v", fi, err)
	}

	// A users/assign the repair cannot compile is said.
	os.WriteFile(assign, []byte("no format\n"), 0o644)
	dev, _ = Check(root)
	if len(dev) != 1 || !strings.HasSuffix(dev[0], ": users/cdb cannot be rebuilt (the repair fails)") {
		t.Errorf("check of a bad users/assign: %q", dev)
	}
}
