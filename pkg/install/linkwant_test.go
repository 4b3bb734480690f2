package install

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestStaleLinkWant (QA rupgrade2): after an upgrade, a downgrade and a
// second upgrade, control/linkwant holds what the new programs recorded
// before the downgrade (hold), and queue/lock/linkwant what the older
// release's hooks recorded after it (release): a run says that the old
// file is newer, which word each says, and what to do, once; the files
// are left. An old file that is not newer gets no note.
func TestStaleLinkWant(t *testing.T) {
	root, o := installed(t)
	if err := hold.WriteLinkWant(root, "hold"); err != nil {
		t.Fatal(err)
	}
	for rel, s := range map[string]string{hold.OldLinkWantFile: "release\n", hold.OldLinkWantBootFile: "0f3c7a52-1d4e-4b8a-9c61-2e7f80a5d913\n"} {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctlTime := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(root, hold.LinkWantFile), ctlTime, ctlTime); err != nil {
		t.Fatal(err)
	}
	setOld := func(d time.Duration) {
		t.Helper()
		if err := os.Chtimes(filepath.Join(root, hold.OldLinkWantFile), ctlTime.Add(d), ctlTime.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	setOld(time.Hour)
	var log bytes.Buffer
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	note := "qmail-install: note: queue/lock/linkwant (says release) is newer than control/linkwant (says hold): "
	if n := strings.Count(log.String(), note); n != 1 {
		t.Errorf("the note given %d times, want once; log:\n%s", n, log.String())
	}
	for _, w := range []string{"qmailctl linkwant release while the link is up", "qmailctl linkwant hold while it is down",
		"or wait for the next link event", "remove queue/lock/linkwant and queue/lock/linkwant.boot"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("the note lacks %q; log:\n%s", w, log.String())
		}
	}
	if strings.Contains(log.String(), oldLinkWantNote) {
		t.Errorf("the note for a tree without control/linkwant given too; log:\n%s", log.String())
	}
	for _, rel := range []string{hold.OldLinkWantFile, hold.OldLinkWantBootFile} {
		if _, err := os.Lstat(filepath.Join(root, rel)); err != nil {
			t.Errorf("%s: %v, want it left", rel, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, hold.LinkWantFile)); string(b) != "hold\n" {
		t.Errorf("control/linkwant now %q", b)
	}
	// Something else than a word, in the old file: quoted.
	os.WriteFile(filepath.Join(root, hold.OldLinkWantFile), []byte("up\n"), 0o644)
	setOld(time.Hour)
	log.Reset()
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), `queue/lock/linkwant (says "up") is newer than control/linkwant (says hold)`) {
		t.Errorf("log:\n%s", log.String())
	}
	// Older than control/linkwant, or as old: no note.
	for _, d := range []time.Duration{-time.Hour, 0} {
		setOld(d)
		log.Reset()
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log.String(), "linkwant") {
			t.Errorf("queue/lock/linkwant %v newer than control/linkwant: a note:\n%s", d, log.String())
		}
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
