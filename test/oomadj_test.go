package test

// The delivery agents volunteer to the OOM killer (pkg/oomadj): qmail-local,
// qmail-remote and qmail-getpw raise their oom_score_adj to oomadj.Score at
// start, in one-shot and keep mode, and a .qmail program inherits it.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/oomadj"
	"github.com/hqmail/hqmail/test/harness"
)

// oomAdjOf reads /proc/PID/oom_score_adj ("self" for this process).
func oomAdjOf(pid string) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "oom_score_adj"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// oomAgent runs as localUID when the tests run as root (the agents never
// run as root), as the current user otherwise.
func oomAgent(cmd *exec.Cmd) {
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: localUID, Gid: localUID, Groups: []uint32{}}}
	}
}

// startOomKept starts "bin/NAME -k" with a socket on fd 0 as qmail's
// spawners do and returns its pid once it has greeted.
func startOomKept(t *testing.T, tr *harness.Tree, name string) int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "child")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, tr.Bin(name), "-k")
	oomAgent(cmd)
	cmd.Stdin = child
	if err := cmd.Start(); err != nil {
		cancel()
		child.Close()
		unix.Close(fds[0])
		t.Fatal(err)
	}
	child.Close()
	t.Cleanup(func() {
		unix.Close(fds[0]) // end of file: it exits
		cmd.Process.Kill()
		cmd.Wait()
		cancel()
	})
	pfd := []unix.PollFd{{Fd: int32(fds[0]), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 30000); n != 1 || err != nil {
		t.Fatalf("%s -k: no greeting within 30 s (%v)", name, err)
	}
	hello := make([]byte, 64)
	n, err := unix.Read(fds[0], hello)
	if err != nil || n <= 0 || !strings.HasPrefix(string(hello[:n]), name+" -k ") {
		t.Fatalf("%s -k: greeting %q %v", name, hello[:max(n, 0)], err)
	}
	return cmd.Process.Pid
}

// oomPrecondition skips when this process cannot show the difference (no
// /proc, or a value at or above oomadj.Score already, which every program
// started from here inherits and keeps) and returns its own value.
func oomPrecondition(t *testing.T) int {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	own, err := oomAdjOf("self")
	if err != nil {
		t.Skipf("no /proc/self/oom_score_adj: %v", err)
	}
	if own >= oomadj.Score {
		t.Skipf("this process already has oom_score_adj %d; the agents inherit it and keep it", own)
	}
	return own
}

// TestOomScoreAdjKept: the kept qmail-local, qmail-remote and qmail-getpw
// run with oomadj.Score. As root they run as an ordinary uid from the
// tree's execute-only binaries (mode 0711), which the kernel runs
// non-dumpable: the case pkg/oomadj opens its dumpable window for.
func TestOomScoreAdjKept(t *testing.T) {
	own := oomPrecondition(t)
	tr := harness.Install(t)
	for _, name := range []string{"qmail-local", "qmail-remote", "qmail-getpw"} {
		pid := strconv.Itoa(startOomKept(t, tr, name))
		if got, err := oomAdjOf(pid); err != nil || got != oomadj.Score {
			t.Errorf("%s -k: oom_score_adj %d %v, want %d (this test's own: %d)", name, got, err, oomadj.Score, own)
		}
		// Non-dumpable again after the window: /proc/PID belongs to root,
		// not to the process's uid.
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+pid+"/oom_score_adj", &st); os.Geteuid() == 0 && err == nil && st.Uid != 0 {
			t.Errorf("%s -k: /proc/%s owned by uid %d after the window (left dumpable), want root", name, pid, st.Uid)
		}
	}
}

// TestOomScoreAdjRemote: a one-shot qmail-remote, held at the greeting of
// a peer that says nothing, runs with oomadj.Score.
func TestOomScoreAdjRemote(t *testing.T) {
	oomPrecondition(t)
	tr := harness.Install(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	tr.Control("smtproutes", "far.example:"+ln.Addr().String()+"\n")
	msgPath := filepath.Join(harness.TempRoot(t), "msg")
	if err := os.WriteFile(msgPath, []byte("Subject: oom\n\nhello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(msgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	remote := exec.Command(tr.Bin("qmail-remote"), "far.example", "a@example.net", "joe@far.example")
	oomAgent(remote)
	remote.Stdin = in
	if err := remote.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Process.Kill(); remote.Wait() })
	select {
	case c := <-accepted:
		t.Cleanup(func() { c.Close() })
	case <-time.After(30 * time.Second):
		t.Fatal("qmail-remote did not connect within 30 s")
	}
	if got, err := oomAdjOf(strconv.Itoa(remote.Process.Pid)); err != nil || got != oomadj.Score {
		t.Errorf("one-shot qmail-remote: oom_score_adj %d %v, want %d", got, err, oomadj.Score)
	}
}

// TestOomScoreAdjDelivery: through the whole system (qmail-start,
// qmail-lspawn, qmail-local kept and one-shot), the program of a .qmail
// line inherits oomadj.Score from qmail-local, while qmail-send keeps the
// value it started with.
func TestOomScoreAdjDelivery(t *testing.T) {
	own := oomPrecondition(t)
	tr := schedTree(t, map[string]string{"box-default": "|cat /proc/self/oom_score_adj >> oom.out\n"})
	sys := tr.Start(t, "./Maildir/")
	want := strconv.Itoa(oomadj.Score)
	for _, cache := range []string{"5", "0"} { // kept qmail-local, then one per delivery
		tr.Control("localcache", cache+"\n")
		out := tr.Path("alias", "oom.out")
		os.Remove(out)
		if err := tr.Queue(t, "s@testhost.example", []string{"box-oom@testhost.example"}, []byte("Subject: oom\n\noom\n")); err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, 60*time.Second, func() bool {
			b, _ := os.ReadFile(out)
			return bytes.HasSuffix(b, []byte("\n"))
		})
		b, _ := os.ReadFile(out)
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("localcache %s: a .qmail program has oom_score_adj %q, want %s", cache, got, want)
		}
	}
	if got, err := oomAdjOf(strconv.Itoa(sys.Pid())); err != nil || got != own {
		t.Errorf("qmail-send: oom_score_adj %d %v, want %d (unchanged)", got, err, own)
	}
	sys.Stop(t)
}
