package test

// The queue service (qmail-queued(8)): started by qmail-start, used by
// sendmail while it runs, and never needed: without it sendmail runs
// qmail-queue and the mail is the same.

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
