package smtpd

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// memConfig is the config of a default tree, with sessions queueing into
// a memQueue.
func memConfig(t *testing.T) *Config {
	t.Helper()
	useMemQueue(t)
	cfg, _, err := LoadConfig(testRoot(t, nil), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A session on fd 0/1 (tcpserver, inetd, sendmail -bs) that ends with QUIT
// ends cleanly and logs nothing: go-smtp sets a read deadline on the
// connection it has just closed, and that must read as the end of the
// session, not as an error ("use of closed file" in every session's log).
func TestStdioQuitLogsNothing(t *testing.T) {
	cfg := memConfig(t)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer outR.Close()
	// os.Pipe's files are polled, as pollable makes fd 0/1: deadlines
	// work. The session closes inR and outW.
	conn := &stdioConn{in: inR, out: outW, local: stdioAddr("mx.example.org"), remote: stdioAddr("192.0.2.7")}
	var logged bytes.Buffer
	done := make(chan bool, 1)
	go func() { done <- Serve(conn, cfg, loopPeer, log.New(&logged, "", 0)) }()
	io.WriteString(inW, "HELO client.example\r\nQUIT\r\n")
	outR.SetReadDeadline(time.Now().Add(20 * time.Second))
	replies, _ := io.ReadAll(outR)
	select {
	case ok := <-done:
		if !ok {
			t.Errorf("session after QUIT not ok")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("session did not end after QUIT")
	}
	if !strings.HasSuffix(string(replies), "221 mx.example.org\r\n") {
		t.Errorf("replies %q", replies)
	}
	if logged.Len() > 0 {
		t.Errorf("logged %q", logged.String())
	}
}

// A client that sends and never reads: the first reply's write times out
// and the session ends (qmail: a timed-out write exits silently). go-smtp
// alone ignores the failed write and goes on reading commands, so such a
// client kept its session (and a -listen slot) as long as it liked.
func TestWriteTimeoutEndsSession(t *testing.T) {
	cfg := memConfig(t)
	cfg.Timeout = 200 * time.Millisecond
	srv, cli := net.Pipe() // no buffer: every unread reply blocks its write
	defer cli.Close()
	done := make(chan bool, 1)
	go func() { done <- Serve(srv, cfg, loopPeer, nil) }()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cli.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := cli.Write([]byte("NOOP\r\n")); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}()
	select {
	case ok := <-done:
		if ok {
			t.Error("session ok after its write timed out")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("session still running 20 s after its first write timed out")
	}
}

// A client that closes its side in the middle of DATA gets no reply to
// it (qmail exits silently on end of input), and nothing is queued.
func TestEOFInDataSilent(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nSubject: cut\r\n\r\npartial\r\n")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	replies, _ := io.ReadAll(c)
	if !strings.HasSuffix(string(replies), "354 go ahead\r\n") {
		t.Errorf("replies %q, want nothing after 354", replies)
	}
	if oks := s.sessionsDone(t, 1); oks[0] {
		t.Error("session ok after the client left mid-DATA")
	}
	if n := len(q.all()); n != 0 {
		t.Errorf("%d messages queued", n)
	}
}
