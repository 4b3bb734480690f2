package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTcpokRefusesLinks: qmail-tcpok, run as root, zero-fills a regular
// queue/lock/tcpto, but a link qmailq planted there (queue/lock is its
// directory) is refused with exit 111 and a message saying why, and its
// target (standing for a root-only file) keeps its bytes.
func TestTcpokRefusesLinks(t *testing.T) {
	t.Chdir(t.TempDir()) // run changes directory; put it back afterwards
	seen := bytes.Repeat([]byte{7}, 1024)
	for _, tc := range []struct {
		name string
		make func(lock, target string) error
		want string // in the message; "" = success
	}{
		{"regular file", func(lock, target string) error {
			return os.WriteFile(filepath.Join(lock, "tcpto"), seen, 0o664)
		}, ""},
		{"symbolic link", func(lock, target string) error {
			return os.Symlink(target, filepath.Join(lock, "tcpto"))
		}, "unable to open queue/lock/tcpto: is a symbolic link; not followed"},
		{"hard link", func(lock, target string) error {
			return os.Link(target, filepath.Join(lock, "tcpto"))
		}, "unable to open queue/lock/tcpto: has more than one link"},
		{"queue/lock a link", func(lock, target string) error {
			dir := filepath.Dir(target)
			os.Rename(target, filepath.Join(dir, "tcpto"))
			os.Remove(lock)
			return os.Symlink(dir, lock)
		}, "is a symbolic link; not followed"},
		{"missing", func(lock, target string) error { return nil }, "unable to open queue/lock/tcpto: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			lock := filepath.Join(root, "queue", "lock")
			secret := filepath.Join(root, "secret")
			for _, d := range []string{lock, secret} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			target := filepath.Join(secret, "rootfile")
			if err := os.WriteFile(target, seen, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := tc.make(lock, target); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			code := run(root, &stderr)
			if tc.want == "" {
				b, _ := os.ReadFile(filepath.Join(lock, "tcpto"))
				if code != 0 || stderr.Len() != 0 || !bytes.Equal(b, make([]byte, 1024)) {
					t.Errorf("exit %d, stderr %q, tcpto %v...", code, stderr.String(), b[:min(len(b), 16)])
				}
				return
			}
			if code != 111 || !strings.HasPrefix(stderr.String(), "qmail-tcpok: fatal: ") || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q, want 111 and %q", code, stderr.String(), tc.want)
			}
			ents, _ := os.ReadDir(secret)
			for _, e := range ents {
				if b, _ := os.ReadFile(filepath.Join(secret, e.Name())); !bytes.Equal(b, seen) {
					t.Errorf("%s written through the link: %v...", e.Name(), b[:min(len(b), 16)])
				}
			}
		})
	}
}
