package remote

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// A dial-up host that redials gets a new address, and a connection made
// from the old one is dead: no packet of it can come back. Nothing tells
// the socket; it would wait for the peer until timeoutremote (20 minutes
// by default), holding a delivery slot, while the mail released after the
// redial waits for those slots. watchConn ends such a wait soon after the
// address has gone: while a read or write waits, every watchEvery it asks
// whether the connection's local address is still on an interface. The
// session given up so aborts the connection (session.close): closed
// normally, the data still in its send queue, the final dot among them,
// would be sent if the address came back, and the peer would accept a
// message already deferred.

// watchEvery is how often a waiting connection checks its local address.
const watchEvery = 5 * time.Second

// errLocalGone is a read or write given up because the connection's local
// address is no longer on any interface of this host.
var errLocalGone = errors.New("this host's address of the connection has gone")

// watchConn is a net.Conn whose waits are cut into watchEvery slices; the
// deadlines set on it are kept and honoured as given.
type watchConn struct {
	net.Conn
	every time.Duration
	gone  func() bool // whether the local address has gone

	mu       sync.Mutex
	rdl, wdl time.Time // the deadlines set by the user, zero for none
}

// watch wraps c, a connection dialed from a non-loopback address; others
// are returned as they are.
func watch(c net.Conn) net.Conn {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok || la.IP.IsLoopback() {
		return c
	}
	ip := la.IP
	return &watchConn{Conn: c, every: watchEvery, gone: func() bool { return !localAddr(ip) }}
}

// localAddr reports whether ip is an address of an interface of this host.
// When the interfaces cannot be listed it answers yes: only a sure
// absence ends a connection.
func localAddr(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func (c *watchConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.mu.Unlock()
	return nil
}

func (c *watchConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	return nil
}

func (c *watchConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}

// slice is the deadline for the next wait under the user's deadline dl,
// and whether it is dl itself.
func (c *watchConn) slice(dl time.Time) (time.Time, bool) {
	s := time.Now().Add(c.every)
	if !dl.IsZero() && !dl.After(s) {
		return dl, true
	}
	return s, false
}

func (c *watchConn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		s, last := c.slice(c.rdl)
		c.mu.Unlock()
		c.Conn.SetReadDeadline(s)
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || last || !isTimeout(err) {
			return n, err
		}
		if c.gone() {
			return 0, errLocalGone
		}
	}
}

func (c *watchConn) Write(p []byte) (int, error) {
	done := 0
	for {
		c.mu.Lock()
		s, last := c.slice(c.wdl)
		c.mu.Unlock()
		c.Conn.SetWriteDeadline(s)
		n, err := c.Conn.Write(p[done:])
		done += n
		if err == nil || last || !isTimeout(err) {
			return done, err
		}
		if c.gone() {
			return done, errLocalGone
		}
	}
}

// SetLinger is the wrapped connection's, for an aborted close (abort).
func (c *watchConn) SetLinger(sec int) error {
	l, ok := c.Conn.(interface{ SetLinger(int) error })
	if !ok {
		return errors.ErrUnsupported
	}
	return l.SetLinger(sec)
}

// SyscallConn is the wrapped connection's, for the idle check of a kept
// connection.
func (c *watchConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}
