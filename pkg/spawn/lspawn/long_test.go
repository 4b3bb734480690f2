package lspawn

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/local"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

// TestDeliverLongRequest: in keep mode, a delivery whose request is longer
// than a kept qmail-local reads (a control/defaultdelivery of 70 KB;
// qmail-start takes up to 128 KB) is made one-shot and delivers, as with
// control/localcache 0, instead of being cut short (which bounced it with
// qmail-local's usage line); a short one still goes to a kept process.
// The real qmail-local (the test binary, HQ_LSPAWN_TTY=local) delivers to
// a Maildir.
func TestDeliverLongRequest(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(dir, "home")
	for _, d := range []string{"users", "control", "home/Maildir/tmp", "home/Maildir/new", "home/Maildir/cur"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid := os.Getuid(), os.Getgid()
	exe := os.Args[0]
	if uid == 0 {
		// As root, qmail-local runs as a user no account has, who owns
		// the home; the test binary is a copy it can run.
		uid, gid = 4242, 4242
		for _, d := range []string{"home", "home/Maildir", "home/Maildir/tmp", "home/Maildir/new", "home/Maildir/cur"} {
			if err := os.Chown(filepath.Join(dir, d), uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		exe = filepath.Join(dir, "qmail-local")
		testutil.CopyTestBinary(t, exe)
	}
	recs := []cdb.Record{
		{Key: []byte("!joe\x00"), Data: []byte(val("joe", strconv.Itoa(uid), strconv.Itoa(gid), home, "", ""))},
		{Key: []byte(""), Data: nil},
	}
	if err := cdb.WriteFile(filepath.Join(dir, "users", "cdb"), 0o644, recs); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HQ_LSPAWN_TTY", "local") // the test binary is the real qmail-local

	long := "# " + strings.Repeat("x", 70<<10) + "\n./Maildir/\n"
	if n := len(keep.Join("--", "joe", home, "joe", "", "", "x", "s@x", long)); n <= local.MaxKeepRequest {
		t.Fatalf("request of %d bytes: not longer than a kept qmail-local reads (%d)", n, local.MaxKeepRequest)
	}
	delivered := 0
	for _, tc := range []struct {
		name, dd string
		idle     int // kept processes after the delivery
	}{
		{"long", long, 0},
		{"short", "./Maildir/\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(dir, tc.dd)
			l.QmailLocal = exe
			l.Self = os.Getuid()
			l.Switch = os.Getuid() == 0
			l.NewKeep()
			l.KeepGetpw = nil // users/cdb answers
			t.Cleanup(l.Keep.Close)
			if letter, txt := deliver(t, l, "joe@x"); letter != 'K' || txt != "did 1+0+0\n" {
				t.Errorf("got %c %q, want K %q", letter, txt, "did 1+0+0\n")
			} else {
				delivered++
			}
			if n := l.Keep.Idle(); n != tc.idle {
				t.Errorf("%d kept qmail-local after the delivery, want %d", n, tc.idle)
			}
		})
	}
	ents, err := os.ReadDir(filepath.Join(home, "Maildir", "new"))
	if err != nil || len(ents) != delivered {
		t.Errorf("Maildir/new: %d messages (%v), want %d", len(ents), err, delivered)
	}
}
