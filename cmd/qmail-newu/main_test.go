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
			code, stderr, db := runNewuWith(t, tc.make, old)
			if code != tc.code || stderr != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr, tc.code, tc.stderr)
			}
			if changed := db != old; changed != (tc.code == 0) {
				t.Errorf("users/cdb changed: %v, want %v", changed, tc.code == 0)
			}
		})
	}
}

// runNewu runs qmail-newu of a new tree whose users/assign is assign and
// whose users/cdb is old; it returns the exit code, stderr and users/cdb.
func runNewu(t *testing.T, assign, old string) (int, string, string) {
	t.Helper()
	return runNewuWith(t, func(path string) error { return os.WriteFile(path, []byte(assign), 0o644) }, old)
}

// runNewuWith is runNewu with users/assign made by mk (a FIFO, a link).
func runNewuWith(t *testing.T, mk func(assign string) error, old string) (int, string, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"bin", "users"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prog := filepath.Join(root, "bin", "qmail-newu")
	testutil.CopyTestBinary(t, prog)
	if err := mk(filepath.Join(root, "users", "assign")); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(root, "users", "cdb")
	if err := os.WriteFile(db, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	// Bounded: a qmail-newu blocked (on a FIFO) is killed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, prog)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatal("qmail-newu still running after 10s")
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String(), string(b)
}

// TestNewuBadIDs: a uid or gid field that is not bare decimal digits
// below 4294967295 is refused, naming the line and the field, with exit
// 111 and users/cdb left as it was. qmail-lspawn would read "62347 " as
// 62347 and "+62347" as root; accepted silently, such a line was only
// found from deferred mail.
func TestNewuBadIDs(t *testing.T) {
	const old = "the old database"
	const good = "=joe:joe:1000:1000:/home/joe:::\n"
	for _, tc := range []struct {
		assign string
		stderr string // "" for success
	}{
		{good + "=bob:alice:62347 :62347:/h:-::\n.\n", `line 2: uid "62347 "`},
		{good + "=carl:alice:62347x:62347:/h:-::\n.\n", `line 2: uid "62347x"`},
		{"=dave:alice:+62347:62347:/h:-::\n.\n", `line 1: uid "+62347"`},
		{"=ed:alice:abc:62347:/h:-::\n.\n", `line 1: uid "abc"`},
		{"=fay:alice::62347:/h:-::\n.\n", `line 1: uid ""`},
		{"=gus:alice:-1:62347:/h:-::\n.\n", `line 1: uid "-1"`},
		{"+gus-:alice:62347:62347 :/h:-::\n.\n", `line 1: gid "62347 "`},
		{good + good + "=hal:alice:62347:0x10:/h:-::\n.\n", `line 3: gid "0x10"`},
		{"=ian:alice:4294967295:1:/h:-::\n.\n", `line 1: uid "4294967295"`},
		{"=ian:alice:1:4294967296:/h:-::\n.\n", `line 1: gid "4294967296"`},
		{"=ian:alice:1:99999999999999999999999:/h:-::\n.\n", `line 1: gid "99999999999999999999999"`},
		{"\ufeff=joe:joe:1000:1000:/home/joe:::\n=jim:\x1b[2J:1000:\x1b[2J:/h:::\n.\n", `line 2: gid "\x1b[2J"`},
		// Accepted: leading zeros, ids past 2^31, uid 0 (refused at
		// delivery, as in qmail), odd text in other fields, lines after
		// the dot.
		{good + "=big:big:0004294967294:3000000000:/h:-::\n+:alias:0:0:/a:-::\n.\n=x:x:x:x:x:x:x:\n", ""},
		{"=odd:a b:1: 2:/h:-::\n.\n", `line 1: gid " 2"`},
	} {
		code, stderr, db := runNewu(t, tc.assign, old)
		if tc.stderr == "" {
			if code != 0 || stderr != "" || db == old {
				t.Errorf("%q: exit %d, stderr %q, cdb changed %v; want it compiled", tc.assign, code, stderr, db != old)
			}
			continue
		}
		want := "qmail-newu: fatal: bad format in users/assign: " + tc.stderr + " is not a decimal number below 4294967295\n"
		if code != 111 || stderr != want || db != old {
			t.Errorf("%q: exit %d, stderr %q, cdb changed %v; want 111, %q, unchanged", tc.assign, code, stderr, db != old, want)
		}
	}
}
