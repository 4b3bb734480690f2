package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// System is a running qmail: ROOT/bin/qmail-start with its stdout (the log
// of qmail-send, since no logger arguments are given) captured line by line.
type System struct {
	tr     *Tree
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	done   chan struct{} // closed when qmail-start has exited
	logEOF chan struct{} // closed when the log pipe reached EOF
}

// Start runs ROOT/bin/qmail-start defaultdelivery (as the caller; as root
// qmail-start drops privileges itself) and waits until qmail-send has
// written its first status line. The system is stopped (TERM, then kill -9
// after 20 s) when the test ends.
func (tr *Tree) Start(t testing.TB, defaultdelivery string) *System {
	t.Helper()
	s := &System{tr: tr, done: make(chan struct{}), logEOF: make(chan struct{})}
	cmd := tr.Command("qmail-start", defaultdelivery)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("harness: qmail-start: %v", err)
	}
	cmd.Stderr = &logWriter{t: t, prefix: "qmail-start stderr: "}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: qmail-start: %v", err)
	}
	s.cmd = cmd
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		close(s.logEOF)
	}()
	go func() {
		<-s.logEOF // Wait closes the pipe: read it to the end first
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t, false) })
	if !Eventually(20*time.Second, func() bool { return s.count("status: local ") > 0 || s.exited() }) || s.exited() {
		t.Fatalf("harness: qmail-send did not start; log:\n%s", s.Log())
	}
	return s
}

// logWriter copies a child's stderr into the test log.
type logWriter struct {
	t      testing.TB
	prefix string
}

func (w *logWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

func (s *System) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Log returns every log line so far, each ending in a newline.
func (s *System) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) == 0 {
		return ""
	}
	return strings.Join(s.lines, "\n") + "\n"
}

// Lines returns the log lines so far.
func (s *System) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *System) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// Count returns how many log lines contain sub.
func (s *System) Count(sub string) int { return s.count(sub) }

// WaitLog waits until a log line contains substr; on timeout it fails the
// test and prints the log.
func (s *System) WaitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	s.WaitLogCount(t, substr, 1, timeout)
}

// WaitLogCount waits until n log lines contain substr.
func (s *System) WaitLogCount(t testing.TB, substr string, n int, timeout time.Duration) {
	t.Helper()
	if !Eventually(timeout, func() bool { return s.count(substr) >= n }) {
		t.Fatalf("harness: %d log lines with %q not seen within %v (got %d); log:\n%s",
			n, substr, timeout, s.count(substr), s.Log())
	}
}

// Pid returns qmail-send's pid as written in queue/lock/sendmutex (0 if
// the file holds none).
func (s *System) Pid() int {
	b, err := os.ReadFile(s.tr.Path("queue", "lock", "sendmutex"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Status returns queue/lock/sendstatus as a map.
func (s *System) Status() map[string]string {
	m := map[string]string{}
	b, _ := os.ReadFile(s.tr.Path("queue", "lock", "sendstatus"))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			m[k] = v
		}
	}
	return m
}

// Signal sends sig to qmail-send.
func (s *System) Signal(sig syscall.Signal) error {
	pid := s.Pid()
	if pid <= 0 {
		return fmt.Errorf("harness: no qmail-send pid in lock/sendmutex")
	}
	return syscall.Kill(pid, sig)
}

// HUP sends SIGHUP and waits until qmail-send has handled it (the
// generation in lock/sendstatus moved).
func (s *System) HUP(t testing.TB) {
	t.Helper()
	s.signalWait(t, syscall.SIGHUP)
}

// ALRM sends SIGALRM and waits until qmail-send has handled it.
func (s *System) ALRM(t testing.TB) {
	t.Helper()
	s.signalWait(t, syscall.SIGALRM)
}

func (s *System) signalWait(t testing.TB, sig syscall.Signal) {
	t.Helper()
	gen := s.Status()["generation"]
	if err := s.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if !Eventually(10*time.Second, func() bool {
		g := s.Status()["generation"]
		return g != "" && g != gen
	}) {
		t.Fatalf("harness: %v not handled within 10 s; log:\n%s", sig, s.Log())
	}
}

// Stop sends TERM to qmail-send and waits (up to 30 s) for qmail-start's
// process tree to end; it fails the test if qmail-send did not log
// "status: exiting".
func (s *System) Stop(t testing.TB) {
	t.Helper()
	s.stop(t, true)
}

func (s *System) stop(t testing.TB, check bool) {
	t.Helper()
	if s.exited() {
		return
	}
	s.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.killGroup()
		<-s.done
		if check {
			t.Fatalf("harness: qmail-send did not exit within 30 s of TERM; log:\n%s", s.Log())
		}
	}
	if check && s.count("status: exiting") == 0 {
		t.Errorf("harness: no \"status: exiting\"; log:\n%s", s.Log())
	}
}

// Kill9 kills qmail-send with SIGKILL (as a crash would) and waits until
// qmail-start's process tree is gone (the spawners and qmail-clean exit at
// EOF on their input). If they have not within 20 s, the process group
// qmail-start was started in is killed.
func (s *System) Kill9() {
	if pid := s.Pid(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.killGroup()
		<-s.done
	}
}

// killGroup kills the process group of the qmail-start this System began.
func (s *System) killGroup() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Wait waits until the system has exited on its own (up to timeout) and
// reports whether it did.
func (s *System) Wait(timeout time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(timeout):
		return false
	}
}
