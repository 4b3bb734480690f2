package smtpd

import (
	"bufio"
	"context"
	"errors"
	"io"
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

// TestFitSessions: -c is kept while RLIMIT_NOFILE has room for that many
// sessions (fdsPerSession each beside fdsReserve), and lowered to what
// fits, at least 1, otherwise. Under "ulimit -n 64" the default 40
// sessions became 81 "451 qqt failure" replies out of 100 clients.
func TestFitSessions(t *testing.T) {
	for _, tc := range []struct {
		limit  int
		nofile int64
		want   int
	}{
		{40, 0, 40},       // limit unknown: kept
		{40, -1, 40},      // the same
		{40, 1 << 20, 40}, // plenty
		{40, 416, 40},     // exactly 16 + 40*10
		{40, 415, 39},     // one short
		{40, 64, 4},       // ulimit -n 64: (64-16)/10
		{40, 1024, 40},    // a common default soft limit
		{200, 1024, 100},  // (1024-16)/10
		{40, 26, 1},       // room for one
		{40, 20, 1},       // no room: still one
		{40, 3, 1},        // below the reserve: still one
		{1, 64, 1},
		{4, 64, 4},
		{5, 64, 4},
	} {
		if got := FitSessions(tc.limit, tc.nofile); got != tc.want {
			t.Errorf("FitSessions(%d, %d) = %d, want %d", tc.limit, tc.nofile, got, tc.want)
		}
	}
}

// TestListenerLowersLimit: a listener whose -c does not fit the hard
// descriptor limit serves fewer sessions and says so once, naming the
// limit. Run in a child process (the limit is the process's).
func TestListenerLowersLimit(t *testing.T) {
	if os.Getenv("HQ_SMTPD_CHILD") == "lowers" {
		listenerLowersChild(t)
		return
	}
	runChild(t, "TestListenerLowersLimit", "lowers", "")
}

func listenerLowersChild(t *testing.T) {
	rl := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logb := &testutil.SyncBuffer{}
	l := &Listener{Root: testRoot(t, nil), Getenv: noEnv, Log: log.New(logb, "", 0), MaxConns: 40}
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln) }()
	// One client is enough to see the status line with the lowered
	// number: four sessions held, the fifth waits.
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	want := "status: 4/4 sessions, new connections wait"
	for i := 0; i < 400 && !strings.Contains(logb.String(), want); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	// The sessions end on the clients' EOF; the listener, back at
	// Accept, finds it closed.
	ln.Close()
	for _, c := range conns {
		c.Close()
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Error("listener did not stop")
	}
	got := logb.String()
	if !strings.Contains(got, want) {
		t.Errorf("log lacks %q:\n%s", want, got)
	}
	if n := strings.Count(got, "warning: -c 40 lowered to 4: the descriptor limit (RLIMIT_NOFILE) is 64, hard limit 64;"); n != 1 {
		t.Errorf("%d lowering lines, want 1:\n%s", n, got)
	}
}

// TestQueueStartFailureLogged: a qmail-queue that cannot be started is
// answered "451 qqt failure" as in qmail, and the log names the system
// error, not qmail's caller text "unable to exec qq". Here the program
// does not exist.
func TestQueueStartFailureLogged(t *testing.T) {
	root := testRoot(t, nil) // no bin/qmail-queue
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logb := &testutil.SyncBuffer{}
	l := &Listener{Root: root, Getenv: noEnv, Log: log.New(logb, "", 0), MaxConns: 2, QueueEnv: []string{}}
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("listener did not stop")
		}
	})
	c := dial(t, &server{addr: ln.Addr().String()})
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
	c.expect("DATA", "451 qqt failure (#4.3.0)")
	c.expectPrefix("QUIT", "221 ")
	want := "unable to start " + filepath.Join(root, "bin", "qmail-queue") + ": no such file or directory"
	for i := 0; i < 400 && !strings.Contains(logb.String(), "end 1 "); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	if got := logb.String(); !strings.Contains(got, want+"\n") || strings.Contains(got, "unable to exec qq") {
		t.Errorf("log %q, want the line %q", got, want)
	}
}

// TestQueueStartEMFILE: with every descriptor taken, qmail-queue's pipes
// cannot be made; the client gets "451 qqt failure" and the log says
// "too many open files" (it said "unable to exec qq", although nothing
// was executed). Run in a child process, whose descriptors it fills.
func TestQueueStartEMFILE(t *testing.T) {
	if os.Getenv("HQ_SMTPD_CHILD") == "emfile" {
		queueStartEMFILEChild(t, os.Getenv("HQ_SMTPD_ROOT"))
		return
	}
	runChild(t, "TestQueueStartEMFILE", "emfile", testRoot(t, nil))
}

func queueStartEMFILEChild(t *testing.T, root string) {
	cfg, _, err := LoadConfig(root, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QueueEnv = []string{} // qmail-queue -m of root, through qq.Session
	srv, cli := net.Pipe()    // needs no descriptor
	defer cli.Close()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	rl := old
	rl.Cur = min(rl.Max, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	var fill []int
	for len(fill) < 1024 {
		fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("open: %v", err)
			}
			break
		}
		fill = append(fill, fd)
	}
	release := func() {
		for _, fd := range fill {
			syscall.Close(fd)
		}
		fill = nil
	}
	defer release()
	logb := &testutil.SyncBuffer{}
	done := make(chan bool, 1)
	go func() { done <- Serve(srv, cfg, loopPeer, log.New(logb, "", 0)) }()
	cli.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(cli)
	read := func() string {
		var l string
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if l = strings.TrimRight(s, "\r\n"); len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	read() // greeting
	var replies []string
	for _, cmd := range []string{"HELO x", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.org>", "DATA"} {
		io.WriteString(cli, cmd+"\r\n")
		replies = append(replies, read())
	}
	release()
	io.WriteString(cli, "QUIT\r\n")
	read()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("session did not end after QUIT")
	}
	if got := replies[3]; got != "451 qqt failure (#4.3.0)" {
		t.Errorf("DATA: %q (replies %q)", got, replies)
	}
	want := "unable to start qmail-queue: too many open files\n"
	if got := logb.String(); !strings.Contains(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}

// runChild runs the test named test again in a child process of the test
// binary, with HQ_SMTPD_CHILD=mode (and HQ_SMTPD_ROOT=root), and fails
// with its output when it fails.
func runChild(t *testing.T, test, mode, root string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "HQ_SMTPD_CHILD="+mode, "HQ_SMTPD_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Errorf("child %s: %v\n%s", test, err, out)
	}
}
