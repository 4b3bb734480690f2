package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qq"
)

// TestMain doubles as a fake qmail-queue (the helper-process idiom): with
// HQ_FAKEQQ_DIR set, the test binary reads the message on fd 0 and the
// envelope on fd 1 as qmail-queue does and stores both only when the
// envelope is complete; HQ_FAKEQQ_EXIT makes it exit with that code after
// reading; with HQ_FAKEQQ_GATE set it first writes PID.waiting in the
// directory and waits (at most a minute) for that file to exist. Copied
// to a tree's bin/qmail-smtpd it is qmail-smtpd (Main), whatever the
// environment its qmail-queue is to inherit says.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "qmail-smtpd" {
		os.Exit(Main(os.Args[1:], os.Stderr))
	}
	if dir := os.Getenv("HQ_FAKEQQ_DIR"); dir != "" {
		os.Exit(fakeQmailQueue(dir))
	}
	os.Exit(m.Run())
}

func fakeQmailQueue(dir string) int {
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		return qq.ExitRead
	}
	env, err := io.ReadAll(os.NewFile(1, "envelope"))
	if err != nil {
		return qq.ExitRead
	}
	if gate := os.Getenv("HQ_FAKEQQ_GATE"); gate != "" {
		os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+".waiting"), nil, 0o644)
		for i := 0; i < 600; i++ {
			if _, err := os.Stat(gate); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if c := os.Getenv("HQ_FAKEQQ_EXIT"); c != "" {
		n, _ := strconv.Atoi(c)
		return n
	}
	if _, err := qq.ParseEnvelope(env); err != nil {
		return qq.ParseExit(err)
	}
	name := filepath.Join(dir, strconv.Itoa(os.Getpid()))
	if os.WriteFile(name+".msg", msg, 0o644) != nil || os.WriteFile(name+".env", env, 0o644) != nil {
		return qq.ExitWrite
	}
	return 0
}

// queued is one message as qmail-queue received it.
type queued struct {
	Msg string
	Env *qq.Envelope
}

// memQueue replaces qmail-queue in most tests: it keeps what a real
// qmail-queue would have queued (only complete messages with envelope).
type memQueue struct {
	mu   sync.Mutex
	msgs []queued
	fail error      // returned instead of queueing, when set
	envs [][]string // the environment each message was queued with
}

func (q *memQueue) queue(opt qq.Options, msg io.Reader, env *qq.Envelope) (int, error) {
	b, err := io.ReadAll(msg)
	if err != nil {
		return 4242, qq.ExitError(qq.ExitRead)
	}
	if q.fail != nil {
		return 4242, q.fail
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, queued{string(b), env})
	q.envs = append(q.envs, opt.Env)
	return 4242, nil
}

func (q *memQueue) all() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queued(nil), q.msgs...)
}

// useMemQueue installs a memQueue for the test.
func useMemQueue(t *testing.T) *memQueue {
	q := &memQueue{}
	old := queue
	queue = q.queue
	t.Cleanup(func() { queue = old })
	return q
}

// testRoot makes a qmail tree with control files.
func testRoot(t *testing.T, controls map[string]string) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"me": "mx.example.org\n", "rcpthosts": "example.org\n.example.net\n"}
	for k, v := range controls {
		base[k] = v
	}
	for k, v := range base {
		if v == "\x00absent" {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, "control", k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// server is a loopback listener serving every connection with Serve.
type server struct {
	addr string
	cfg  *Config
	peer Peer
	wg   sync.WaitGroup
	mu   sync.Mutex
	oks  []bool // results of finished sessions
}

func noEnv(string) (string, bool) { return "", false }

// startServer loads the controls of root and serves on 127.0.0.1:0 as the
// given peer. adjust may change the config before use.
func startServer(t *testing.T, root string, peer Peer, adjust func(*Config)) *server {
	t.Helper()
	cfg, warn, err := LoadConfig(root, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if warn != nil {
		t.Logf("warning: %v", warn)
	}
	cfg.Now = func() time.Time { return time.Unix(1795665003, 0) }
	if adjust != nil {
		adjust(cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: ln.Addr().String(), cfg: cfg, peer: peer}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				ok := Serve(c, cfg, peer, nil)
				s.mu.Lock()
				s.oks = append(s.oks, ok)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("sessions still running 30s after the test")
		}
	})
	return s
}

// sessionsDone waits (bounded) until n sessions have finished.
func (s *server) sessionsDone(t *testing.T, n int) []bool {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		k := len(s.oks)
		s.mu.Unlock()
		if k >= n {
			s.mu.Lock()
			defer s.mu.Unlock()
			return append([]bool(nil), s.oks...)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d sessions finished within 20s", n)
	return nil
}

var loopPeer = Peer{RemoteIP: "127.0.0.1", RemoteHost: "localhost", LocalHost: "mx.example.org"}

// client is a raw SMTP dialogue.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, s *server) *client {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReaderSize(c, 1<<16)}
}

// reply reads one (possibly multi-line) reply and returns its lines.
func (c *client) reply() []string {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply after %q: %v", lines, err)
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return lines
		}
	}
}

func (c *client) last() string {
	c.t.Helper()
	r := c.reply()
	return r[len(r)-1]
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends a command line (none if empty) and returns the last line of the reply.
func (c *client) cmd(line string) string {
	c.t.Helper()
	if line != "" {
		c.send(line + "\r\n")
	}
	return c.last()
}

// expect sends a command and checks the exact (last) reply line.
func (c *client) expect(line, want string) {
	c.t.Helper()
	if got := c.cmd(line); got != want {
		c.t.Errorf("%q: got %q, want %q", line, got, want)
	}
}

// expectPrefix checks only the start of the reply.
func (c *client) expectPrefix(line, want string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, want) {
		c.t.Errorf("%q: got %q, want %q...", line, got, want)
	}
	return got
}

// closed reports whether the server closed the connection (bounded wait).
func (c *client) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := c.r.ReadByte()
	return err == io.EOF || err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// textprotoDot dot-stuffs a message given with LF line ends for DATA.
func textprotoDot(msg string) string {
	var b bytes.Buffer
	w := textproto.NewWriter(bufio.NewWriter(&b)).DotWriter()
	io.WriteString(w, msg)
	w.Close()
	return b.String()
}

func fmtEnv(e *qq.Envelope) string {
	if e == nil {
		return "<nil>"
	}
	return fmt.Sprintf("F%s T%s", e.Sender, strings.Join(e.Recipients, " T"))
}
