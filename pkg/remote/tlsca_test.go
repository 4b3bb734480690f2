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
