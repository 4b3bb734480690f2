package smtpd

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
)

// Listener is qmail-smtpd -listen: it accepts connections itself and
// serves each with the values tcpserver would have set. Controls are read
// afresh for every connection.
//
//   - TCPREMOTEIP, TCPLOCALIP: from the socket. TCPREMOTEHOST and
//     TCPREMOTEINFO: unset (no DNS or ident lookups, as tcpserver -H -R),
//     so the Received line says "from unknown".
//   - TCPLOCALHOST: control/me (as "tcpserver -l $(cat control/me)"),
//     else the local IP.
//   - RELAYCLIENT: set (empty) for clients matching control/relayclients;
//     without that file, for 127.0.0.1 and ::1 only.
type Listener struct {
	Root     string
	Getenv   func(string) (string, bool)
	Log      *log.Logger
	MaxConns int
	// QueueEnv, if set, is the environment of qmail-queue (tests).
	QueueEnv []string
	// StopWait bounds a stop (see Stop): sessions still running this
	// long after it are cut. 0 is DefaultStopWait.
	StopWait time.Duration

	stop listenerStop
}

// logger is l.Log, or a logger that discards.
func (l *Listener) logger() *log.Logger {
	if l.Log == nil {
		return log.New(io.Discard, "", 0)
	}
	return l.Log
}

// Serve accepts connections on ln until Stop, or until ln is closed; at
// most MaxConns sessions run at once, further clients wait in the listen
// queue. All sessions share the process's descriptors: when RLIMIT_NOFILE
// has no room for MaxConns sessions, even after raising its soft limit up
// to the hard one, fewer run at once (FitSessions), and Serve logs that
// once as it starts. After Stop it returns once the sessions are over (at
// most StopWait, see Stop); when ln is closed otherwise, it returns at
// once and the sessions go on.
func (l *Listener) Serve(ln net.Listener) error {
	max := l.MaxConns
	if max < 1 {
		max = 40
	}
	wait := l.StopWait
	if wait <= 0 {
		wait = DefaultStopWait
	}
	logger := l.logger()
	stopc, cutc, ok := l.stop.serving(ln)
	if !ok {
		ln.Close()
		l.drain(wait, cutc)
		return nil
	}
	soft, hard := raiseNofile(max)
	if fit := FitSessions(max, soft); fit < max {
		logger.Printf("warning: -c %d lowered to %d: the descriptor limit (RLIMIT_NOFILE) is %d, hard limit %d; "+
			"a session holds up to %d and %d are kept for the listener", max, fit, soft, hard, fdsPerSession, fdsReserve)
		max = fit
	}
	sem := make(chan struct{}, max)
	var session uint64
	for {
		select {
		case sem <- struct{}{}:
		default:
			// As tcpserver -v's status line: the limit is reached and
			// new clients wait in the listen queue.
			logger.Printf("status: %d/%d sessions, new connections wait", max, max)
			select {
			case sem <- struct{}{}:
			case <-stopc:
				l.drain(wait, cutc)
				return nil
			}
		}
		c, err := ln.Accept()
		if err != nil {
			<-sem
			select {
			case <-stopc:
				l.drain(wait, cutc)
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: wait a moment rather than spin.
			logger.Printf("accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		session++
		st := l.stop.add(c)
		go func(n uint64) {
			defer func() { <-sem }()
			defer l.stop.remove(st)
			l.serveConn(c, n, st, logger)
		}(session)
	}
}

// serveConn serves session number n (counted from 1 by the listener).
// Whatever becomes of it, the session is logged as tcpserver -v logs one:
// "ok" as it starts, before anything else is read, and "end" with the
// status qmail-smtpd would exit with (1 after a 421 for unreadable
// controls). Every line logged in between about this session (warnings,
// errors) starts with its number and the client's address, as
// "3 192.0.2.7 warning: ...", so that it can be told from the lines of the
// sessions running beside it.
func (l *Listener) serveConn(c net.Conn, n uint64, st *stopper, logger *log.Logger) {
	defer c.Close()
	peer, rip := socketPeer(c)
	logger.Printf("ok %d %s port %s", n, peer.RemoteIP, portOf(c.RemoteAddr()))
	slog := sessionLog(logger, n, peer.RemoteIP)
	status := 1
	cfg, warn, err := LoadConfig(l.Root, l.Getenv)
	if err == nil {
		if warn != nil {
			slog.Printf("warning: %v", warn)
		}
		err = l.controlPeer(&peer, rip, slog)
	}
	if err != nil {
		slog.Printf("%v", err)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, textControls+"\r\n")
	} else {
		cfg.QueueEnv = l.QueueEnv
		if cfg.QueueEnv == nil {
			cfg.QueueEnv = os.Environ()
		}
		// The process's tcpserver variables are nobody's: this
		// session's come from its socket (sessionEnv), and those the
		// socket does not give are not set.
		cfg.QueueEnv = slices.DeleteFunc(slices.Clone(cfg.QueueEnv), func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return k == "PROTO" || strings.HasPrefix(k, "TCP")
		})
		if serve(c, cfg, peer, slog, st) {
			status = 0
		}
	}
	logger.Printf("end %d %s status %d", n, peer.RemoteIP, status)
}

// sessionLog is the logger of session n with the client at ip: logger's
// lines, each message preceded by "n ip ".
func sessionLog(logger *log.Logger, n uint64, ip string) *log.Logger {
	return log.New(logger.Writer(), fmt.Sprintf("%s%d %s ", logger.Prefix(), n, ip), logger.Flags())
}

// portOf is the port of a TCP address, "?" if it has none.
func portOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return strconv.Itoa(ta.Port)
	}
	return "?"
}

// socketPeer derives the tcpserver values the socket gives: the client's
// address (also returned as rip, invalid when the socket has none) and the
// local address as TCPLOCALHOST.
func socketPeer(c net.Conn) (p Peer, rip netip.Addr) {
	p = Peer{RemoteIP: "unknown", RemoteHost: "unknown", LocalHost: "unknown"}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		rip = ap.Addr().Unmap()
		p.RemoteIP = rip.String()
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		p.LocalHost = ap.Addr().Unmap().String()
	}
	return p, rip
}

// controlPeer completes p from the control files: TCPLOCALHOST from
// control/me, RELAYCLIENT from control/relayclients. A file that cannot be
// read is ErrControls.
func (l *Listener) controlPeer(p *Peer, rip netip.Addr, logger *log.Logger) error {
	d := control.Open(l.Root)
	me, ok, err := d.Me()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrControls, err)
	}
	if ok {
		p.LocalHost, p.LocalNamed = me, true
	}
	relay, err := relayClient(d, rip, logger)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrControls, err)
	}
	if relay {
		empty := ""
		p.Relay = &empty
	}
	return nil
}

// relayClient reports whether the client at rip is listed in
// control/relayclients (127.0.0.1 and ::1 when the file does not exist),
// logging a warning for each line that is none of the forms RelayMatch
// reads.
func relayClient(d *control.Dir, rip netip.Addr, logger *log.Logger) (bool, error) {
	rules, ok, err := d.ReadList("relayclients")
	if err != nil {
		return false, err
	}
	if !ok {
		rules = []string{"127.0.0.1", "::1"}
	}
	for _, r := range rules {
		if !relayRuleValid(r) {
			logger.Printf("warning: control/relayclients: ignored line (not an address, CIDR prefix or dotted prefix): %q", r)
		}
	}
	return rip.IsValid() && RelayMatch(rules, rip), nil
}

// relayRuleValid reports whether a control/relayclients line is one of
// the forms RelayMatch reads.
func relayRuleValid(r string) bool {
	r = strings.TrimSpace(r)
	switch {
	case strings.Contains(r, "/"):
		_, err := netip.ParsePrefix(r)
		return err == nil
	case strings.HasSuffix(r, "."):
		return dottedPrefix(r)
	default:
		_, err := netip.ParseAddr(r)
		return err == nil
	}
}

// dottedPrefix: "192." "192.168." "192.168.1." (one to three decimal
// parts of 0-255, each followed by a dot).
func dottedPrefix(r string) bool {
	parts := strings.Split(strings.TrimSuffix(r, "."), ".")
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || p != strconv.Itoa(n) {
			return false
		}
	}
	return len(parts) >= 1 && len(parts) <= 3
}

// RelayMatch reports whether ip matches one of the control/relayclients
// lines: an address ("192.0.2.7", "::1"), a CIDR prefix ("10.0.0.0/8",
// "2001:db8::/32"), or a tcprules-style dotted prefix ending in '.'
// ("192.168."). Lines that are none of these are ignored (the listener
// logs a warning for each).
func RelayMatch(rules []string, ip netip.Addr) bool {
	// A link-local client keeps its zone (fe80::1%eth0), which no prefix
	// contains; the zone says which link, not which host.
	ip = ip.Unmap().WithZone("")
	for _, r := range rules {
		r = strings.TrimSpace(r)
		switch {
		case strings.Contains(r, "/"):
			pfx, err := netip.ParsePrefix(r)
			if err != nil {
				break
			}
			if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
				// ::ffff:127.0.0.0/104 is 127.0.0.0/8.
				pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
			}
			if pfx.Contains(ip) {
				return true
			}
		case strings.HasSuffix(r, "."):
			if ip.Is4() && strings.HasPrefix(ip.String(), r) {
				return true
			}
		default:
			if a, err := netip.ParseAddr(r); err == nil && a.Unmap().WithZone("") == ip {
				return true
			}
		}
	}
	return false
}
