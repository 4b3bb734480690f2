package ctl

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/sched"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a fake qmail-send (the helper-process idiom):
// with FAKE_SEND_ROOT set it takes the flock on queue/lock/sendmutex, writes
// its pid there, and rewrites queue/lock/sendstatus at start and after every
// HUP (re-reading the hold flags) and ALRM, as docs/HACKING.md asks of the
// real one. FAKE_SEND_MUTE=1 makes it hold the lock but never confirm.
// FAKE_SEND_HUPLOG=PATH appends a line to PATH for every HUP it takes,
// muted or not (tests count the signals).
// FAKE_SEND_PIDTEXT replaces the pid it writes into sendmutex.
// FAKE_SEND_QUIETSTART=1 skips the status written at start.
// A control/holdremote that exists but cannot be read at a HUP holds all
// remote delivery and is named in reread-failed, as by qmail-send;
// FAKE_SEND_UNREADABLE=1 takes it for unreadable at every HUP (a file
// qmails may not read, which the test, as root, could).
// FAKE_SEND_CONCURRENCY="L CL R CR" sets the concurrency keys it writes
// (concurrency-local L, control-concurrencylocal CL, and the same for
// remote; "10 10 20 20", qmail-send's defaults, when unset); "none" leaves
// them out, as a qmail-send from before they were written.
func TestMain(m *testing.M) {
	if root := os.Getenv("FAKE_SEND_ROOT"); root != "" {
		fakeSend(root)
		return
	}
	if spec := os.Getenv(nofileChildEnv); spec != "" {
		os.Exit(qmailctlWithFree(spec))
	}
	os.Exit(m.Run())
}

func fakeSend(root string) {
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "fake qmail-send:", err)
		os.Exit(111)
	}
	f, err := os.OpenFile(filepath.Join(root, MutexFile), os.O_RDWR|os.O_CREATE, 0600)
	if err != nil {
		die(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		die(err)
	}
	// The signals are caught before the pid is written: a qmailctl that
	// finds the pid may signal at once.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGALRM, syscall.SIGTERM)
	pidText := os.Getenv("FAKE_SEND_PIDTEXT")
	if pidText == "" {
		pidText = fmt.Sprint(os.Getpid())
	}
	f.Truncate(0)
	f.WriteAt([]byte(pidText+"\n"), 0)
	mute := os.Getenv("FAKE_SEND_MUTE") == "1"
	gen := 0
	started := time.Now().UnixNano()
	var local, remote hold.Flag
	// FAKE_SEND_CTL=1 reads request lines from queue/lock/sendctl and
	// answers each in sendstatus: "fail" for id 404, "ok fake VERB ARG"
	// otherwise; for id 409 it answers and exits, for 410 it exits
	// without answering.
	var results []string
	reqs := make(chan string, 4)
	if os.Getenv("FAKE_SEND_CTL") == "1" {
		fifo, err := os.OpenFile(filepath.Join(root, CtlFIFO), os.O_RDWR, 0)
		if err != nil {
			die(err)
		}
		go func() {
			r := bufio.NewReader(fifo)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				reqs <- l
			}
		}()
	}
	// FAKE_SEND_SKIPHUP=1 handles its first HUP without re-reading the
	// flags, as if it were another qmailctl's ALRM that came first.
	skipHUP := os.Getenv("FAKE_SEND_SKIPHUP") == "1"
	// Fixed at start: qmail-send reads the concurrency files only then.
	concurrency := ""
	if v := os.Getenv("FAKE_SEND_CONCURRENCY"); v != "none" {
		f := strings.Fields(cmp.Or(v, "10 10 20 20"))
		if len(f) != 4 {
			die(fmt.Errorf("FAKE_SEND_CONCURRENCY %q: not four numbers", v))
		}
		concurrency = fmt.Sprintf("concurrency-local %s\ncontrol-concurrencylocal %s\nconcurrency-remote %s\ncontrol-concurrencyremote %s\n",
			f[0], f[1], f[2], f[3])
	}
	write := func(reread bool) {
		dir := filepath.Join(root, "control")
		// FAKE_SEND_STUCK=1 keeps the hold state of the start, as qmail-send
		// does when it cannot re-read a flag file.
		failed := ""
		if gen == 0 || (reread && os.Getenv("FAKE_SEND_STUCK") != "1") {
			if l, err := hold.Read(dir, hold.LocalFile); err == nil {
				local = l
			}
			r, err := hold.Read(dir, hold.RemoteFile)
			// FAKE_SEND_UNREADABLE=1: control/holdremote cannot be
			// read at a HUP, as one of mode 0600 root by qmails.
			if gen > 0 && os.Getenv("FAKE_SEND_UNREADABLE") == "1" {
				err = os.ErrPermission
			}
			if err == nil {
				remote = r
			} else if _, lerr := os.Lstat(filepath.Join(dir, hold.RemoteFile)); lerr == nil && gen > 0 {
				// As pkg/sched's handleHUP: there but unreadable
				// holds all remote delivery.
				remote = hold.Flag{Set: true, All: true}
				failed = "reread-failed holdremote\n"
			}
		}
		yn := "no"
		if local.Set {
			yn = "yes"
		}
		// The format of pkg/sched's writeStatus.
		text := fmt.Sprintf("pid %d\ngeneration %d\nholdlocal %s\nholdremote %s\nsince-local 0\nsince-remote 1700000000\nqueued-local 1\nqueued-remote 2\nstarted %d\n",
			os.Getpid(), gen, yn, remote.SendForm(), started) + failed + concurrency + strings.Join(results, "")
		// FAKE_SEND_EXITING=1 says it got TERM and is finishing.
		if os.Getenv("FAKE_SEND_EXITING") == "1" {
			text += "exiting yes\n"
		}
		tmp := filepath.Join(root, StatusFile+".tmp")
		if err := os.WriteFile(tmp, []byte(text), 0644); err != nil {
			die(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, StatusFile)); err != nil {
			die(err)
		}
	}
	// FAKE_SEND_QUIETSTART=1 writes no status at start: sendstatus still
	// shows the qmail-send before a restart until the first signal.
	if os.Getenv("FAKE_SEND_QUIETSTART") != "1" {
		write(true)
	}
	// Bounded: a fake left behind by a crashed test exits on its own.
	limit := time.After(2 * time.Minute)
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				os.Exit(0)
			}
			if p := os.Getenv("FAKE_SEND_HUPLOG"); p != "" && s == syscall.SIGHUP {
				if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
					f.WriteString("HUP\n")
					f.Close()
				}
			}
			if !mute {
				gen++
				reread := !(skipHUP && s == syscall.SIGHUP)
				if !reread {
					skipHUP = false
				}
				write(reread)
			}
		case l := <-reqs:
			r, err := sched.ParseRequest([]byte(l))
			switch {
			case err != nil:
				results = append(results, "ctl "+r.Tag+" fail "+err.Error()+"\n")
			case r.Arg == "404":
				results = append(results, "ctl "+r.Tag+" fail message 404 is not in the queue\n")
			case r.Arg == "410":
				os.Exit(0) // gone without answering
			default:
				results = append(results, "ctl "+r.Tag+" ok fake "+r.Verb+" "+r.Arg+"\n")
			}
			write(true)
			if r.Arg == "409" {
				os.Exit(0) // answered, then gone
			}
		case <-limit:
			os.Exit(1)
		}
	}
}

// startFakeQuiet starts a fake qmail-send with FAKE_SEND_QUIETSTART=1 and
// waits until LocateSend finds it; it is killed at the end of the test.
func startFakeQuiet(t *testing.T, root string, env ...string) *exec.Cmd {
	t.Helper()
	return launchFake(t, root, func(cmd *exec.Cmd) bool {
		pid, err := LocateSend(root)
		return err == nil && pid == cmd.Process.Pid
	}, append([]string{"FAKE_SEND_QUIETSTART=1"}, env...)...)
}

// startFake starts a fake qmail-send on root and waits until it holds the
// lock; it is killed at the end of the test.
func startFake(t *testing.T, root string, env ...string) *exec.Cmd {
	t.Helper()
	return launchFake(t, root, func(cmd *exec.Cmd) bool {
		st, _ := ReadStatus(root)
		return st.Generation() >= 0 && st["pid"] == fmt.Sprint(cmd.Process.Pid)
	}, env...)
}

// startFakeAs is startFake with the fake qmail-send run as uid and gid
// (needs root), as the real one runs as qmails: qmailctl takes a holder
// of sendmutex for qmail-send only when it runs as the tree's qmails.
// The tree's queue is given to uid, the directories above it made
// searchable, and the test binary copied where uid can run it.
func startFakeAs(t *testing.T, root string, uid, gid int, env ...string) *exec.Cmd {
	t.Helper()
	for d := root; d != "/" && d != "."; d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(filepath.Join(root, "queue"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "fake-qmail-send")
	testutil.CopyTestBinary(t, prog)
	return launchFakeProg(t, root, prog, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, func(cmd *exec.Cmd) bool {
		st, _ := ReadStatus(root)
		return st.Generation() >= 0 && st["pid"] == fmt.Sprint(cmd.Process.Pid)
	}, env...)
}

// launchFake starts a fake qmail-send on root with env and waits up to 10
// s until ready says it is up; it is killed at the end of the test.
func launchFake(t *testing.T, root string, ready func(*exec.Cmd) bool, env ...string) *exec.Cmd {
	t.Helper()
	return launchFakeProg(t, root, os.Args[0], nil, ready, env...)
}

// launchFakeProg is launchFake running prog (a copy of the test binary),
// as cred when not nil.
func launchFakeProg(t *testing.T, root, prog string, cred *syscall.Credential, ready func(*exec.Cmd) bool, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(prog, "-test.run=^$")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Env = append(os.Environ(), append([]string{"FAKE_SEND_ROOT=" + root}, env...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for !ready(cmd) {
		if time.Now().After(deadline) {
			t.Fatal("fake qmail-send did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd
}
