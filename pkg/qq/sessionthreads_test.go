package qq

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// osThreads is this process's OS thread count (/proc/self/status).
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("Threads: %q", v)
			}
			return n
		}
	}
	t.Skip("no Threads: line in /proc/self/status")
	return 0
}

// TestSessionThreads: a session's qmail-queue -m lives as long as the
// session (qmail-smtpd -listen keeps one per connected client), and
// waiting for it must not hold an OS thread each. With cmd.Wait blocked
// in waitid(2), n idle sessions were n more threads, and under a task
// limit (cgroup pids.max) the runtime died ("failed to create new OS
// thread") with every session instead of one qmail-queue failing
// (docs/man/qmail-smtpd.8, NOTES).
func TestSessionThreads(t *testing.T) {
	const n = 30
	root := sessionRoot(t)
	env := &Envelope{Sender: "a@b", Recipients: []string{"c@d"}}
	sessions := make([]*Session, 0, n)
	t.Cleanup(func() {
		for _, s := range sessions {
			s.Close()
		}
	})
	// One session first, so that whatever threads the first fork and the
	// first queued message need are in the baseline.
	warm := NewSession(Options{Root: root, Env: []string{}})
	sessions = append(sessions, warm)
	if _, _, err := warm.Queue(strings.NewReader("warm\n"), env); err != nil {
		t.Fatal(err)
	}
	before := osThreads(t)
	for i := 0; i < n; i++ {
		s := NewSession(Options{Root: root, Env: []string{}})
		sessions = append(sessions, s)
		if _, _, err := s.Queue(strings.NewReader("Subject: "+strconv.Itoa(i)+"\n\nbody\n"), env); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	// Every waiter has been started; give them a moment (bounded) to be
	// blocked wherever they block before counting.
	time.Sleep(200 * time.Millisecond)
	for _, s := range sessions {
		select {
		case <-s.p.done:
			t.Fatalf("qmail-queue %d ended while its session is open", s.p.pid)
		default:
		}
	}
	after := osThreads(t)
	t.Logf("%d idle sessions: %d OS threads, %d before", n, after, before)
	if after-before >= n/2 {
		t.Errorf("%d idle sessions took %d more OS threads (%d before, %d after); want fewer than %d",
			n, after-before, before, after, n/2)
	}
	// Closing them ends and reaps every qmail-queue.
	for i, s := range sessions {
		if err := s.Close(); err != nil {
			t.Errorf("session %d: Close: %v", i, err)
		}
	}
	sessions = nil
	if got := count(t, root, "todo"); got != n+1 {
		t.Errorf("todo has %d, want %d", got, n+1)
	}
}
