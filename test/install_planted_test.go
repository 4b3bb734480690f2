package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// TestInstallPlantedLinks: the review's cases, with the real programs,
// as root. (1) With the root group-writable, qmails replaced bin/ with a
// link to a shared directory; the repair, having made the root 0755,
// followed it, put its programs there and made every file there
// root:qmail 0755 (a set-uid program lost its bit). A link of a qmail
// user's is never followed, nor a link in a directory others could write
// when the run began. (2) After "cp -al" and a wrong owner on heldmsgs
// (an old qmails uid), the repair replaced it with an empty file and the
// holds were lost; now it is left alone, with what to do. (3) With
// heldmsgs a symbolic link the repair exited 0 while qmail-send does not
// start; now 111, saying so.
func TestInstallPlantedLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("a repair as root needs root")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	// qmail-install from the build directory: bin/ of the tree may be a
	// link elsewhere.
	inst := harness.RequireBin(t, "qmail-install")
	run := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(inst, append([]string{"-root", tr.Root}, args...)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	// (1) A shared directory with a set-uid program.
	shared := filepath.Join(harness.TempRoot(t), "usr-local-bin")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	sudo := filepath.Join(shared, "sudo")
	os.WriteFile(sudo, []byte("#!/bin/sh\n"), 0o755)
	if err := syscall.Chmod(sudo, 0o4755); err != nil {
		t.Fatal(err)
	}
	bin := tr.Path("bin")
	if err := os.Chmod(tr.Root, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin, bin+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shared, bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(bin, ids.Qmails.UID, ids.Qmail); err != nil {
		t.Fatal(err)
	}
	untouched := func(what string) {
		t.Helper()
		ents, _ := os.ReadDir(shared)
		if len(ents) != 1 {
			t.Errorf("%s: the shared directory holds %d files", what, len(ents))
		}
		if st := statOf(t, sudo); st.Mode&0o7777 != 0o4755 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: sudo: mode %04o uid %d gid %d", what, st.Mode&0o7777, st.Uid, st.Gid)
		}
	}
	// A bin/ that is a link out of the tree, whoever's, is refused
	// before anything changes (qmail-install(8), bin/): the programs run
	// from there would find no tree.
	refusal := bin + ": is a symbolic link to " + shared + ": every program run from this bin/ finds its tree from where it really is"
	// A group-writable root is refused first, before anything changes
	// (qmail-install(8): another user could have filled it).
	out, code := run()
	if gw := tr.Root + " (mode 0775) can be written by its group "; code != 100 || !strings.Contains(out, gw) || !strings.Contains(out, "; nothing was changed") {
		t.Errorf("repair with a group-writable root: exit %d, want 100 and %q\n%s", code, gw, out)
	}
	untouched("root 0775")
	if fi, err := os.Stat(tr.Root); err != nil || fi.Mode().Perm() != 0o775 {
		t.Errorf("the root was changed by a refused run: %v %v", fi, err)
	}
	os.Chmod(tr.Root, 0o755)
	out, code = run()
	if code != 111 || !strings.Contains(out, refusal) {
		t.Errorf("repair again: exit %d, want 111 and %q\n%s", code, refusal, out)
	}
	if !strings.Contains(out, "; nothing was changed") {
		t.Errorf("repair again: %q lacks \"; nothing was changed\"", out)
	}
	untouched("root 0755")
	out, code = run("-check")
	for _, want := range []string{
		"qmail-install: warning: bin: is a symbolic link, want a directory: not followed, as the link belongs to qmails, not to root; nothing below it was checked\n",
		"qmail-install: warning: bin: is a symbolic link to " + shared + ": every program run from this bin/",
	} {
		if code != 100 || !strings.Contains(out, want) {
			t.Errorf("-check: exit %d, want 100 and %q\n%s", code, want, out)
		}
	}
	os.Remove(bin)
	if err := os.Rename(bin+".old", bin); err != nil {
		t.Fatal(err)
	}
	if out, code := run(); code != 0 {
		t.Fatalf("repair with bin/ back: exit %d\n%s", code, out)
	}

	// (2) A snapshot, and heldmsgs of an old qmails uid.
	held := tr.Path("queue", "bounce", "heldmsgs")
	const holds = "1234567 qmailctl\n"
	os.WriteFile(held, []byte(holds), 0o600)
	os.Chown(held, 12345, ids.Qmail)
	snap := filepath.Join(harness.TempRoot(t), "snap")
	if out, err := exec.Command("cp", "-al", tr.Root, snap).CombinedOutput(); err != nil {
		t.Fatalf("cp -al: %v\n%s", err, out)
	}
	out, code = run()
	want := held + ": 2 hard links and owner 12345, want qmails: left alone; remove the other link " +
		"and run qmail-install again (qmail-send does not start"
	if code != 111 || !strings.Contains(out, want) {
		t.Errorf("repair of a linked heldmsgs: exit %d, want 111 and %q\n%s", code, want, out)
	}
	// Only qmail-send's lock files are replaced: a tree's own, shared
	// with the snapshot, they would make the two exclude each other.
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "replaced") && !strings.Contains(l, "shared with another tree") {
			t.Errorf("the repair replaced a file of a snapshot whose owner and mode are right: %s", l)
		}
	}
	if b, _ := os.ReadFile(held); string(b) != holds {
		t.Errorf("heldmsgs now holds %q", b)
	}
	if st := statOf(t, held); st.Uid != 12345 || st.Nlink != 2 {
		t.Errorf("heldmsgs: uid %d, %d links", st.Uid, st.Nlink)
	}
	out, code = run("-check")
	if want := "qmail-install: warning: queue/bounce/heldmsgs: 2 hard links, want 1: a re-run leaves it alone while it must change"; code != 100 || !strings.Contains(out, want) {
		t.Errorf("-check: exit %d, want 100 and %q\n%s", code, want, out)
	}
	os.RemoveAll(snap)
	if out, code := run(); code != 0 {
		t.Errorf("repair once the snapshot is gone: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(held); string(b) != holds {
		t.Errorf("heldmsgs after the repair: %q", b)
	}
	if st := statOf(t, held); int(st.Uid) != ids.Qmails.UID {
		t.Errorf("heldmsgs after the repair: uid %d", st.Uid)
	}

	// (3) heldmsgs a symbolic link: qmail-send does not start.
	os.Rename(held, held+".real")
	if err := os.Symlink(held+".real", held); err != nil {
		t.Fatal(err)
	}
	out, code = run()
	if want := "qmail-send does not start: it cannot tell which messages qmailctl holds; left alone (put the file it names in its place, and run qmail-install again)"; code != 111 || !strings.Contains(out, want) {
		t.Errorf("repair with heldmsgs a link: exit %d, want 111 and %q\n%s", code, want, out)
	}
	os.Remove(held)
	os.Rename(held+".real", held)
	if out, code := run("-check"); code != 0 {
		t.Errorf("-check at the end: exit %d\n%s", code, out)
	}
}
