package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
)

// runMainEnv makes the test binary run main() instead of the tests: a copy
// of it in DIR/bin/qmail-newu is qmail-newu of the tree DIR.
const runMainEnv = "HQMAIL_TEST_QMAIL_NEWU_MAIN"

func TestMain(m *testing.M) { testutil.MainOrTests(m, runMainEnv, main) }

// TestNewuAssignNotRegular: a FIFO at users/assign is refused at once, in
// qmail's words, with exit 111 and users/cdb left as it was; read as a
// plain file it held qmail-newu until a writer came. /dev/null still reads
// as an empty file (no final dot: bad format), and a regular file compiles.
func TestNewuAssignNotRegular(t *testing.T) {
	const old = "the old database"
	for _, tc := range []struct {
		name   string
		make   func(assign string) error
		code   int
		stderr string
	}{
		{"regular", func(assign string) error {
			return os.WriteFile(assign, []byte("=joe:joe:1000:1000:/home/joe:::\n.\n"), 0o644)
		}, 0, ""},
		{"fifo", func(assign string) error { return unix.Mkfifo(assign, 0o644) },
			111, "qmail-newu: fatal: unable to read users/assign: not a regular file\n"},
		{"/dev/null", func(assign string) error { return os.Symlink(os.DevNull, assign) },
			111, "qmail-newu: fatal: bad format in users/assign\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"bin", "users"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			prog := filepath.Join(root, "bin", "qmail-newu")
			testutil.CopyTestBinary(t, prog)
			assign := filepath.Join(root, "users", "assign")
			if err := tc.make(assign); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(root, "users", "cdb")
			if err := os.WriteFile(db, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			// Bounded: qmail-newu blocked on the FIFO is killed.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, prog)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatal("qmail-newu still blocked after 10s")
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stderr.String() != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.code, tc.stderr)
			}
			b, _ := os.ReadFile(db)
			if changed := string(b) != old; changed != (tc.code == 0) {
				t.Errorf("users/cdb changed: %v, want %v", changed, tc.code == 0)
			}
		})
	}
}
