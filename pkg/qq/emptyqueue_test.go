package qq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// TestEmptyQMAILQUEUE: QMAILQUEUE set but empty is set, as qmail's
// env_get says: it names no program, and the message is not queued
// ("unable to exec qq (#4.3.0)", temporary, qmail's execv("") failing),
// neither through the tree's qmail-queue, nor its queue service, nor a
// session's qmail-queue -m. It was taken as unset, and the message queued
// through bin/qmail-queue.
func TestEmptyQMAILQUEUE(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"QMAILQUEUE="}, ""},
		{[]string{"QMAILQUEUE=/a", "QMAILQUEUE="}, ""},
		{[]string{"QMAILQUEUE=", "QMAILQUEUE=/b"}, "/b"},
	} {
		if got := Program("/r", tc.env); got != tc.want {
			t.Errorf("Program(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "bin"), 0o755)
	ran := filepath.Join(root, "ran")
	// It queues nothing, and with -m ends at once (a session then fails
	// instead of waiting for its answer).
	os.WriteFile(filepath.Join(root, "bin", "qmail-queue"),
		[]byte("#!/bin/sh\n: > "+ran+"; test \"$1\" = -m && exit 0; cat >/dev/null\n"), 0o755)
	// A service that would take the message: nobody may connect. (One
	// that did would wait this long for its answer.)
	ln := serviceSocket(t, root, unix.SOCK_NONBLOCK)
	old := AnswerTimeout
	AnswerTimeout = 300 * time.Millisecond
	defer func() { AnswerTimeout = old }()
	env := &Envelope{Sender: "a@b", Recipients: []string{"c@d"}}
	opt := Options{Root: root, Env: []string{"QMAILQUEUE="}}
	check := func(what string, pid int, err error) {
		t.Helper()
		if err == nil || qerr.IsPerm(err) || err.Error() != "unable to exec qq (#4.3.0)" || pid != 0 {
			t.Errorf("%s: pid %d, %v (perm %v); want 0 and the temporary unable to exec qq (#4.3.0)", what, pid, err, qerr.IsPerm(err))
		}
	}
	pid, err := Queue(opt, strings.NewReader("x\n"), env)
	check("Queue", pid, err)
	s := NewSession(opt)
	if s.Multi() {
		t.Error("a session uses qmail-queue -m")
	}
	pid, _, err = s.Queue(strings.NewReader("x\n"), env)
	check("Session.Queue", pid, err)
	s.Close()
	if _, err := os.Stat(ran); err == nil {
		t.Error("bin/qmail-queue was run")
	}
	if c, _, err := unix.Accept(ln); err != unix.EAGAIN {
		if err == nil {
			unix.Close(c)
		}
		t.Errorf("the queue service was asked (accept: %v)", err)
	}
}
