package install

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
)

// TestOldLinkWant: a tree whose queue/lock/linkwant an older qmailctl
// wrote, and without control/linkwant, where qmailctl records the link's
// last event now, gets a note saying that the boot hold holds until the
// next link event; the old files are left. Once control/linkwant and
// linkwant.boot are there, no note is given, -check finds nothing in them,
// and a run leaves them as they are.
func TestOldLinkWant(t *testing.T) {
	root, o := installed(t)
	for rel, s := range map[string]string{hold.OldLinkWantFile: "release\n", hold.OldLinkWantBootFile: "0f3c7a52-1d4e-4b8a-9c61-2e7f80a5d913\n"} {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), "qmail-install: note: "+oldLinkWantNote+"\n"); n != 1 {
		t.Errorf("the note given %d times; log:\n%s", n, log.String())
	}
	for _, rel := range []string{hold.OldLinkWantFile, hold.OldLinkWantBootFile} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err != nil {
			t.Errorf("%s: %v, want it left", rel, err)
		}
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check with the old files: %q %v", dev, err)
	}

	if err := hold.WriteLinkWant(root, "hold"); err != nil {
		t.Fatal(err)
	}
	stat := func() map[string]syscall.Stat_t {
		m := map[string]syscall.Stat_t{}
		for _, rel := range []string{hold.LinkWantFile, hold.LinkWantBootFile} {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(root, rel), &st); err != nil {
				t.Fatal(err)
			}
			m[rel] = st
		}
		return m
	}
	before := stat()
	log.Reset()
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "linkwant") {
		t.Errorf("a note with control/linkwant there:\n%s", log.String())
	}
	if after := stat(); !equalStats(before, after) {
		t.Errorf("the run changed control/linkwant or linkwant.boot: %+v, then %+v", before, after)
	}
	if b, _ := os.ReadFile(filepath.Join(root, hold.LinkWantFile)); string(b) != "hold\n" {
		t.Errorf("control/linkwant now %q", b)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check with control/linkwant: %q %v", dev, err)
	}
}

// equalStats compares what a repair could change of each file: inode,
// owner, mode, size and modification time.
func equalStats(a, b map[string]syscall.Stat_t) bool {
	for rel, x := range a {
		y := b[rel]
		if x.Ino != y.Ino || x.Uid != y.Uid || x.Gid != y.Gid || x.Mode != y.Mode || x.Size != y.Size || x.Mtim != y.Mtim {
			return false
		}
	}
	return true
}
