package test

import (
	"fmt"
	"io"
	"log"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/test/harness"
)

// barrierSink is an SMTP sink that holds every session at MAIL until
// target sessions are connected at once (or, bounded, until wait has
// passed since the first session arrived), so the number of sessions open
// at the same time shows how many deliveries qmail-send runs in parallel
// without depending on how fast they are.
type barrierSink struct {
	IP   string
	Port int

	target int
	wait   time.Duration

	mu      sync.Mutex
	open    int // connections open now
	peak    int // most connections open at once
	first   time.Time
	tripped bool
	cond    *sync.Cond
	got     int // messages accepted
}

type barrierConn struct {
	net.Conn
	s    *barrierSink
	once sync.Once
}

func (c *barrierConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

type barrierListener struct {
	net.Listener
	s *barrierSink
}

func (l *barrierListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.s
	s.mu.Lock()
	s.open++
	s.peak = max(s.peak, s.open)
	if s.first.IsZero() {
		s.first = time.Now()
	}
	if s.open >= s.target {
		s.tripped = true
	}
	s.mu.Unlock()
	s.cond.Broadcast()
	return &barrierConn{Conn: c, s: s}, nil
}

// hold blocks until the barrier trips or its time is up.
func (s *barrierSink) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := s.first.Add(s.wait)
	if !s.tripped && time.Now().Before(deadline) {
		// Wake this waiter at the deadline even if nobody connects.
		t := time.AfterFunc(time.Until(deadline), s.cond.Broadcast)
		defer t.Stop()
	}
	for !s.tripped && time.Now().Before(deadline) {
		s.cond.Wait()
	}
	s.tripped = true // once released, every later session passes too
}

func (s *barrierSink) counts() (peak, got int, tripped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.got, s.tripped
}

type barrierSession struct{ s *barrierSink }

func (b barrierSession) Reset()        {}
func (b barrierSession) Logout() error { return nil }
func (b barrierSession) Mail(string, *smtp.MailOptions) error {
	b.s.hold()
	return nil
}
func (b barrierSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (b barrierSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	b.s.mu.Lock()
	b.s.got++
	b.s.mu.Unlock()
	return nil
}

func startBarrierSink(t *testing.T, target int, wait time.Duration) *barrierSink {
	t.Helper()
	ln := listen(t, "", 2525)
	s := &barrierSink{IP: hostOf(ln), Port: portOf(ln), target: target, wait: wait}
	s.cond = sync.NewCond(&s.mu)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return barrierSession{s}, nil
	}))
	srv.Domain = "barrier.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 2 * wait
	srv.WriteTimeout = 30 * time.Second
	done := make(chan struct{})
	go func() { srv.Serve(&barrierListener{Listener: ln, s: s}); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return s
}

var remoteUsedRe = regexp.MustCompile(`status: local \d+/\d+ remote (\d+)/(\d+)`)

// TestConcurrencyRemote300: with concurrencyremote 300, releasing a
// holdremote'd queue of 300 messages runs more than 120 remote deliveries
// at once (qmail's one-byte spawner protocol stops at 120; qmail-rspawn
// announces 500 in the wide form). The sink holds every session until 300
// are connected, bounded by a timeout; the assert is on the number of
// sessions the sink saw at once, not on time.
func TestConcurrencyRemote300(t *testing.T) {
	const total = 300
	var nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err == nil && unix.Geteuid() != 0 && nproc.Cur < 16*total {
		t.Skipf("RLIMIT_NPROC %d is too low for %d qmail-remote processes at once", nproc.Cur, total)
	}
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err == nil && nofile.Max < 2*total+64 {
		t.Skipf("RLIMIT_NOFILE hard limit %d is too low for the sink's %d connections", nofile.Max, total)
	}
	tr := schedTree(t, nil)
	s := startBarrierSink(t, total, 90*time.Second)
	tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", s.IP, s.Port))
	tr.Control("concurrencyremote", strconv.Itoa(total)+"\n")
	tr.Control("holdremote", "1\n")
	sys := tr.Start(t, "./Maildir/")
	sys.WaitLog(t, "hold: remote held, 0 messages waiting", 10*time.Second)
	// The effective limit is min(control, announced) = 300.
	sys.WaitLog(t, fmt.Sprintf(" remote 0/%d", total), time.Second)
	queueN(t, tr, 0, total, "box@testhost.example", "joe@far.example")
	harness.WaitFor(t, 120*time.Second, func() bool { return sys.Count("new msg ") >= total })
	if n := sys.Count("starting delivery"); n != 0 {
		t.Fatalf("%d deliveries started while held", n)
	}
	tr.RemoveControl("holdremote")
	sys.HUP(t)
	sys.WaitLog(t, fmt.Sprintf("hold: remote released, %d messages due now", total), 10*time.Second)
	harness.WaitFor(t, 180*time.Second, func() bool {
		_, got, _ := s.counts()
		return got >= total
	})
	sys.WaitLogCount(t, "end msg ", total, 60*time.Second)
	peak, got, _ := s.counts()
	used := 0
	for _, m := range remoteUsedRe.FindAllStringSubmatch(sys.Log(), -1) {
		n, _ := strconv.Atoi(m[1])
		used = max(used, n)
		if m[2] != strconv.Itoa(total) {
			t.Fatalf("status line with remote limit %s, want %d", m[2], total)
		}
	}
	t.Logf("sink: %d messages, %d sessions at once; qmail-send: up to %d remote deliveries at once", got, peak, used)
	if peak <= 120 || used <= 120 {
		t.Errorf("at most %d sessions at once at the sink (%d deliveries in qmail-send's status); want more than 120", peak, used)
	}
	if used > total || peak > total {
		t.Errorf("more than %d at once: sink %d, status %d", total, peak, used)
	}
	sys.Stop(t)
}
