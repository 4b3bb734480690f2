package hold

import (
	"os"
	"path/filepath"
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
