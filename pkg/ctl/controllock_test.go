package ctl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
)

// flockerEnv makes the test binary a local user's process that tries to
// take an exclusive flock on each of the paths it names (one a line),
// opened read-only as any user may open them; it prints one line per
// path ("locked" or the error), then "ready", and keeps what it locked
// until its standard input ends.
const flockerEnv = "HQMAIL_TEST_CTL_FLOCKER"

func init() {
	paths := os.Getenv(flockerEnv)
	if paths == "" {
		return
	}
	for _, p := range strings.Split(paths, "\n") {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err == nil {
			err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		}
		if err != nil {
			fmt.Printf("%s: %v\n", p, err)
		} else {
			fmt.Printf("%s: locked\n", p)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startFlocker runs the flocker as uid, gid on paths and returns what it
// said of each path once it is ready. It ends with the test.
func startFlocker(t *testing.T, root string, uid, gid int, paths ...string) map[string]string {
	t.Helper()
	// The copy of the test binary and the way to the tree must be open
	// to the user.
	for d := root; d != "/" && d != "."; d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prog := filepath.Join(root, "flocker")
	testutil.CopyTestBinary(t, prog)
	cmd := exec.Command(prog, "-test.run=^$")
	cmd.Env = append(os.Environ(), flockerEnv+"="+strings.Join(paths, "\n"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	said := map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the flocker ended before it was ready (%v)", said)
			}
			if l == "ready" {
				return said
			}
			p, what, _ := strings.Cut(l, ": ")
			said[p] = what
		case <-deadline:
			t.Fatal("the flocker did not get ready within 30 s")
		}
	}
}

// TestControlLockNotOthers: another local user cannot take the lock every
// hold, release, linkwant and boot takes (QA rsec3: it was the flock of
// the control directory itself, which every user may open, so that a
// flock(1) of nobody's made qmailctl hold and release fail after their
// wait, qmail-start with control/startheld fail, and qmailctl boot hold
// nothing). Needs root, to run as another user.
func TestControlLockNotOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	saved := lockWait
	lockWait = time.Second
	t.Cleanup(func() { lockWait = saved })

	root := makeTree(t)
	dir := filepath.Join(root, "control")
	// The lock file made by a first run, as on any installed system.
	if code, out, errs := run(t, root, "-t", "1", "release", "remote"); code != ExitNotRunning {
		t.Fatalf("first release: exit %d, %q, %q", code, out, errs)
	}
	lock := filepath.Join(dir, control.LockName)
	said := startFlocker(t, root, 65534, 65534, dir, lock)
	if said[lock] == "locked" {
		t.Errorf("nobody took the flock of %s", lock)
	}

	code, out, errs := run(t, root, "-t", "1", "hold", "remote")
	if _, held := readFlag(t, root, hold.RemoteFile); !held || code != ExitNotRunning {
		t.Errorf("hold remote with nobody's flock on %v: held %v, exit %d, %q, %q", said, held, code, out, errs)
	}
	code, out, errs = run(t, root, "-t", "1", "linkwant", "release")
	if code != ExitOK {
		t.Errorf("linkwant release with nobody's flock on %v: exit %d, %q, %q", said, code, out, errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "startheld"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := StartHeld(root); err != nil {
		t.Errorf("StartHeld with nobody's flock on %v: %v", said, err)
	}
}

// TestControlLockFile: the lock is control/lock, a regular file of mode
// 0600 whatever the umask; a symbolic link, a FIFO or a directory there is
// refused by name and nothing is changed (the link's target is not made);
// a timeout names the file and does not claim to know the holder is a
// qmailctl.
func TestControlLockFile(t *testing.T) {
	saved := lockWait
	lockWait = 200 * time.Millisecond
	t.Cleanup(func() { lockWait = saved })

	root := makeTree(t)
	lock := filepath.Join(root, "control", control.LockName)
	old := unix.Umask(0)
	code, out, errs := run(t, root, "hold", "remote")
	unix.Umask(old)
	if code != ExitNotRunning {
		t.Fatalf("hold remote: exit %d, %q, %q", code, out, errs)
	}
	st, err := os.Lstat(lock)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 || int(st.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		t.Errorf("control/lock: mode %v, uid %d; want a regular file of mode 0600, uid %d", st.Mode(), st.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}

	// A timeout: the lock held by this process through another open.
	unlock, err := lockDir(filepath.Join(root, "control"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = EditHold(filepath.Join(root, "control"), hold.RemoteFile, false, nil)
	unlock()
	if err == nil || !strings.Contains(err.Error(), lock) || strings.Contains(err.Error(), "another qmailctl holds it") {
		t.Errorf("EditHold with the lock held: %v; want a time-out naming %s that does not blame a qmailctl alone", err, lock)
	}
	if _, held := readFlag(t, root, hold.RemoteFile); !held {
		t.Error("holdremote released without the lock")
	}

	target := filepath.Join(t.TempDir(), "target")
	for _, tc := range []struct {
		name string
		make func() error
		want string
	}{
		{"symbolic link", func() error { return os.Symlink(target, lock) }, "symbolic link"},
		{"fifo", func() error { return unix.Mkfifo(lock, 0o600) }, "not a regular file"},
		{"directory", func() error { return os.Mkdir(lock, 0o700) }, "directory"},
	} {
		os.Remove(lock)
		if err := tc.make(); err != nil {
			t.Fatal(err)
		}
		code, out, errs := run(t, root, "release", "remote")
		if _, held := readFlag(t, root, hold.RemoteFile); !held || code != ExitTemp || !strings.Contains(errs, lock) || !strings.Contains(errs, tc.want) {
			t.Errorf("release with a %s at control/lock: held %v, exit %d, %q, %q; want 111 naming %s and %q", tc.name, held, code, out, errs, lock, tc.want)
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the link's target was made (%v)", err)
		}
	}
}

// TestControlLockOwner: a lock file of another user than root, the
// control directory's owner or the caller is refused; root making it in
// a tree whose control/ is a user's gives it to that user, whose own
// qmailctl must open it. Needs root.
func TestControlLockOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	root := makeTree(t)
	dir := filepath.Join(root, "control")
	lock := filepath.Join(dir, control.LockName)
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(lock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, root, "hold", "remote")
	if _, held := readFlag(t, root, hold.RemoteFile); held || code != ExitTemp || !strings.Contains(errs, "uid 65534") {
		t.Errorf("hold with control/lock of uid 65534: held %v, exit %d, %q, %q; want it refused", held, code, out, errs)
	}

	// A user's tree: root's run makes the lock the user's.
	os.Remove(lock)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(t, root, "hold", "remote")
	if code != ExitNotRunning {
		t.Fatalf("hold in a user's control/: exit %d, %q, %q", code, out, errs)
	}
	st, err := os.Lstat(lock)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 65534 || st.Mode().Perm() != 0o600 {
		t.Errorf("control/lock made by root in uid 65534's control/: uid %d, mode %v; want 65534, 0600", s.Uid, st.Mode())
	}
	// The user's lock is taken by root as well.
	if code, out, errs = run(t, root, "release", "remote"); code != ExitNotRunning {
		t.Errorf("release over the user's lock: exit %d, %q, %q", code, out, errs)
	}
}
