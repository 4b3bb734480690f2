package remote

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/control"
)

// ctlDelivery returns a delivery that reads the control directory of a new
// tree, and that directory.
func ctlDelivery(t *testing.T) (*delivery, string) {
	t.Helper()
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	return &delivery{cfg: &Config{ctl: control.Open(root)}}, ctl
}

// notAFile puts at p in turn a FIFO and a directory, calls check with the
// kind, and removes it again.
func notAFile(t *testing.T, p string, check func(kind string)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"fifo", func() error { return unix.Mkfifo(p, 0o644) }},
		{"directory", func() error { return os.Mkdir(p, 0o755) }},
	} {
		if err := tc.f(); err != nil {
			t.Fatal(err)
		}
		check(tc.name)
		os.Remove(p)
	}
}

// TestLoadRootsNotAFile: a control/tlsca that is no regular file (a FIFO,
// which blocked the read for ever before the delivery connected; a
// directory) defers with the control-file report, as every control file
// does; a missing one leaves the system's roots.
func TestLoadRootsNotAFile(t *testing.T) {
	d, ctl := ctlDelivery(t)
	if rep := d.loadRoots(); rep != nil || d.roots != nil {
		t.Fatalf("no tlsca: %+v, roots %v", rep, d.roots)
	}
	notAFile(t, filepath.Join(ctl, "tlsca"), func(kind string) {
		rep := d.loadRoots()
		if rep == nil || rep.letter != 'Z' || rep.text != txtControl {
			t.Errorf("tlsca a %s: %+v, want Z %q", kind, rep, txtControl)
		}
	})
}

// TestLoadCredentialsNotAFile: a control/smtpauth that is no regular file
// is named as such, not as "readable by group or others" (which a
// directory's mode 0755 or a FIFO's 0644 said); a link to /dev/null is an
// empty file: no login, no error.
func TestLoadCredentialsNotAFile(t *testing.T) {
	d, ctl := ctlDelivery(t)
	p := filepath.Join(ctl, "smtpauth")
	want := "Sorry, control/smtpauth is not a regular file; make it qmailr's with mode 0600. (#4.3.0)\n"
	notAFile(t, p, func(kind string) {
		if rep := d.loadCredentials(); rep == nil || rep.letter != 'Z' || rep.text != want {
			t.Errorf("smtpauth a %s: %+v, want Z %q", kind, rep, want)
		}
	})
	if err := os.Symlink(os.DevNull, p); err != nil {
		t.Fatal(err)
	}
	if rep := d.loadCredentials(); rep != nil || d.creds != nil {
		t.Errorf("smtpauth a link to /dev/null: %+v, credentials %v", rep, d.creds)
	}
}
