package remote

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/control"
)

// TestLoadRootsNotAFile: a control/tlsca that is no regular file (a FIFO,
// which blocked the read for ever before the delivery connected; a
// directory) defers with the control-file report, as every control file
// does; a missing one leaves the system's roots.
func TestLoadRootsNotAFile(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &delivery{cfg: &Config{ctl: control.Open(root)}}
	if rep := d.loadRoots(); rep != nil || d.roots != nil {
		t.Fatalf("no tlsca: %+v, roots %v", rep, d.roots)
	}
	p := filepath.Join(ctl, "tlsca")
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
		rep := d.loadRoots()
		if rep == nil || rep.letter != 'Z' || rep.text != txtControl {
			t.Errorf("tlsca a %s: %+v, want Z %q", tc.name, rep, txtControl)
		}
		os.Remove(p)
	}
}

// TestLoadCredentialsNotAFile: a control/smtpauth that is no regular file
// is named as such, not as "readable by group or others" (which a
// directory's mode 0755 or a FIFO's 0644 said); a link to /dev/null is an
// empty file: no login, no error.
func TestLoadCredentialsNotAFile(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &delivery{cfg: &Config{ctl: control.Open(root)}}
	p := filepath.Join(ctl, "smtpauth")
	want := "Sorry, control/smtpauth is not a regular file; make it qmailr's with mode 0600. (#4.3.0)\n"
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
		if rep := d.loadCredentials(); rep == nil || rep.letter != 'Z' || rep.text != want {
			t.Errorf("smtpauth a %s: %+v, want Z %q", tc.name, rep, want)
		}
		os.Remove(p)
	}
	if err := os.Symlink(os.DevNull, p); err != nil {
		t.Fatal(err)
	}
	if rep := d.loadCredentials(); rep != nil || d.creds != nil {
		t.Errorf("smtpauth a link to /dev/null: %+v, credentials %v", rep, d.creds)
	}
}
