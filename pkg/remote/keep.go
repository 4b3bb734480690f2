package remote

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

// Keep mode (qmail-remote -k): one qmail-remote process serves a series of
// deliveries for qmail-rspawn and keeps the SMTP connection of the last one
// open for the next, so that a queue of mail to one destination goes over
// one connection instead of one connection and one process per message.
//
// The protocol is package keep's: the process greets with KeepHello on fd
// 0, a SOCK_SEQPACKET socket, then reads one packet per delivery holding
// "host\0sender\0recipient\0" (more recipients may follow, each NUL-ended)
// with the message's descriptor, and answers each with one packet holding
// exactly what a one-shot qmail-remote would have written on fd 1. It exits at end of file (after
// QUIT on the kept connection). It never decides how long to live: the
// spawner closes the socket of an idle process (control/smtpcache).
//
// Each delivery reads the control files afresh, as a one-shot run does. A
// kept connection is used for the next delivery only when that delivery
// would have connected the same way (keepKey: same host, route, TLS policy,
// HELO name, credentials and source address), only when the socket has
// nothing unread and no end of file pending, and for at most MaxKeptUses
// transactions or MaxKeptAge. When the peer turns out to have gone or to
// take no more (the MAIL command fails on the connection, or the peer
// refuses it with any 4xx or 5xx: a peer may limit the messages of one
// connection), the delivery is made again over a new connection, exactly
// as if nothing had been kept: nothing was accepted by the peer, so
// nothing can be duplicated, and the new connection's answer is the one
// reported. The first reply on a kept connection is waited for at most
// timeoutconnect, not timeoutremote, so that a link that died while the
// connection was idle costs what a failed connect costs.

// KeepHello is the first packet of qmail-remote -k.
const KeepHello = "qmail-remote -k 1\x00"

// Limits of one kept connection.
const (
	MaxKeptUses = 1000
	MaxKeptAge  = 5 * time.Minute
)

// maxRequest bounds a request packet (the addresses of one delivery).
const maxRequest = 256 << 10

// keepKey is what makes two deliveries connect the same way. A delivery
// routed by control/smtproutes connects to its relay whatever the
// recipient's domain, so its key holds the relay and not the domain: mail
// for every domain of a smarthost setup goes over one kept connection.
type keepKey struct {
	host, relay  string
	port         int
	routed       bool
	policy, helo string
	user, pass   string
	source       string
}

func (d *delivery) key() keepKey {
	k := keepKey{routed: d.routed, policy: d.policy, helo: d.cfg.Helo}
	if d.routed {
		k.relay, k.port = authKey(d.route.Relay), d.route.Port // "smarthost.test." is "SMARTHOST.test"
	} else {
		k.host = idna.Fold(d.host) // either spelling of an IDN: the same servers
	}
	if d.creds != nil {
		k.user, k.pass = d.creds.User, d.creds.Password
	}
	for _, ip := range d.cfg.OutgoingIP {
		k.source += ip.String() + " "
	}
	return k
}

// keeper holds the connection kept between deliveries.
type keeper struct {
	s *session
}

// park takes s (whose peer just accepted a message) to keep it for the next
// delivery, unless it has served its turn.
func (k *keeper) park(s *session) bool {
	if s.w.ioErr != nil || s.uses >= MaxKeptUses || time.Since(s.born) > MaxKeptAge {
		return false
	}
	k.drop()
	k.s, s.parked = s, true
	return true
}

// drop ends the kept connection, if any, with QUIT.
func (k *keeper) drop() {
	if k.s == nil {
		return
	}
	k.s.quit()
	k.s.close()
	k.s = nil
}

// reuse makes the delivery over the kept connection when there is one for
// the same destination. ok is false when the delivery is still to be made
// (nothing kept, kept for another destination, or gone: see the retry rule
// above); nothing has been written to d.out then.
func (d *delivery) reuse() (rep *report, ok bool) {
	k := d.keep
	if k == nil || k.s == nil {
		return nil, false
	}
	s := k.s
	k.s, s.parked = nil, false
	if s.key != d.key() || !s.idle() {
		s.quit()
		s.close()
		return nil, false
	}
	s.w.newTransaction()
	s.retry = false
	if !d.attach(s) {
		s.close()
		return &report{letter: 'Z', text: TextStopped}, true
	}
	s.w.shortNext = d.cfg.TimeoutConnect
	err := d.transaction(s, s.ext)
	if s.retry && !s.parked {
		// Say goodbye and let the peer see the end before the new
		// connection: a peer that allows one connection per client
		// counts this one until it has closed it.
		s.quitAndWait(d.cfg.TimeoutConnect)
	}
	if !s.parked {
		s.close() // aborted when the transaction was given up (close)
	}
	if s.retry {
		return nil, false
	}
	if errors.As(err, &rep) {
		if rep.letter == 'K' && s.plain != "" {
			rep.text += s.plain // still the connection made in clear
		}
		return rep, true
	}
	return &report{letter: 'Z', text: "Connected to " + s.ip + " but connection died. (#4.4.2)\n"}, true
}

// quitAndWait sends QUIT, ends our side of the connection and waits for
// the peer to close its side (waitEnd), reading nothing else. The end of
// our side is what a peer reading a message needs: under PIPELINING the
// DATA sent ahead may have drawn 354 before the transaction was given up
// (a recipient refused on a kept connection), and such a peer takes QUIT
// for a line of the message; at the end of the data it drops the message
// and closes. Without it the wait ran to its limit. Under TLS the end is a
// close_notify first, then the TCP connection's.
func (s *session) quitAndWait(limit time.Duration) {
	if s.w.ioErr != nil {
		return // gone already
	}
	s.quit()
	if tc, ok := s.w.conn.(*tls.Conn); ok {
		tc.CloseWrite()
	}
	s.endAndWait(limit)
}

// endAndWait ends our side of the TCP connection (no QUIT: after a failed
// handshake the peer is in no state for SMTP) and waits for the peer to
// close its side (waitEnd).
func (s *session) endAndWait(limit time.Duration) {
	c := s.raw
	if wc, ok := c.(*watchConn); ok {
		c = wc.Conn
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	waitEnd(c, limit)
}

// waitEnd reads c to its end, for at most limit (five seconds at most):
// the peer has let go of the connection then.
func waitEnd(c net.Conn, limit time.Duration) {
	if limit <= 0 || limit > 5*time.Second {
		limit = 5 * time.Second
	}
	c.SetReadDeadline(time.Now().Add(limit))
	io.Copy(io.Discard, c)
}

// idle reports whether the connection is as the last transaction left it:
// nothing buffered (under TLS, no record held by crypto/tls either: see
// wire.unread), nothing unread on the socket, no end of file from the
// peer (a peer that timed the connection out has closed it or sent 421),
// and its local address still this host's.
func (s *session) idle() bool {
	if s.w.ioErr != nil || len(s.w.pending) > 0 {
		return false
	}
	if n, err := s.w.unread(); n > 0 || err != nil {
		return false
	}
	if wc, ok := s.raw.(*watchConn); ok && wc.gone() {
		// Made from an address this host no longer has: the QUIT
		// cannot reach the peer, and must not later if the address
		// comes back; the connection is aborted, not closed.
		s.abort = true
		return false
	}
	sc, ok := s.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// The socket's read deadline is the one the last read set: on a
	// watched connection the end of its slice (watchEvery, 5 s), else
	// timeoutremote. A connection parked longer than that has it passed,
	// and a raw read is then refused before it looks: every kept
	// connection from a non-loopback address idle over 5 s was taken for
	// unclean, closed and dialed again. The next transaction sets its own.
	inner := s.raw
	if wc, ok := inner.(*watchConn); ok {
		inner = wc.Conn
	}
	inner.SetReadDeadline(time.Time{})
	clean := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		clean = err == unix.EAGAIN
		return true
	})
	return clean
}

// Serve is qmail-remote -k on the socket sock (fd 0): deliveries until end
// of file. It returns the exit code (0).
func Serve(root string, sock int) int {
	return serveGate(root, sock, catchTerm())
}

// serveGate is Serve with the stopGate g: a TERM between deliveries shuts
// the socket for reading, which ends the wait for the next request as end
// of file does; one during a delivery ends the process after the answer.
func serveGate(root string, sock int, g *stopGate) int {
	k := &keeper{}
	defer k.drop()
	g.mu.Lock()
	g.idle = func() { unix.Shutdown(sock, unix.SHUT_RD) }
	done := g.requested
	g.mu.Unlock()
	if done {
		return 0
	}
	var out bytes.Buffer
	keep.ServeWith(sock, KeepHello, maxRequest, func(r *keep.Request) []byte {
		out.Reset()
		w := bufio.NewWriter(&out)
		var rep *report
		switch {
		case r.Cut || r.File == nil:
			rep = &report{letter: 'D', text: txtUsage}
		case !g.begin():
			rep = &report{letter: 'Z', text: TextStopped}
		default:
			rep = g.outcome(run(root, r.Args, r.File, w, k, g))
		}
		g.end()
		w.WriteByte(rep.letter)
		w.WriteString(rep.text)
		w.WriteByte(0)
		w.Flush()
		return out.Bytes()
	}, keep.Hooks{Done: g.stopped, Hangup: g.request})
	return 0
}
