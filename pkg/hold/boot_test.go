package hold

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReleasedSinceBoot(t *testing.T) {
	if _, ok := procBootTime(); !ok {
		t.Error("no btime in /proc/stat")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755)
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

// TestLinkWantLinks: queue/lock is qmailq's and the writers and readers
// of linkwant run as root. A link planted at the name a writer's
// temporary file used to have (linkwant.PID), or at linkwant itself, is
// never written through, and a linked linkwant is not read.
func TestLinkWantLinks(t *testing.T) {
	root := t.TempDir()
	lock := filepath.Join(root, "queue", "lock")
	os.MkdirAll(lock, 0o755)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("root's\n"), 0o600)
	p := filepath.Join(root, LinkWantFile)
	os.Symlink(victim, p+"."+strconv.Itoa(os.Getpid()))
	os.Symlink(victim, p)
	pb := filepath.Join(root, LinkWantBootFile)
	os.Symlink(victim, pb)
	if err := WriteLinkWant(root, "release"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's\n" {
		t.Fatalf("victim now %q", b)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "release\n" {
		t.Fatalf("linkwant %q %v", b, err)
	}
	if fi, err := os.Lstat(pb); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("linkwant.boot: %v %v", fi, err)
	}
	// Writers racing: the last rename wins whole, no temporary file is
	// left.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := WriteLinkWant(root, [2]string{"hold", "release"}[(i+j)%2]); err != nil {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()
	if b, _ := os.ReadFile(p); string(b) != "hold\n" && string(b) != "release\n" {
		t.Errorf("linkwant after racing writers: %q", b)
	}
	ents, _ := os.ReadDir(lock)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "linkwant.tmp") || strings.HasPrefix(e.Name(), "linkwant.boot.tmp") {
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

// TestReleasedSinceBootID: the boot is told by the boot id recorded in
// linkwant.boot, not by the clock. A host without a clock of its own
// records the ip-up's release before NTP steps the clock forward, which
// moves btime past the release's mtime: with the current boot id
// recorded it is still this boot's release. Another boot id is an
// earlier boot's, however recent the mtime. Without one (an older
// qmailctl), or when the kernel gives none, or when linkwant is newer
// than it (an older qmailctl wrote linkwant alone), the mtime is
// compared with btime as before.
func TestReleasedSinceBootID(t *testing.T) {
	if _, ok := procBootID(); !ok {
		t.Errorf("no boot id in %s", bootIDFile)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755)
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
