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
	if err := WriteLinkWant(root, "release"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's\n" {
		t.Fatalf("victim now %q", b)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "release\n" {
		t.Fatalf("linkwant %q %v", b, err)
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
		if strings.HasPrefix(e.Name(), "linkwant.tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// A linkwant that is a link to a file saying "release" is no release.
	saved := bootTime
	t.Cleanup(func() { bootTime = saved })
	bootTime = func() (time.Time, bool) { return time.Now().Add(-time.Hour), true }
	os.WriteFile(victim, []byte("release\n"), 0o600)
	os.Remove(p)
	os.Symlink(victim, p)
	if ReleasedSinceBoot(root) {
		t.Error("a linked linkwant was read")
	}
}
