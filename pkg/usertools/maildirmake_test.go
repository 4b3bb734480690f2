package usertools

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() {
		t.Fatalf("%s is not a directory", p)
	}
	return st.Mode().Perm()
}

func TestMaildirmakeModes(t *testing.T) {
	// The modes are 0700 whatever the umask: a lax one must not open the
	// Maildir, a strict one must not leave it unusable.
	for _, mask := range []int{0, 0o022, 0o077, 0o277} {
		// The temporary directory first: made under a umask of 0277 it
		// would have mode 0500, which only root could make the Maildir in.
		dir := filepath.Join(t.TempDir(), "Maildir")
		old := syscall.Umask(mask)
		var stderr bytes.Buffer
		code := MaildirmakeMain([]string{dir}, &stderr)
		syscall.Umask(old)
		if code != 0 || stderr.Len() != 0 {
			t.Fatalf("umask %03o: exit %d, %q", mask, code, stderr.String())
		}
		for _, p := range []string{"", "tmp", "new", "cur"} {
			if m := mode(t, filepath.Join(dir, p)); m != 0o700 {
				t.Errorf("umask %03o: %s/%s has mode %03o", mask, dir, p, m)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 3 {
			t.Errorf("umask %03o: %d entries in the Maildir", mask, len(ents))
		}
	}
}

func TestMaildirmakeExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o640)
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{dir}, &stderr); code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
	if !strings.Contains(stderr.String(), dir) || !strings.Contains(stderr.String(), "file already exists") {
		t.Errorf("message %q does not name %s and the cause", stderr.String(), dir)
	}
	// Untouched: mode, contents, no subdirectories added.
	if m := mode(t, dir); m != 0o750 {
		t.Errorf("mode changed to %03o", m)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("existing directory changed: %v", ents)
	}
	// A symbolic link by that name is not followed either.
	link := filepath.Join(t.TempDir(), "link")
	other := t.TempDir()
	os.Symlink(other, link)
	if code := MaildirmakeMain([]string{link}, &stderr); code != 111 {
		t.Fatalf("link: exit %d, want 111", code)
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("made %v through a link", ents)
	}
}

func TestMaildirmakeCannotMake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such", "Maildir")
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{dir}, &stderr); code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
	if want := "maildirmake: fatal: unable to make " + dir + ": file does not exist\n"; stderr.String() != want {
		t.Errorf("message %q, want %q", stderr.String(), want)
	}
}

func TestMaildirmakeUndo(t *testing.T) {
	// A failure after the directory was made (here: cur) removes what was
	// made, so that the command can be run again.
	mkdirat = func(fd int, path string, mode uint32) error {
		if path == "cur" {
			return unix.ENOSPC
		}
		return unix.Mkdirat(fd, path, mode)
	}
	t.Cleanup(func() { mkdirat = unix.Mkdirat })
	dir := filepath.Join(t.TempDir(), "Maildir")
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{dir}, &stderr); code != 111 {
		t.Fatalf("exit %d, want 111", code)
	}
	if !strings.Contains(stderr.String(), filepath.Join(dir, "cur")+": out of disk space") {
		t.Errorf("message %q", stderr.String())
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", dir, err)
	}
}

func TestMaildirmakeUsage(t *testing.T) {
	// The usage names -- too, the one option maildirmake(1) documents.
	for _, args := range [][]string{nil, {""}, {"a", "b"}, {"-x"}, {"--"}, {"--", ""}} {
		var stderr bytes.Buffer
		if code := MaildirmakeMain(args, &stderr); code != 100 || stderr.String() != "usage: maildirmake [--] dir\n" {
			t.Errorf("%q: exit %d, %q", args, code, stderr.String())
		}
	}
	// "--" lets a name start with a dash.
	t.Chdir(t.TempDir())
	var stderr bytes.Buffer
	if code := MaildirmakeMain([]string{"--", "-box"}, &stderr); code != 0 {
		t.Fatalf("-- -box: exit %d, %q", code, stderr.String())
	}
	mode(t, "-box/new")
}

// umaskChildEnv makes the test binary the helper of
// TestMaildirmakeUmaskOrdinaryUser: "MASK WAY DIR" runs one maildirmake
// DIR under umask MASK (octal), its mode set the way WAY names.
const umaskChildEnv = "HQMAIL_TEST_MAILDIRMAKE_UMASK"

// TestMaildirmakeUmaskOrdinaryUser: the modes are 0700 whatever the
// umask for an ordinary user too, even under one that takes the owner's
// own bits (0400 made the directory 0300, which only root could open to
// read). Root reads any directory and never saw the failure: as root the
// helper runs as nobody (uid 65534). Each run is a process of its own,
// so the umask (process-wide) is never changed under the other tests.
// The ways to set the mode of the directory open with O_PATH: fchmodat2
// (Linux 6.6), /proc/self/fd/N (an older kernel), and, without /proc, a
// descriptor opened by its name to read it, which only a umask that
// leaves the owner's read bit (mask&0400 == 0) lets open: under any other
// the command fails, as it always did, and leaves nothing behind.
func TestMaildirmakeUmaskOrdinaryUser(t *testing.T) {
	if spec := os.Getenv(umaskChildEnv); spec != "" {
		f := strings.Fields(spec)
		mask, _ := strconv.ParseUint(f[0], 8, 32)
		switch f[1] {
		case "proc":
			fchmodEmpty = func(int, uint32) error { return unix.ENOSYS }
		case "noproc":
			fchmodEmpty = func(int, uint32) error { return unix.ENOSYS }
			procFD = "/nonexistent/proc/self/fd/"
		}
		syscall.Umask(int(mask)) // this process's own: it exits next
		os.Exit(MaildirmakeMain([]string{f[2]}, os.Stderr))
	}
	prog, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// nobody runs a copy of the test binary it can reach, in a
		// directory it owns.
		base := t.TempDir()
		os.Chmod(filepath.Dir(base), 0o755)
		os.Chmod(base, 0o755)
		prog = filepath.Join(base, "usertools.test")
		testutil.CopyTestBinary(t, prog)
		os.Chmod(filepath.Dir(work), 0o755)
		if err := os.Chown(work, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	}
	ways := []string{"fchmodat2", "proc", "noproc"}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Logf("no /proc/self/fd (%v): the /proc way is not tested", err)
		ways = []string{"fchmodat2", "noproc"}
	}
	for _, way := range ways {
		for _, mask := range []int{0, 0o022, 0o077, 0o100, 0o200, 0o277, 0o400, 0o500, 0o700, 0o777} {
			dir := filepath.Join(work, fmt.Sprintf("%s-%03o", way, mask))
			var stderr bytes.Buffer
			cmd := exec.Command(prog, "-test.run=^TestMaildirmakeUmaskOrdinaryUser$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%o %s %s", umaskChildEnv, mask, way, dir))
			cmd.Stderr = &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			code := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Skipf("cannot run the helper as uid 65534: %v", err)
				}
				code = ee.ExitCode()
			}
			if way == "noproc" && mask&0o400 != 0 {
				want := "maildirmake: fatal: unable to set the mode of " + dir + ": access denied\n"
				if code != 111 || stderr.String() != want {
					t.Errorf("%s, umask %03o: exit %d, %q; want 111 and %q", way, mask, code, stderr.String(), want)
				}
				if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s, umask %03o: %s left behind (%v)", way, mask, dir, err)
				}
				continue
			}
			if code != 0 || stderr.Len() != 0 {
				t.Errorf("%s, umask %03o: exit %d, %q", way, mask, code, stderr.String())
				continue
			}
			for _, p := range []string{"", "tmp", "new", "cur"} {
				if m := mode(t, filepath.Join(dir, p)); m != 0o700 {
					t.Errorf("%s, umask %03o: %s/%s has mode %03o", way, mask, dir, p, m)
				}
			}
			if cred != nil {
				var st unix.Stat_t
				if err := unix.Lstat(dir, &st); err != nil || st.Uid != 65534 {
					t.Errorf("%s, umask %03o: %s not made by uid 65534 (%d, %v)", way, mask, dir, st.Uid, err)
				}
			}
		}
	}
}
