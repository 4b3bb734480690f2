package queue

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qq"
)

// sigIgnored reports whether pid's disposition of sig is "ignore" (the
// SigIgn mask of /proc/PID/status).
func sigIgnored(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	t.Fatalf("no SigIgn in /proc/%d/status", pid)
	return false
}

// TestSignalQuitIgnored: qmail-queue ignores SIGQUIT, as qmail's does
// (sig_miscignore). It was the Go runtime's: "SIGQUIT: quit" and a
// dump on fd 2, exit 2. A SIGQUIT while it reads its input changes
// nothing: the message is queued, exit 0, nothing on fd 2 (p.wait).
func TestSignalQuitIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	env := string((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode())
	for _, multi := range []bool{false, true} {
		t.Run("multi "+strconv.FormatBool(multi), func(t *testing.T) {
			root := newRoot(t)
			p := startQQ(t, root, multi, false)
			head, rest := "Subject: quit\n\nthe first part", ", the rest\n"
			if multi {
				write(t, p.msg, strconv.Itoa(len(head))+":"+head+",")
			} else {
				write(t, p.msg, head)
			}
			// Reading the message: past the signal set-up.
			waitUntil(t, "mess/S/ID", func() bool { return messFiles(root) == 1 })
			if !sigIgnored(t, p.cmd.Process.Pid, syscall.SIGQUIT) {
				t.Error("SIGQUIT is not ignored")
			}
			p.cmd.Process.Signal(syscall.SIGQUIT)
			if multi {
				write(t, p.msg, frame([]byte(rest), 100))
			} else {
				write(t, p.msg, rest)
			}
			p.msg.Close()
			write(t, p.env, env)
			p.env.Close()
			if multi {
				resultLine(t, line(t, p.resFile, p.res))
			}
			if ws := p.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("qmail-queue ended with status %#x (exit %d), want exit 0", uint32(ws), ws.ExitStatus())
			}
			q := queued(t, root)
			if len(q) != 1 {
				t.Fatalf("%d messages queued, want 1", len(q))
			}
			for _, m := range q {
				if !strings.HasSuffix(string(m), "\n"+head+rest) {
					t.Errorf("queued message %q", m)
				}
			}
		})
	}
}
