package queue

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// queuedRootEnv, set in the environment of a copy of the test binary,
// makes it run the service (mainService) on that root and exit with its
// code: a qmail-queued run under another uid (TestServiceLockOfRoot).
const queuedRootEnv = "HQMAIL_TEST_QUEUED_ROOT"

func init() {
	if root := os.Getenv(queuedRootEnv); root != "" {
		os.Exit(mainService(root, os.Stderr))
	}
}

// lockTree makes the directories Listen needs under a new root.
func lockTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"queue/lock", "public"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestServiceLockUnusable: when the service cannot open its lock
// (queue/lock/queued is a directory, a symbolic link, or, for a user
// other than root, a file it may not open), the fatal line names the
// lock and the reason, not the socket; the exit code is 111 and no
// socket is made.
func TestServiceLockUnusable(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		make         func(p string) error
		nonRoot      bool
	}{
		{"directory", "is a directory", func(p string) error { return os.Mkdir(p, 0o700) }, false},
		{"symbolic link", "too many levels of symbolic links", func(p string) error { return os.Symlink("elsewhere", p) }, false},
		{"mode 0", "permission denied", func(p string) error { return os.WriteFile(p, nil, 0) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.nonRoot && os.Geteuid() == 0 {
				t.Skip("root opens a file of mode 0 (TestServiceLockOfRoot has the root case)")
			}
			root := lockTree(t)
			lock := filepath.Join(root, LockFile)
			if err := tc.make(lock); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			// mainService sets the umask of qmail-queued: the test
			// process keeps its own.
			umask := syscall.Umask(0o22)
			code := mainService(root, &stderr)
			syscall.Umask(umask)
			want := "qmail-queued: fatal: unable to open lock file " + lock + ": " + tc.reason + "\n"
			if code != 111 || stderr.String() != want {
				t.Errorf("exit %d, stderr %q; want 111 and %q", code, stderr.String(), want)
			}
			if _, err := os.Lstat(filepath.Join(root, "public", "qmail-queue")); err == nil {
				t.Error("socket made without the lock")
			}
		})
	}
}

// TestServiceLockOfRoot: the repro of the report. qmail-queued run once
// by hand as root leaves queue/lock/queued to root (mode 0600); the
// service then started as another user cannot open it, and says so
// (it said it could not listen on public/qmail-queue).
func TestServiceLockOfRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a lock of root's and a service under another uid need root")
	}
	// Searchable by the other user all the way down (t.TempDir and its
	// parent are 0700), so that only the lock's own mode stops it.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	root := filepath.Join(dir, "q")
	for _, d := range []string{"queue/lock", "public"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The run by hand as root.
	sock, lock, err := Listen(root)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(sock)
	syscall.Close(lock)
	os.Remove(filepath.Join(root, "public", "qmail-queue"))
	const nobody = 65534
	os.Chown(filepath.Join(root, "public"), nobody, nobody)
	prog := filepath.Join(dir, "qmail-queued")
	testutil.CopyTestBinary(t, prog)
	os.Chmod(prog, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog)
	cmd.Env = append(os.Environ(), queuedRootEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	code := cmd.ProcessState.ExitCode()
	want := "qmail-queued: fatal: unable to open lock file " + filepath.Join(root, LockFile) + ": permission denied\n"
	if code != 111 || stderr.String() != want {
		t.Errorf("exit %d (%v), stderr %q; want 111 and %q", code, err, stderr.String(), want)
	}
	if strings.Contains(stderr.String(), "listen") {
		t.Errorf("the socket is blamed: %q", stderr.String())
	}
}

// TestServiceStderrReaderGone: with its standard error a pipe whose
// reader has gone (qmail-start's, the rc script's splogger killed), a line
// qmail-queued writes fails; it does not die of SIGPIPE (QA rstart: it did,
// cutting every job it ran, and was started again and again). Here the
// line is a fatal one: the exit is its 111, not the signal.
func TestServiceStderrReaderGone(t *testing.T) {
	root := lockTree(t)
	if err := os.Mkdir(filepath.Join(root, LockFile), 0o700); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	defer pw.Close()
	prog := filepath.Join(t.TempDir(), "qmail-queued")
	testutil.CopyTestBinary(t, prog)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog)
	cmd.Env = append(os.Environ(), queuedRootEnv+"="+root)
	cmd.Stderr = pw
	cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signaled() || ws.ExitStatus() != 111 {
		t.Errorf("ended %v, want exit 111 (the fatal line could not be written)", cmd.ProcessState)
	}
}
