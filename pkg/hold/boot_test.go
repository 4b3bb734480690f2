package hold

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReleasedSinceBoot(t *testing.T) {
	if _, ok := procBootTime(); !ok {
		t.Error("no btime in /proc/stat")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	p := filepath.Join(root, LinkWantFile)
	boot := time.Now().Add(-time.Hour)
	saved := bootTime
	t.Cleanup(func() { bootTime = saved })
	bootTime = func() (time.Time, bool) { return boot, true }
	tests := []struct {
		name    string
		content string // "" for no file
		mtime   time.Time
		want    bool
	}{
		{"no file", "", time.Now(), false},
		{"release since boot", "release\n", time.Now(), true},
		{"hold since boot", "hold\n", time.Now(), false},
		{"release before boot", "release\n", boot.Add(-time.Minute), false},
		{"release at boot", "release\n", boot, true},
	}
	for _, tc := range tests {
		os.Remove(p)
		if tc.content != "" {
			os.WriteFile(p, []byte(tc.content), 0o644)
			os.Chtimes(p, tc.mtime, tc.mtime)
		}
		if got := ReleasedSinceBoot(root); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Unknown boot time: the safe side.
	os.WriteFile(p, []byte("release\n"), 0o644)
	bootTime = func() (time.Time, bool) { return time.Time{}, false }
	if ReleasedSinceBoot(root) {
		t.Error("released with an unknown boot time")
	}
}

// TestLinkWantLinks: linkwant is written as qmailctl writes the hold
// flags (qhome.ReplaceFile) and read without following a link. A link
// left at the temporary file's name (linkwant.tmp), or at linkwant
// itself, is never written through: each is replaced by a file; a
// linked linkwant is not read.
func TestLinkWantLinks(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "control")
	os.MkdirAll(dir, 0o755)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("root's\n"), 0o600)
	p := filepath.Join(root, LinkWantFile)
	pb := filepath.Join(root, LinkWantBootFile)
	for _, l := range []string{p, p + ".tmp", pb, pb + ".tmp"} {
		os.Symlink(victim, l)
	}
	if err := WriteLinkWant(root, "release"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's\n" {
		t.Fatalf("victim now %q", b)
	}
	for _, n := range []string{p, pb} {
		if fi, err := os.Lstat(n); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v", filepath.Base(n), fi, err)
		}
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "release\n" {
		t.Fatalf("linkwant %q %v", b, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// A linkwant that is a link to a file saying "release" is no release.
	saved := bootTime
	t.Cleanup(func() { bootTime = saved })
	bootTime = func() (time.Time, bool) { return time.Now().Add(-time.Hour), true }
	os.WriteFile(victim, []byte("release\n"), 0o600)
	os.Remove(p)
	os.Symlink(victim, p) // linkwant.boot names this boot
	if ReleasedSinceBoot(root) {
		t.Error("a linked linkwant was read")
	}
}

// TestOldLinkWantNotRead: queue/lock/linkwant, where qmailctl recorded
// the link's last event before, is qmailq's directory: qmailq could save
// a release of this boot root had written there and put it back after the
// next ip-down's hold (QA rtoday6). It is not read at all: with a
// release of this boot there, and nothing in control/, no release is
// seen; with a hold in control/, the hold is.
func TestOldLinkWantNotRead(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755)
	saved := bootTime
	t.Cleanup(func() { bootTime = saved })
	bootTime = func() (time.Time, bool) { return time.Now().Add(-time.Hour), true }
	if err := WriteLinkWant(root, "release"); err != nil {
		t.Fatal(err)
	}
	// The release of this boot, moved where qmailctl wrote it before.
	for _, n := range [][2]string{{LinkWantFile, OldLinkWantFile}, {LinkWantBootFile, OldLinkWantBootFile}} {
		if err := os.Rename(filepath.Join(root, n[0]), filepath.Join(root, n[1])); err != nil {
			t.Fatal(err)
		}
	}
	none := ReadLinkWantStamp(root)
	if ReleasedSinceBoot(root) {
		t.Error("a release in queue/lock counts, with nothing in control/")
	}
	if _, err := ReadLinkWant(root, LinkWantFile); !os.IsNotExist(err) {
		t.Errorf("ReadLinkWant with a release in queue/lock only: %v", err)
	}
	if err := WriteLinkWant(root, "hold"); err != nil {
		t.Fatal(err)
	}
	if ReleasedSinceBoot(root) {
		t.Error("a release in queue/lock counts over the hold in control/")
	}
	if ReadLinkWantStamp(root) == none {
		t.Error("the stamp does not see the hold recorded in control/")
	}
}

// TestReleasedSinceBootID: the boot is told by the boot id recorded in
// linkwant.boot, not by the clock. A host without a clock of its own
// records the ip-up's release before NTP steps the clock forward, which
// moves btime past the release's mtime: with the current boot id
// recorded it is still this boot's release. Another boot id is an
// earlier boot's, however recent the mtime. Without one (the kernel gave
// none when linkwant was written), or when the kernel gives none now, or
// when linkwant is newer than it (its writer died between the two), the
// mtime is compared with btime.
func TestReleasedSinceBootID(t *testing.T) {
	if _, ok := procBootID(); !ok {
		t.Errorf("no boot id in %s", bootIDFile)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	p, pb := filepath.Join(root, LinkWantFile), filepath.Join(root, LinkWantBootFile)
	const cur, other = "0f3c7a52-1d4e-4b8a-9c61-2e7f80a5d913", "8b2e4f10-77a3-4c0d-b5e9-f1a26c3d7e48"
	idFile := filepath.Join(t.TempDir(), "boot_id")
	os.WriteFile(idFile, []byte(cur+"\n"), 0o444)
	now := time.Now()
	boot := now.Add(-time.Hour)
	savedTime, savedID := bootTime, bootIDFile
	t.Cleanup(func() { bootTime, bootIDFile = savedTime, savedID })
	bootTime = func() (time.Time, bool) { return boot, true }
	bootIDFile = idFile
	before := boot.Add(-time.Minute) // a release before the clock's step
	tests := []struct {
		name     string
		content  string    // linkwant
		mtime    time.Time // linkwant's
		record   string    // linkwant.boot, "" for none
		recMtime time.Time
		noID     bool // the kernel gives no boot id
		want     bool
	}{
		{"this boot, clock stepped forward since", "release\n", before, cur + "\n", before, false, true},
		{"this boot, linkwant newer", "release\n", now, cur + "\n", before, false, true},
		{"this boot, hold", "hold\n", before, cur + "\n", before, false, false},
		{"earlier boot, clock stepped back since", "release\n", now, other + "\n", now, false, false},
		{"earlier boot", "release\n", before, other + "\n", before, false, false},
		{"earlier boot's id, linkwant newer, since btime", "release\n", now, other + "\n", before, false, true},
		{"earlier boot's id, linkwant newer, before btime", "release\n", before, other + "\n", before.Add(-time.Minute), false, false},
		{"no id recorded, since btime", "release\n", now, "", now, false, true},
		{"no id recorded, before btime", "release\n", before, "", now, false, false},
		{"junk recorded, since btime", "release\n", now, "not a boot id\n", now, false, true},
		{"junk recorded, before btime", "release\n", before, "not a boot id\n", before, false, false},
		{"no current id, since btime", "release\n", now, other + "\n", now, true, true},
		{"no current id, before btime", "release\n", before, cur + "\n", before, true, false},
	}
	for _, tc := range tests {
		os.Remove(p)
		os.Remove(pb)
		os.WriteFile(p, []byte(tc.content), 0o644)
		os.Chtimes(p, tc.mtime, tc.mtime)
		if tc.record != "" {
			os.WriteFile(pb, []byte(tc.record), 0o644)
			os.Chtimes(pb, tc.recMtime, tc.recMtime)
		}
		bootIDFile = idFile
		if tc.noID {
			bootIDFile = filepath.Join(root, "no-boot-id")
		}
		if got := ReleasedSinceBoot(root); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	bootIDFile = idFile

	// A linkwant.boot that is a link is not read: the old rule.
	os.Remove(pb)
	target := filepath.Join(t.TempDir(), "boot")
	os.WriteFile(target, []byte(cur+"\n"), 0o644)
	os.Symlink(target, pb)
	os.Chtimes(p, before, before)
	if ReleasedSinceBoot(root) {
		t.Error("a linked linkwant.boot was read")
	}
	os.Remove(pb)

	// WriteLinkWant records the boot id after the word: a release
	// recorded before the clock's step is this boot's after it.
	if err := WriteLinkWant(root, "release"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(pb); err != nil || string(b) != cur+"\n" {
		t.Fatalf("linkwant.boot %q %v", b, err)
	}
	if fi, err := os.Lstat(pb); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("linkwant.boot: %v, %v", fi, err)
	}
	bootTime = func() (time.Time, bool) { return time.Now().Add(time.Minute), true } // btime stepped past it
	if !ReleasedSinceBoot(root) {
		t.Error("a release of this boot held after btime moved past it")
	}
	// The next boot: the same files, another boot id.
	os.WriteFile(idFile, []byte(other+"\n"), 0o444)
	bootTime = func() (time.Time, bool) { return boot, true }
	if ReleasedSinceBoot(root) {
		t.Error("an earlier boot's release counts in this one")
	}
	// With no boot id from the kernel nothing is recorded beside the
	// word, which is still written.
	bootIDFile = filepath.Join(root, "no-boot-id")
	os.Remove(pb)
	if err := WriteLinkWant(root, "hold"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hold\n" {
		t.Errorf("linkwant %q", b)
	}
	if _, err := os.Lstat(pb); err == nil {
		t.Error("linkwant.boot written without a boot id")
	}
}
