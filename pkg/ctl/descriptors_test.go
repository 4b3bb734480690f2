package ctl

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
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// nofileChildEnv makes the test binary qmailctl with few descriptors
// (TestMain): "FREE ROOT" lowers RLIMIT_NOFILE so that exactly FREE
// descriptors are free below it, then runs Main on ROOT with the
// process's arguments.
const nofileChildEnv = "HQMAIL_TEST_QMAILCTL_NOFILE"

func qmailctlWithFree(spec string) int {
	n, root, _ := strings.Cut(spec, " ")
	free, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", nofileChildEnv, spec)
		return 99
	}
	// The limit is a bound on descriptor numbers: the lowest one that
	// leaves free numbers below it, past those open (0-2, and whatever
	// the runtime opened at its start).
	limit, seen := 0, 0
	for ; ; limit++ {
		if _, err := unix.FcntlInt(uintptr(limit), unix.F_GETFD, 0); err != nil {
			if seen == free {
				break
			}
			seen++
		}
	}
	rl := unix.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 99
	}
	return Main(root, os.Args[1:], os.Stdout, os.Stderr)
}

// runFree runs qmailctl args on root in a process of its own with exactly
// free descriptors free.
func runFree(t *testing.T, root string, free int, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", nofileChildEnv, free, root))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, o.String(), e.String()
}

// TestDescriptorShortage: with fewer descriptors free than qmailctl needs
// at its peak, every command that changes state fails at once, exit 111,
// saying so, with nothing changed: no flag written, no signal sent (the
// generation in sendstatus stays), no queue file touched. Before, a hold
// wrote the flag and then the runtime died making its poller (exit 2), or
// the open of sendmutex failed, so that qmail-send was never told. With
// exactly descriptorsNeeded free every one of them succeeds.
func TestDescriptorShortage(t *testing.T) {
	refused := func(free int, stderr string) bool {
		return strings.HasPrefix(stderr, fmt.Sprintf("qmailctl: too few file descriptors: %d free, %d needed (RLIMIT_NOFILE ", free, descriptorsNeeded)) &&
			strings.HasSuffix(stderr, "; raise it with ulimit -n); nothing was changed\n") &&
			strings.Count(stderr, "\n") == 1
	}
	gen := func(root string) int64 {
		st, _ := ReadStatus(root)
		return st.Generation()
	}
	exists := func(p string) bool {
		_, err := os.Lstat(p)
		return err == nil
	}

	t.Run("hold local", func(t *testing.T) {
		root := makeTree(t)
		startFake(t, root)
		flag := filepath.Join(root, "control", "holdlocal")
		for free := 0; free <= descriptorsNeeded; free++ {
			g := gen(root)
			code, out, errs := runFree(t, root, free, "hold", "local")
			if free < descriptorsNeeded {
				if code != ExitTemp || out != "" || !refused(free, errs) {
					t.Errorf("%d free: exit %d, stdout %q, stderr %q; want the refusal", free, code, out, errs)
				}
				if exists(flag) || gen(root) != g {
					t.Fatalf("%d free: changed all the same (flag written %v, generation %d -> %d)", free, exists(flag), g, gen(root))
				}
				continue
			}
			if code != ExitOK || !strings.Contains(out, "confirmed") || errs != "" || !exists(flag) {
				t.Errorf("%d free: exit %d, stdout %q, stderr %q, flag %v", free, code, out, errs, exists(flag))
			}
		}
	})

	t.Run("release remote", func(t *testing.T) {
		root := makeTree(t)
		flag := filepath.Join(root, "control", "holdremote")
		queuetest.WriteFile(t, flag, []byte("*\n"))
		startFake(t, root)
		for _, free := range []int{descriptorsNeeded - 1, descriptorsNeeded} {
			g := gen(root)
			code, out, errs := runFree(t, root, free, "release", "remote")
			if free < descriptorsNeeded {
				if code != ExitTemp || !refused(free, errs) || !exists(flag) || gen(root) != g {
					t.Errorf("%d free: exit %d, stderr %q, flag %v, generation %d -> %d", free, code, errs, exists(flag), g, gen(root))
				}
				continue
			}
			if code != ExitOK || !strings.Contains(out, "confirmed") || exists(flag) {
				t.Errorf("%d free: exit %d, stdout %q, stderr %q, flag %v", free, code, out, errs, exists(flag))
			}
		}
	})

	for _, sig := range []string{"flush", "reload"} {
		t.Run(sig, func(t *testing.T) {
			root := makeTree(t)
			startFake(t, root)
			for _, free := range []int{descriptorsNeeded - 1, descriptorsNeeded} {
				g := gen(root)
				code, out, errs := runFree(t, root, free, sig)
				if free < descriptorsNeeded {
					if code != ExitTemp || !refused(free, errs) || gen(root) != g {
						t.Errorf("%d free: exit %d, stderr %q, generation %d -> %d", free, code, errs, g, gen(root))
					}
					continue
				}
				if code != ExitOK || !strings.Contains(out, "confirmed") || gen(root) <= g {
					t.Errorf("%d free: exit %d, stdout %q, stderr %q, generation %d -> %d", free, code, out, errs, g, gen(root))
				}
			}
		})
	}

	// With qmail-send stopped the queue is changed under the sendmutex
	// lock; a bounce as root also reads etc/ids for the owner of a new
	// bounce/ID: the measured peak.
	for _, verb := range []string{"bounce", "delete"} {
		t.Run(verb+" stopped", func(t *testing.T) {
			root := makeTree(t)
			q := filepath.Join(root, "queue")
			queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
			if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			queuetest.WriteFile(t, filepath.Join(root, qhome.IDsFile), []byte(qhome.SharedIDs(os.Getuid(), os.Getgid()).Format()))
			queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
				Local:  []queuetest.Rcpt{{Addr: "me@local"}},
				Remote: []queuetest.Rcpt{{Addr: "z@y.example"}}})
			channel := filepath.Join(q, "remote", "8", "100")
			bounce := filepath.Join(q, "bounce", "100")
			for _, free := range []int{descriptorsNeeded - 1, descriptorsNeeded} {
				code, out, errs := runFree(t, root, free, verb, "100")
				if free < descriptorsNeeded {
					if code != ExitTemp || !refused(free, errs) || !exists(channel) || exists(bounce) {
						t.Errorf("%d free: exit %d, stderr %q; remote/8/100 %v, bounce/100 %v", free, code, errs, exists(channel), exists(bounce))
					}
					continue
				}
				if code != ExitNotRunning || !strings.Contains(out, "message 100: 2 recipients") || errs != "" ||
					exists(channel) || exists(bounce) != (verb == "bounce") {
					t.Errorf("%d free: exit %d, stdout %q, stderr %q; remote/8/100 %v, bounce/100 %v", free, code, out, errs, exists(channel), exists(bounce))
				}
			}
		})
	}
}

// TestSendmutexOpenError: when sendmutex cannot be opened, the message
// names it once, with the reason ("unable to open P: open P: ..." had it
// twice), for the commands that signal qmail-send and for those that
// lock it out.
func TestSendmutexOpenError(t *testing.T) {
	root := makeTree(t)
	path := filepath.Join(root, MutexFile)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	want := "qmailctl: unable to open " + path + ": " + qhome.ErrNotRegular.Error()
	for _, args := range [][]string{{"pid"}, {"flush"}, {"delete", "100"}} {
		code, _, errs := run(t, root, args...)
		if code != ExitTemp || !strings.HasPrefix(errs, want) || strings.Count(errs, path) != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 111 and %q", args, code, errs, want)
		}
	}
	// A hold says what it changed before it could tell qmail-send.
	code, out, errs := run(t, root, "hold", "local")
	if wantErr := want + "; control/holdlocal is changed all the same (local delivery held): " +
		"qmail-send honours it at its next re-read (qmailctl reload) or start\n"; code != ExitTemp || errs != wantErr || out != "local delivery held\n" {
		t.Errorf("hold local: exit %d, stdout %q, stderr %q; want 111, %q", code, out, errs, wantErr)
	}
}
