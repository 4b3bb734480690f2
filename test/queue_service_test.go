package test

// The queue service (qmail-queued(8)): started by qmail-start, used by
// sendmail while it runs, and never needed: without it sendmail runs
// qmail-queue and the mail is the same.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/test/harness"
)

// sendmailPid runs ROOT/bin/sendmail for rcpt and returns its pid.
func sendmailPid(t *testing.T, tr *harness.Tree, rcpt, subject string) int {
	t.Helper()
	cmd := tr.Command("sendmail", rcpt)
	cmd.Stdin = strings.NewReader("Subject: " + subject + "\n\nhello\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("sendmail: %v %s", err, out.String())
	}
	return cmd.Process.Pid
}

// receivedPid finds the delivered message with subject and returns the pid
// of its first Received line, "(qmail PID invoked by ...)".
func receivedPid(t *testing.T, tr *harness.Tree, subject string) int {
	t.Helper()
	var pid int
	harness.WaitFor(t, 30*time.Second, func() bool {
		for _, f := range tr.Glob(filepath.Join("alias", "Maildir", "new", "*")) {
			b, _ := os.ReadFile(f)
			if !strings.HasPrefix(string(b), "Return-Path: <") || !strings.Contains(string(b), "Delivered-To: box@testhost.example\n") ||
				!strings.Contains(string(b), "Subject: "+subject+"\n") {
				continue
			}
			_, rest, ok := strings.Cut(string(b), "Received: (qmail ")
			if !ok {
				t.Fatalf("no Received line:\n%s", b)
			}
			num, _, _ := strings.Cut(rest, " ")
			pid, _ = strconv.Atoi(num)
			return true
		}
		return false
	})
	return pid
}

func TestQueueService(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	sock := tr.Path("public", "qmail-queue")
	sys := tr.Start(t, "./Maildir/")
	harness.WaitFor(t, 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })

	// Through the service: the Received line names sendmail itself (the
	// service's caller), not a qmail-queue process.
	pid := sendmailPid(t, tr, "box@testhost.example", "via service")
	if got := receivedPid(t, tr, "via service"); got != pid {
		t.Errorf("Received names pid %d, want sendmail's %d (the service was not used)", got, pid)
	}

	// Stopped with qmail-send: the socket goes, sendmail runs qmail-queue
	// (another pid in the Received line), and the message waits in the
	// queue for the next start.
	sys.Stop(t)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after stop: %v", err)
	}
	pid = sendmailPid(t, tr, "box@testhost.example", "without service")
	if n := len(tr.QueueFiles("todo")); n != 1 {
		t.Errorf("%d messages in todo/ while stopped, want 1", n)
	}
	tr.Start(t, "./Maildir/")
	if got := receivedPid(t, tr, "without service"); got == pid || got == 0 {
		t.Errorf("Received names pid %d, sendmail was %d: want qmail-queue's own pid", got, pid)
	}
}

// TestQueueServiceLimitLowered: the soft descriptor limit of the running
// qmail-queued lowered (prlimit on its pid) to fewer descriptors than one
// job and its refusal machinery need: sendmail is refused by the service
// and queues through qmail-queue (not answered "qq trouble creating
// files" by a job that fails for want of descriptors); with the limit
// raised again it is taken by the service again.
func TestQueueServiceLimitLowered(t *testing.T) {
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	sock := tr.Path("public", "qmail-queue")
	tr.Start(t, "./Maildir/")
	harness.WaitFor(t, 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	var queued int
	harness.WaitFor(t, 20*time.Second, func() bool { queued = pidOf(tr.Bin("qmail-queued")); return queued > 0 })

	pid := sendmailPid(t, tr, "box@testhost.example", "before")
	if got := receivedPid(t, tr, "before"); got != pid {
		t.Fatalf("Received names pid %d, want sendmail's %d (the service was not used)", got, pid)
	}

	soft := softNofile(t, queued)
	t.Cleanup(func() { setSoftNofile(t, queued, soft) })
	// 64 (QA's figure) leaves room for one job beside the dozen the
	// service holds, but not for one job and the closers of refused
	// callers, each counted at a full packet of descriptors; 16 not even
	// for a lone job, which would fail with "qq trouble creating files".
	for _, limit := range []uint64{64, 16} {
		setSoftNofile(t, queued, limit)
		for i := range 2 {
			subject := "limit " + strconv.FormatUint(limit, 10) + " #" + strconv.Itoa(i)
			pid := sendmailPid(t, tr, "box@testhost.example", subject)
			if got := receivedPid(t, tr, subject); got == pid || got == 0 {
				t.Errorf("under a limit of %d: Received names pid %d, sendmail was %d: want qmail-queue's own pid", limit, got, pid)
			}
		}
	}

	setSoftNofile(t, queued, soft)
	pid = sendmailPid(t, tr, "box@testhost.example", "raised")
	if got := receivedPid(t, tr, "raised"); got != pid {
		t.Errorf("limit raised again: Received names pid %d, want sendmail's %d (the service was not used)", got, pid)
	}
	if p := pidOf(tr.Bin("qmail-queued")); p != queued {
		t.Errorf("qmail-queued is pid %d, was %d: it was restarted", p, queued)
	}
}

// softNofile reads the soft RLIMIT_NOFILE of process pid from
// /proc/PID/limits.
func softNofile(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("no descriptor limit in /proc/%d/limits:\n%s", pid, b)
	return 0
}

// setSoftNofile sets the soft RLIMIT_NOFILE of process pid, leaving its
// hard limit: with prlimit(2) when this process may (same user, or
// CAP_SYS_RESOURCE), else, as root, with prlimit(1) run as the process's
// own user and group. The test is skipped when neither can.
func setSoftNofile(t *testing.T, pid int, soft uint64) {
	t.Helper()
	var old unix.Rlimit
	err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old)
	if err == nil {
		err = unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: soft, Max: old.Max}, nil)
	}
	if err == nil {
		return
	}
	prlimit, lerr := exec.LookPath("prlimit")
	if err != unix.EPERM || os.Geteuid() != 0 || lerr != nil {
		t.Skipf("prlimit on pid %d: %v (no prlimit(1) to run as its user: %v)", pid, err, lerr)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prlimit, "--pid", strconv.Itoa(pid), "--nofile="+strconv.FormatUint(soft, 10)+":")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid, Gid: st.Gid, NoSetGroups: true}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("prlimit(1) as uid %d gid %d on pid %d: %v %s", st.Uid, st.Gid, pid, err, out)
	}
	if got := softNofile(t, pid); got != soft {
		t.Fatalf("soft descriptor limit of pid %d is %d after prlimit(1), want %d", pid, got, soft)
	}
}
