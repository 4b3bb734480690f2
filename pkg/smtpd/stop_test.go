package smtpd

import (
	"bufio"
	"errors"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

const wantStopping = "421 mx.example.org service shutting down, closing transmission channel (#4.3.2)"

// stopServer is a Listener on a loopback port whose qmail-queue is this
// test binary, storing what it queues in dir.
type stopServer struct {
	l    *Listener
	srv  *server
	done chan error
	dir  string
	logb *testutil.SyncBuffer
}

// startStopServer serves a Listener with the given StopWait; env is added
// to qmail-queue's environment. The test's end stops it, cutting what is
// left.
func startStopServer(t *testing.T, wait time.Duration, env ...string) *stopServer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stopServer{done: make(chan error, 1), dir: dir, logb: &testutil.SyncBuffer{},
		srv: &server{addr: ln.Addr().String()}}
	s.l = &Listener{Root: testRoot(t, nil), Getenv: noEnv, Log: log.New(s.logb, "", 0), MaxConns: 4, StopWait: wait,
		QueueEnv: append([]string{"QMAILQUEUE=" + exe, "HQ_FAKEQQ_DIR=" + dir}, env...)}
	go func() { s.done <- s.l.Serve(ln) }()
	t.Cleanup(func() {
		s.l.Stop()
		s.l.Stop()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Errorf("listener did not stop")
		}
	})
	return s
}

// returned waits (bounded) for Serve to return and reports whether it did,
// with nil.
func (s *stopServer) returned(t *testing.T) bool {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		return true
	case <-time.After(20 * time.Second):
		t.Errorf("Serve has not returned 20s after the stop; log:\n%s", s.logb.String())
		return false
	}
}

// running reports whether Serve is still running (no wait).
func (s *stopServer) running() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return true
	}
}

// queued is the number of messages the fake qmail-queue stored.
func queuedIn(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.env"))
	return len(files)
}

// refused reports whether a connection to addr is refused.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// startData takes c through the envelope to the 354 and sends the first
// part of a message.
func startData(c *client) {
	c.t.Helper()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send("Subject: stop\r\n\r\nfirst part\r\n")
}

// TestStopIdle: on Stop, sessions that await a command (one after its
// HELO, one that has only had the greeting) are answered 421 and closed,
// and Serve returns. Before, a stop (TERM) cut them without a word.
func TestStopIdle(t *testing.T) {
	s := startStopServer(t, time.Minute)
	c1 := dial(t, s.srv)
	c1.last()
	c1.expectPrefix("HELO x", "250 ")
	c2 := dial(t, s.srv)
	c2.last()
	s.l.Stop()
	for i, c := range []*client{c1, c2} {
		if got := c.last(); got != wantStopping {
			t.Errorf("client %d: %q, want %q", i+1, got, wantStopping)
		}
		if !c.closed() {
			t.Errorf("client %d: not closed after the 421", i+1)
		}
	}
	if s.returned(t) {
		if got := s.logb.String(); !strings.Contains(got, "end 1 127.0.0.1 status 1") || !strings.Contains(got, "stopped\n") {
			t.Errorf("log:\n%s", got)
		}
	}
}

// TestStopMidData: a session in the middle of a message when the listener
// stops receives it to its end, answers 250 (queued once), then 421; new
// clients are refused meanwhile, and Serve waits for the session. Before,
// the session was cut: a message whose 250 was lost, sent again, was
// queued twice.
func TestStopMidData(t *testing.T) {
	s := startStopServer(t, time.Minute)
	c := dial(t, s.srv)
	c.last()
	startData(c)
	s.l.Stop()
	if !refused(s.srv.addr) {
		t.Errorf("a new connection was not refused after the stop")
	}
	if !s.running() {
		t.Errorf("Serve returned while a session was receiving a message")
	}
	c.send("second part\r\n.\r\n")
	if got := c.last(); !strings.HasPrefix(got, "250 ok ") {
		t.Errorf("end of message: %q, want 250 ok", got)
	}
	if got := c.last(); got != wantStopping {
		t.Errorf("after the message: %q, want %q", got, wantStopping)
	}
	if !c.closed() {
		t.Errorf("not closed after the 421")
	}
	s.returned(t)
	if n := queuedIn(s.dir); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}
}

// TestStopPipelined: commands pipelined after a message that was being
// received when the listener stopped are not run: the first is answered
// 421.
func TestStopPipelined(t *testing.T) {
	s := startStopServer(t, time.Minute)
	c := dial(t, s.srv)
	c.last()
	startData(c)
	s.l.Stop()
	c.send(".\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
	if got := c.last(); !strings.HasPrefix(got, "250 ok ") {
		t.Errorf("end of message: %q, want 250 ok", got)
	}
	if got := c.last(); got != wantStopping {
		t.Errorf("after the message: %q, want %q", got, wantStopping)
	}
	s.returned(t)
	if n := queuedIn(s.dir); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}
}

// TestStopQueueRunning: a session whose qmail-queue is still at work when
// the listener stops waits for its result and answers it, then 421.
func TestStopQueueRunning(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	s := startStopServer(t, time.Minute, "HQ_FAKEQQ_GATE="+gate)
	c := dial(t, s.srv)
	c.last()
	startData(c)
	c.send(".\r\n")
	for i := 0; i < 400; i++ {
		if w, _ := filepath.Glob(filepath.Join(s.dir, "*.waiting")); len(w) > 0 {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if w, _ := filepath.Glob(filepath.Join(s.dir, "*.waiting")); len(w) == 0 {
		t.Fatal("qmail-queue did not get the message")
	}
	s.l.Stop()
	if !refused(s.srv.addr) {
		t.Errorf("a new connection was not refused after the stop")
	}
	if !s.running() {
		t.Errorf("Serve returned while a session waited for qmail-queue")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := c.last(); !strings.HasPrefix(got, "250 ok ") {
		t.Errorf("end of message: %q, want 250 ok", got)
	}
	if got := c.last(); got != wantStopping {
		t.Errorf("after the message: %q, want %q", got, wantStopping)
	}
	s.returned(t)
	if n := queuedIn(s.dir); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}
}

// TestStopRefusesNew: once stopped, the listener takes no new client
// (connection refused), even with a session still running.
func TestStopRefusesNew(t *testing.T) {
	s := startStopServer(t, time.Minute)
	c := dial(t, s.srv)
	c.last()
	startData(c)
	s.l.Stop()
	if !refused(s.srv.addr) {
		t.Errorf("a new connection was not refused while a session finishes")
	}
	c.send(".\r\n")
	c.last()
	c.last()
	s.returned(t)
	if !refused(s.srv.addr) {
		t.Errorf("a new connection was not refused after Serve returned")
	}
}

// TestStopCutsStalled: a client that stalls in the middle of a message
// does not keep the listener: after StopWait its session is cut (nothing
// queued) and Serve returns. A second Stop cuts at once.
func TestStopCutsStalled(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wait   time.Duration
		second bool
	}{
		{"StopWait", 300 * time.Millisecond, false},
		{"second Stop", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStopServer(t, tc.wait)
			c := dial(t, s.srv)
			c.last()
			startData(c)
			s.l.Stop()
			if tc.second {
				s.l.Stop()
			}
			if !c.closed() {
				t.Errorf("stalled session not cut")
			}
			if s.returned(t) {
				if got := s.logb.String(); !strings.Contains(got, "stopped: 1 session cut") {
					t.Errorf("log:\n%s", got)
				}
			}
			if n := queuedIn(s.dir); n != 0 {
				t.Errorf("%d messages queued from a cut session", n)
			}
		})
	}
}

// TestStopBeforeServe: a Stop that comes before Serve (a signal during
// the start) makes Serve close the listener and return at once.
func TestStopBeforeServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Root: testRoot(t, nil), Getenv: noEnv}
	l.Stop()
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		ln.Close()
		t.Fatal("Serve did not return")
	}
	if !refused(ln.Addr().String()) {
		t.Errorf("listener not closed")
	}
}

// TestStopSignal runs qmail-smtpd -listen as a process (this test binary
// copied to a tree's bin/qmail-smtpd) and sends it SIGTERM: the idle
// session gets 421, the one in the middle of a message its 250 (queued
// once) then 421, new clients are refused, and the process exits 0.
// Before, TERM killed the process and cut both sessions.
func TestStopSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) { stopSignal(t, sig) })
	}
}

func stopSignal(t *testing.T, sig syscall.Signal) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := testRoot(t, nil)
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "bin", "qmail-smtpd")
	testutil.CopyTestBinary(t, prog)
	dir := t.TempDir()
	cmd := exec.Command(prog, "-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "QMAILQUEUE="+exe, "HQ_FAKEQQ_DIR="+dir)
	addr, _, exited := startListenerProc(t, cmd)
	srv := &server{addr: addr}
	idle := dial(t, srv)
	idle.last()
	idle.expectPrefix("HELO x", "250 ")
	mid := dial(t, srv)
	mid.last()
	startData(mid)
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if got := idle.last(); got != wantStopping {
		t.Errorf("idle session: %q, want %q", got, wantStopping)
	}
	// The idle session's 421 shows the signal was taken: the listener
	// is closed by then.
	if !refused(addr) {
		t.Errorf("a new connection was not refused after %v", sig)
	}
	mid.send("second part\r\n.\r\n")
	if got := mid.last(); !strings.HasPrefix(got, "250 ok ") {
		t.Errorf("end of message: %q, want 250 ok", got)
	}
	if got := mid.last(); got != wantStopping {
		t.Errorf("after the message: %q, want %q", got, wantStopping)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("qmail-smtpd after %v: %v, want exit 0", sig, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("qmail-smtpd still runs 30s after %v", sig)
	}
	if n := queuedIn(dir); n != 1 {
		t.Errorf("%d messages queued, want 1", n)
	}
}

// TestStopIgnoredHUP (regression QA): a listener started with HUP
// ignored (under nohup) keeps it ignored and outlives its terminal; it
// stopped at the hangup once -listen caught HUP. TERM still stops it.
func TestStopIgnoredHUP(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := testRoot(t, nil)
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "bin", "qmail-smtpd")
	testutil.CopyTestBinary(t, prog)
	cmd := exec.Command("sh", "-c", `trap "" HUP; exec "$0" -listen 127.0.0.1:0`, prog)
	cmd.Env = append(os.Environ(), "QMAILQUEUE="+exe, "HQ_FAKEQQ_DIR="+t.TempDir())
	addr, logc, exited := startListenerProc(t, cmd)
	srv := &server{addr: addr}
	before := dial(t, srv)
	before.last()
	before.expectPrefix("HELO x", "250 ")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The session goes on, and a new one is served: a stop would have
	// answered the next command with the 421 and closed the port.
	before.expectPrefix("NOOP", "250 ")
	after := dial(t, srv)
	after.last()
	after.expectPrefix("HELO y", "250 ")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := after.last(); got != wantStopping {
		t.Errorf("after TERM: %q, want %q", got, wantStopping)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("qmail-smtpd after TERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("qmail-smtpd still runs 30s after TERM")
	}
	// Every line it logged is read by now (exited comes after EOF).
	for len(logc) > 0 {
		if l := <-logc; strings.Contains(l, "caught HUP") {
			t.Errorf("the ignored HUP was caught: %q", l)
		}
	}
}

// startListenerProc starts cmd, a qmail-smtpd -listen process, and
// returns the address it says it listens on, its log lines (up to 100
// unread are kept) and its exit (sent once its log has ended). The
// process is killed and collected when the test ends.
func startListenerProc(t *testing.T, cmd *exec.Cmd) (addr string, logc <-chan string, exited <-chan error) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ex := make(chan error, 1)
	waited := make(chan struct{}) // closed once the process is collected
	lc := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lc <- sc.Text():
			default:
			}
		}
		ex <- cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
		}
	})
	for addr == "" {
		select {
		case l := <-lc:
			if a, ok := strings.CutPrefix(l, "qmail-smtpd: listening on "); ok {
				addr, _, _ = strings.Cut(a, ",")
			}
		case err := <-ex:
			t.Fatalf("qmail-smtpd exited: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("qmail-smtpd did not say where it listens")
		}
	}
	return addr, lc, ex
}
