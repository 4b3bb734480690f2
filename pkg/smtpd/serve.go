package smtpd

import (
	"errors"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	smtp "github.com/emersion/go-smtp"
)

// Serve runs one SMTP session on conn with a go-smtp server of its own
// (each connection has its own greeting, limits and peer values), behind
// the front that gives the dialogue qmail's texts and rules, and
// returns when the session is over. ok is false when it ended on a fatal
// reply, a timeout or a read error; qmail-smtpd then exits 1.
func Serve(conn net.Conn, cfg *Config, peer Peer, logger *log.Logger) (ok bool) {
	return serve(conn, cfg, peer, logger, nil)
}

// serve is Serve for a session of a Listener, which st stops at a command
// boundary (nil: never).
func serve(conn net.Conn, cfg *Config, peer Peer, logger *log.Logger, st *stopper) (ok bool) {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	cs := &connState{cfg: cfg, peer: peer, log: logger, helo: peer.RemoteHost, stop: st}
	tc := &trackConn{Conn: conn, closed: make(chan struct{}), cs: cs}
	cs.front = newFront(cs, tc)
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		cs.conn = c
		cs.sess = &session{cs: cs}
		return cs.sess, nil
	}))
	srv.Domain = cfg.Greeting
	srv.ReadTimeout = cfg.Timeout
	srv.WriteTimeout = cfg.Timeout
	srv.MaxLineLength = cfg.MaxLine
	// databytes is enforced on the decoded message (body) and on MAIL
	// SIZE= (session.Mail); go-smtp's own counter would count CRs too.
	// TLS is done by front, below go-smtp's view (see front.go).
	srv.ErrorLog = logger
	l := &oneListener{conn: cs.front, closed: tc.closed}
	srv.Serve(l)
	cs.queuer.close()
	return !cs.failed.Load()
}

// trackConn tells the one-shot listener when go-smtp has closed the
// connection and notes read timeouts.
type trackConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
	cs     *connState
}

func (c *trackConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.cs.failed.Store(true)
	}
	return n, err
}

func (c *trackConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

var errListenerDone = errors.New("smtpd: session over")

// oneListener hands go-smtp's Serve a single connection, then blocks until
// that connection is closed and ends Serve.
type oneListener struct {
	mu     sync.Mutex
	conn   net.Conn
	closed chan struct{}
}

func (l *oneListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, errListenerDone
}

func (l *oneListener) Close() error { return nil }

func (l *oneListener) Addr() net.Addr { return stdioAddr("stdio") }

// stdioAddr is the net.Addr of a connection on fd 0/1.
type stdioAddr string

func (a stdioAddr) Network() string { return "stdio" }
func (a stdioAddr) String() string  { return string(a) }

// stdioConn is the SMTP connection of a process started by tcpserver,
// inetd or a systemd socket: read fd 0, write fd 1. Deadlines work when
// the descriptors are sockets or pipes (made non-blocking, so the Go
// poller manages them); on anything else they are silently unavailable.
type stdioConn struct {
	in, out       *os.File
	local, remote net.Addr
	restore       []func() // undo the non-blocking mode, before closing
	once          sync.Once
	closed        atomic.Bool
}

func (c *stdioConn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	return n, netErr(err)
}

// netErr makes *os.File errors look like a socket's to go-smtp, which
// tests for timeouts with a type assertion to net.Error and for the end
// with net.ErrClosed.
func netErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded // a net.Error whose Timeout() is true
	case errors.Is(err, os.ErrClosed):
		return net.ErrClosed
	}
	return err
}

func (c *stdioConn) Write(p []byte) (int, error) {
	n, err := c.out.Write(p)
	return n, netErr(err)
}

func (c *stdioConn) Close() error {
	c.closed.Store(true)
	c.once.Do(func() {
		for _, f := range c.restore {
			f()
		}
	})
	err := c.in.Close()
	if e := c.out.Close(); err == nil {
		err = e
	}
	return err
}

func (c *stdioConn) LocalAddr() net.Addr  { return c.local }
func (c *stdioConn) RemoteAddr() net.Addr { return c.remote }

func noDeadline(err error) error {
	if errors.Is(err, os.ErrNoDeadline) {
		return nil
	}
	return err
}

// go-smtp sets a read deadline before each command, also on the
// connection it has just closed after QUIT: that must read as the end of
// the session (net.ErrClosed), not as an error to log. (*os.File's
// deadline methods give the poller's own "use of closed file" there.)

func (c *stdioConn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	return noDeadline(c.in.SetReadDeadline(t))
}

func (c *stdioConn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	return noDeadline(c.out.SetWriteDeadline(t))
}

func (c *stdioConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
