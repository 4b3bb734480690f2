package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary doubles as qmail-local (HQ_LOCAL_AS=qmail-local: Run
// with its own argv and descriptors) and as a .qmail program that says
// which session keyring it has and whether it can read the key whose id
// is in $HQ_KEY (HQ_LOCAL_AS=probe).
func TestMain(m *testing.M) {
	switch os.Getenv("HQ_LOCAL_AS") {
	case "qmail-local":
		os.Exit(Run(os.Args, Config{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
			Environ: os.Environ(), Root: "/nonexistent"}))
	case "probe":
		os.Exit(keyProbe())
	}
	os.Exit(m.Run())
}

func keyProbe() int {
	runtime.LockOSThread() // any thread would do: the process has one keyring
	ses, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	if err != nil {
		fmt.Printf("ses=error:%v\n", err)
		return 0
	}
	id, _ := strconv.Atoi(os.Getenv("HQ_KEY"))
	buf := make([]byte, 256)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	read := "denied"
	if err == nil {
		read = "ok:" + string(buf[:min(n, len(buf))])
	}
	_, err = unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", "hq_parent_secret", 0)
	search := "notfound"
	if err == nil {
		search = "found"
	}
	fmt.Printf("ses=%d read=%s search=%s\n", ses, read, search)
	return 0
}

// TestProgramSessionKeyring: a .qmail program runs in a session keyring
// of its own, not its starter's, and cannot read a key the starter holds
// in its session keyring (as root's login session holds root's keys when
// root starts qmail-start by hand).
func TestProgramSessionKeyring(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	dotq := "|HQ_LOCAL_AS=probe exec '" + exe + "'\n|HQ_LOCAL_AS=probe exec '" + exe + "'\n"
	if err := os.WriteFile(filepath.Join(home, ".qmail"), []byte(dotq), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("Subject: k\n\nx\n"), 0o600)

	type result struct {
		skip      string
		err       error
		ses, key  int
		out, serr string
		code      int
	}
	res := make(chan result, 1)
	// The starter: a thread of its own (credentials are per thread)
	// joins a new session keyring, puts a key in it and forks
	// qmail-local, which has that keyring in every thread as qmail-local
	// has its starter's. The thread is discarded with the goroutine.
	go func() {
		runtime.LockOSThread()
		ses, err := unix.KeyctlInt(unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0)
		if err != nil {
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				res <- result{skip: "no session keyrings here (keyctl: " + err.Error() + ")"}
			} else {
				res <- result{err: err}
			}
			return
		}
		key, err := unix.AddKey("user", "hq_parent_secret", []byte("parent-only"), unix.KEY_SPEC_SESSION_KEYRING)
		if err != nil {
			res <- result{err: fmt.Errorf("add_key: %v", err)}
			return
		}
		in, err := os.Open(msg)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer in.Close()
		var out, serr strings.Builder
		cmd := exec.Command(exe, "--", "u", home, "u", "", "", "example.org", "s@example.net", "./Maildir/")
		cmd.Args[0] = "qmail-local"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HQ_LOCAL_AS=qmail-local", "HQ_KEY=" + strconv.Itoa(key)}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &out, &serr
		err = cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			res <- result{err: err}
			return
		}
		res <- result{ses: ses, key: key, out: out.String(), serr: serr.String(), code: code}
	}()
	r := <-res
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.code != 0 {
		t.Fatalf("qmail-local exit %d, stdout %q stderr %q", r.code, r.out, r.serr)
	}
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 3 || lines[2] != "did 0+0+2" {
		t.Fatalf("report %q", r.out)
	}
	for _, l := range lines[:2] {
		var ses int
		var read, search string
		if _, err := fmt.Sscanf(l, "ses=%d read=%s search=%s", &ses, &read, &search); err != nil {
			t.Fatalf("probe said %q", l)
		}
		if ses == r.ses {
			t.Errorf("program in its starter's session keyring %d", ses)
		}
		if read != "denied" || search != "notfound" {
			t.Errorf("program reached the starter's key %d: read=%s search=%s", r.key, read, search)
		}
	}
	// The two programs of one delivery share its keyring.
	if a, b := strings.Fields(lines[0])[0], strings.Fields(lines[1])[0]; a != b {
		t.Errorf("one delivery, two keyrings: %s %s", a, b)
	}
}

// TestKeyringFailure: no keyrings, or keyctl blocked by seccomp, is no
// failure; running out of keys is a temporary one.
func TestKeyringFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{syscall.ENOSYS, ""},
		{syscall.EPERM, ""},
		{syscall.EACCES, ""},
		{syscall.EDQUOT, "Unable to create a session keyring: "},
		{syscall.ENOMEM, "Unable to create a session keyring: "},
	} {
		e := keyringFailure(tc.err)
		switch {
		case tc.want == "" && e != nil:
			t.Errorf("%v: %+v, want nothing", tc.err, e)
		case tc.want != "" && (e == nil || e.code != 111 || !strings.HasPrefix(e.text, tc.want) || !strings.HasSuffix(e.text, ". (#4.3.0)")):
			t.Errorf("%v: %+v, want 111 %q...", tc.err, e, tc.want)
		}
	}
}
