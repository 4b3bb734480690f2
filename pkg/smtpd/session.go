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

// connState is shared by the front, go-smtp's connection and the session
// of one client connection.
type connState struct {
	cfg    *Config
	peer   Peer
	conn   *smtp.Conn
	front  *front
	sess   *session // nil until go-smtp has had its first HELO
	log    *log.Logger
	failed atomic.Bool // a fatal reply was sent, or the client went away or timed out

	helo     string // the HELO/EHLO argument as given; remotehost before any
	nextAddr string // the MAIL/RCPT address being handed to go-smtp, parsed by front
	nextSize int64  // its MAIL SIZE= parameter, 0 if none
}

// mailed reports whether a MAIL was accepted in this transaction.
func (cs *connState) mailed() bool { return cs.sess != nil && cs.sess.mailed }

// fatal sends a last reply straight to the client and closes the
// connection; go-smtp then finds it closed and ends the session.
func (cs *connState) fatal(text string) {
	cs.failed.Store(true)
	cs.front.say(text)
	cs.front.Close()
}

// session is one go-smtp Session: the envelope of the current transaction.
// The addresses come from connState.nextAddr (qmail's parser, in front),
// not from go-smtp, which is only handed placeholders.
type session struct {
	cs     *connState
	mailed bool
	from   string
	bad    bool // sender is in badmailfrom
	rcpts  []string
}

func (s *session) Reset() {
	s.mailed, s.from, s.bad, s.rcpts = false, "", false, nil
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(_ string, _ *smtp.MailOptions) error {
	cfg := s.cs.cfg
	if cfg.Databytes > 0 && s.cs.nextSize > cfg.Databytes {
		return replyDatabytes
	}
	addr := s.cs.nextAddr
	s.mailed, s.from, s.rcpts = true, addr, nil
	s.bad = cfg.BadFrom(addr)
	return nil
}

func (s *session) Rcpt(_ string, _ *smtp.RcptOptions) error {
	cs := s.cs
	addr := cs.nextAddr
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

func (s *session) Data(_ io.Reader) error {
	cs := s.cs
	// The message is read from front, which applies qmail's DATA rules;
	// go-smtp's reader r is given only the end (see front.go).
	refresh := func() { cs.conn.Conn().SetReadDeadline(time.Now().Add(cs.cfg.Timeout)) }
	refresh() // the deadline of the DATA command itself is running
	b := newBody(bodyReader{cs.front}, false, cs.cfg.Databytes, refresh)
	rcv := Received(cs.peer, cs.helo, cs.cfg.Now())
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
