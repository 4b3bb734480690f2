package aliases

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestNewaliasesSourceNotRegular: a FIFO as the aliases file, given with
// -f or named by control/aliases, is refused at once (exit 111, the
// database left as it was); opened as a plain file it held newaliases
// until a writer came. A directory is refused too, and /dev/null still
// reads as an empty file.
func TestNewaliasesSourceNotRegular(t *testing.T) {
	const old = "the old database"
	for _, tc := range []struct {
		name    string
		control bool // the source named by control/aliases, not -f
		make    func(src string) error
		code    int
		stderr  string // after "newaliases: fatal: unable to open SRC: "
	}{
		{"fifo", false, func(src string) error { return unix.Mkfifo(src, 0o644) }, 111, "not a regular file\n"},
		{"fifo from control/aliases", true, func(src string) error { return unix.Mkfifo(src, 0o644) }, 111, "not a regular file\n"},
		{"directory", false, func(src string) error { return os.Mkdir(src, 0o755) }, 111, "is a directory\n"},
		{"/dev/null", false, func(src string) error { return os.Symlink(os.DevNull, src) }, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"etc", "control"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			db := filepath.Join(root, DBFile)
			if err := os.WriteFile(db, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(root, "aliases")
			if err := tc.make(src); err != nil {
				t.Fatal(err)
			}
			args := []string{"-f", src}
			if tc.control {
				args = nil
				if err := os.WriteFile(filepath.Join(root, "control", SourceControl), []byte(src+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb testutil.SyncBuffer
			done := make(chan int, 1)
			go func() { done <- NewaliasesMain(root, args, &out, &errb) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				// Let the blocked open go (a writer comes and goes at
				// once), so the goroutine ends.
				if w, err := os.OpenFile(src, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				t.Fatal("newaliases still blocked after 10s")
			}
			if tc.code == 0 {
				if code != 0 || errb.String() != "" || !strings.Contains(out.String(), ": 0 aliases compiled into ") {
					t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
				}
				if b, _ := os.ReadFile(db); string(b) == old {
					t.Error("database not written")
				}
				return
			}
			want := "newaliases: fatal: unable to open " + src + ": " + tc.stderr
			if code != tc.code || errb.String() != want {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, errb.String(), tc.code, want)
			}
			if b, _ := os.ReadFile(db); string(b) != old {
				t.Error("database changed")
			}
		})
	}
}
