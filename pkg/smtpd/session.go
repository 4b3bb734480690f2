package smtpd

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// queue runs qmail-queue; a variable so that tests can queue in memory.
var queue = qq.Queue

// connState is shared by the sessions of one connection (go-smtp starts a
// new Session after STARTTLS).
type connState struct {
	cfg    *Config
	peer   Peer
	srv    *smtp.Server
	conn   *smtp.Conn
	log    *log.Logger
	failed atomic.Bool // a fatal reply was sent or the client timed out
}

// fatal sends a last reply straight to the connection and closes it;
// go-smtp then finds the connection closed and ends the session.
func (cs *connState) fatal(text string) {
	cs.failed.Store(true)
	c := cs.conn.Conn()
	c.SetWriteDeadline(time.Now().Add(cs.cfg.Timeout))
	io.WriteString(c, text+"\r\n")
	c.Close()
}

// session is one go-smtp Session: the envelope of the current transaction.
type session struct {
	cs    *connState
	from  string
	bad   bool // sender is in badmailfrom
	rcpts []string
}

func (s *session) Reset() {
	s.from, s.bad, s.rcpts = "", false, nil
	// Advertise databytes in EHLO's SIZE and let go-smtp check MAIL
	// SIZE=; during a transaction go-smtp's own counter is switched off
	// (see Mail). All of this runs on the connection's goroutine.
	s.cs.srv.MaxMessageBytes = s.cs.cfg.Databytes
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	cfg := s.cs.cfg
	if opts != nil && cfg.Databytes > 0 && opts.Size > cfg.Databytes {
		return replyDatabytes
	}
	addr, res := fixAddr(from, cfg.LocalIPHost)
	switch res {
	case addrSyntax:
		return replySyntax
	case addrNoIPs:
		s.cs.fatal(textNoIPs)
		return reply(421, "unable to figure out my IP addresses (#4.3.0)")
	}
	s.from, s.rcpts = addr, nil
	s.bad = cfg.BadFrom(addr)
	// go-smtp counts the message with its CRs; qmail's databytes counts
	// the decoded message, which body enforces. Switch go-smtp's counter
	// off for this transaction so that it never refuses what qmail takes.
	s.cs.srv.MaxMessageBytes = 0
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	cs := s.cs
	addr, res := fixAddr(to, cs.cfg.LocalIPHost)
	switch res {
	case addrSyntax:
		return replySyntax
	case addrNoIPs:
		cs.fatal(textNoIPs)
		return reply(421, "unable to figure out my IP addresses (#4.3.0)")
	}
	if s.bad {
		return replyBadMailFrom
	}
	if cs.peer.Relay != nil {
		addr += *cs.peer.Relay
	} else {
		ok, err := cs.cfg.RcptHosts.Allowed(addr)
		if err != nil {
			cs.log.Printf("morercpthosts.cdb: %v", err)
			cs.fatal(textControls)
			return reply(421, "unable to read controls (#4.3.0)")
		}
		if !ok {
			return replyRcptHosts
		}
	}
	if len(s.rcpts) >= cs.cfg.MaxRcpt {
		return replyTooManyRcpt
	}
	s.rcpts = append(s.rcpts, addr)
	return nil
}

func (s *session) Data(r io.Reader) error {
	cs := s.cs
	// go-smtp hands BDAT chunks through an io.Pipe and DATA through its
	// dot reader; only DATA has the bare-LF rule.
	_, chunked := r.(*io.PipeReader)
	refresh := func() { cs.conn.Conn().SetReadDeadline(time.Now().Add(cs.cfg.Timeout)) }
	refresh() // the deadline of the DATA command itself is running
	b := newBody(r, chunked, cs.cfg.Databytes, refresh)
	rcv := Received(cs.peer, cs.conn.Hostname(), cs.cfg.Now())
	msg := io.MultiReader(strings.NewReader(rcv), b)
	env := &qq.Envelope{Sender: s.from, Recipients: s.rcpts}
	pid, qerrv := queue(qq.Options{Root: cs.cfg.Root, Env: cs.cfg.QueueEnv}, msg, env)
	if b.fin == nil {
		// qmail-queue gave up (or never started) before the end: read
		// the rest with the same rules, then report its failure.
		io.Copy(io.Discard, b)
	}
	switch {
	case b.fin == errBareLF:
		cs.fatal(textBareLF)
		return reply(451, "See https://cr.yp.to/docs/smtplf.html.")
	case b.readErr != nil:
		return s.readFailure(b.readErr)
	case b.fin != io.EOF:
		return b.fin // 552 databytes, 554 hops
	}
	if qerrv != nil {
		if pid == 0 {
			cs.log.Printf("qmail-queue: %v", qerrv)
			return replyQQT
		}
		var qe *qerr.Error
		if errors.As(qerrv, &qe) && qe.Perm {
			return reply(554, qe.Text)
		}
		return reply(451, qerrv.Error())
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.NoEnhancedCode,
		Message: fmt.Sprintf("ok %d qp %d", cs.cfg.Now().Unix(), pid)}
}

// readFailure answers a message that could not be read to its end.
func (s *session) readFailure(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, smtp.ErrTooLongLine):
		// go-smtp cannot read on after an over-long line: say why and
		// end the session, instead of its generic 500 on the next read.
		s.cs.fatal(textLongLine)
		return replyLongLine
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		s.cs.fatal(textTimeout)
		return replyTimeout
	}
	s.cs.failed.Store(true)
	return replyGone
}
