package smtpd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLoadTLSNotAFile: a control/servercert.pem that is no regular file
// disables STARTTLS with a warning, as qmail-smtpd(8) says: a FIFO held
// every session before its greeting, past timeoutsmtpd, and a link to a
// device such as /dev/zero would read without end. /dev/null reads as an
// empty file: no certificate in it.
func TestLoadTLSNotAFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "servercert.pem")
	for _, tc := range []struct {
		name string
		make func() error
		want string
	}{
		{"fifo", func() error { return unix.Mkfifo(p, 0o600) }, "servercert.pem: not a regular file; STARTTLS disabled"},
		{"link to /dev/zero", func() error { return os.Symlink("/dev/zero", p) }, "servercert.pem: not a regular file; STARTTLS disabled"},
		{"directory", func() error { return os.Mkdir(p, 0o700) }, "servercert.pem: is a directory; STARTTLS disabled"},
		{"link to /dev/null", func() error { return os.Symlink(os.DevNull, p) }, "STARTTLS disabled"},
		{"sparse file of 10 GB", func() error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
			if err == nil {
				err = f.Truncate(10 << 30)
				f.Close()
			}
			return err
		}, "servercert.pem: file too large (over 64 MB); STARTTLS disabled"},
	} {
		if err := tc.make(); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadTLS(p)
		if cfg != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("servercert.pem a %s: %v, %v; want no TLS and a warning with %q", tc.name, cfg, err, tc.want)
		}
		os.Remove(p)
	}
}
