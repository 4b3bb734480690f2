package smtpd

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// queue, when set (tests), queues each message instead of the
// connection's qmail-queue -m (connQueue): in memory, or through
// qq.Queue with a fake program.
var queue func(qq.Options, io.Reader, *qq.Envelope) (int, error)

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
	queuer connQueue   // one qmail-queue -m for the connection's messages
	stop   *stopper    // the listener's stop (nil: one session on fd 0/1)

	helo     string // the HELO/EHLO argument as given; remotehost before any
	nextAddr string // the MAIL/RCPT address being handed to go-smtp, parsed by front
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
	cs      *connState
	mailed  bool
	from    string
	bad     bool // sender is in badmailfrom
	rcpts   []string
	running *running // qmail-queue started for DATA, not yet given the message
}

func (s *session) Reset() {
	s.abortQueue()
	s.mailed, s.from, s.bad, s.rcpts = false, "", false, nil
}

func (s *session) Logout() error {
	s.abortQueue()
	return nil
}

// running is a qmail-queue started at DATA, before the 354, as qmail-smtpd
// does; its message comes through a pipe from Data.
type running struct {
	w    *io.PipeWriter
	done chan queued1
}

type queued1 struct {
	pid int
	err error
}

var (
	errQueueGone = errors.New("qmail-queue stopped reading")
	errAborted   = errors.New("session ended before the message")
)

// peerVars are the variables of the environment that say who the client
// is: sessionEnv sets them from the session's Peer.
var peerVars = []string{"TCPREMOTEIP", "TCPREMOTEHOST", "TCPREMOTEINFO", "TCPLOCALHOST", "RELAYCLIENT"}

// sessionEnv is the environment of the session's qmail-queue: base (nil:
// the process's) with the client's variables as this session knows them
// (peer), as tcpserver would have set them for it: a $QMAILQUEUE filter
// (a virus or spam scanner) reads TCPREMOTEIP and RELAYCLIENT. Under
// -listen the process's own values were those of whoever started it, and
// a RELAYCLIENT granted by control/relayclients was in no environment.
// A value the session does not know ("unknown", or none) is not set, nor
// is TCPLOCALHOST when no name was given (Peer.LocalNamed).
func sessionEnv(base []string, p Peer) []string {
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+len(peerVars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(peerVars, k) {
			env = append(env, kv)
		}
	}
	set := func(k, v string) {
		if v != "unknown" {
			env = append(env, k+"="+v)
		}
	}
	set("TCPREMOTEIP", p.RemoteIP)
	set("TCPREMOTEHOST", p.RemoteHost)
	if p.RemoteInfo != nil {
		env = append(env, "TCPREMOTEINFO="+*p.RemoteInfo)
	}
	if p.LocalNamed {
		set("TCPLOCALHOST", p.LocalHost)
	}
	if p.Relay != nil {
		env = append(env, "RELAYCLIENT="+*p.Relay)
	}
	return env
}

// startQueue starts qmail-queue for the transaction's envelope. It returns
// false when qmail-queue could not be started (qmail's "qqt failure",
// answered instead of 354).
func (s *session) startQueue() bool {
	cs := s.cs
	pr, pw := io.Pipe()
	started := make(chan struct{})
	var once sync.Once
	mark := func() { once.Do(func() { close(started) }) }
	env := &qq.Envelope{Sender: s.from, Recipients: append([]string(nil), s.rcpts...)}
	opts := qq.Options{Root: cs.cfg.Root, Env: sessionEnv(cs.cfg.QueueEnv, cs.peer), Started: func(int) { mark() }}
	done := make(chan queued1, 1)
	go func() {
		// The first read also counts as started (for queue functions
		// that are not a process, as in tests).
		pid, err := cs.queuer.queue(opts, &markReader{pr, mark}, env)
		pr.CloseWithError(errQueueGone)
		done <- queued1{pid, err}
	}()
	select {
	case <-started:
	case r := <-done:
		if r.pid == 0 && r.err != nil {
			cs.log.Print(qq.StartFailure(r.err))
			return false
		}
		done <- r // it ended at once; Data collects the result
	}
	s.running = &running{w: pw, done: done}
	return true
}

// abortQueue makes a started qmail-queue give up (no envelope) and waits.
func (s *session) abortQueue() {
	if s.running == nil {
		return
	}
	s.running.w.CloseWithError(errAborted)
	<-s.running.done
	s.running = nil
}

// markReader calls mark on its first Read.
type markReader struct {
	r    io.Reader
	mark func()
}

func (m *markReader) Read(p []byte) (int, error) {
	m.mark()
	return m.r.Read(p)
}

func (s *session) Mail(_ string, _ *smtp.MailOptions) error {
	cfg := s.cs.cfg
	addr := s.cs.nextAddr
	s.mailed, s.from, s.rcpts = true, addr, nil
	s.bad = cfg.BadFrom(addr)
	return nil
}

// minDecoded is the fewest bytes a message declared as SIZE=n can come to
// once CRLF is turned into LF: n counts CR LF (RFC 1870) and databytes does
// not, so a message of empty lines halves. MAIL refuses only what DATA
// would refuse whatever the message's lines; refusing more would turn away
// mail that qmail, which has no SIZE, accepts.
func minDecoded(n int64) int64 {
	return n - n/2
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
	b := newBody(bodyReader{cs.front}, cs.cfg.Databytes, refresh)
	b.maxLine = cs.cfg.MaxLine
	b.hops = &cs.front.hops
	rcv := Received(cs.peer, cs.helo, cs.cfg.Now())
	msg := io.MultiReader(strings.NewReader(rcv), b)
	run := s.running
	s.running = nil
	if run == nil {
		// front starts qmail-queue before handing DATA over; this
		// is only a safety net.
		if !s.startQueue() {
			io.Copy(io.Discard, b)
			return replyQQT
		}
		run, s.running = s.running, nil
	}
	if _, err := io.Copy(run.w, msg); err != nil {
		run.w.CloseWithError(err) // qmail-queue gets no envelope
	} else {
		run.w.Close()
	}
	res := <-run.done
	pid, qerrv := res.pid, res.err
	if b.fin == nil {
		// qmail-queue gave up before the end: read the rest with
		// the same rules, then report its failure.
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
			cs.log.Print(qq.StartFailure(qerrv))
			return replyQQT
		}
		// A queue program's own text (fd 6, exit 82) may hold line
		// ends: each LF starts a line of the reply, with its code (no
		// line of it passes for a reply of its own), and a CR is
		// dropped (it ended a line short of its LF).
		var qe *qerr.Error
		if errors.As(qerrv, &qe) && qe.Perm {
			return reply(554, noCR(qe.Text))
		}
		return reply(451, noCR(qerrv.Error()))
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.NoEnhancedCode,
		Message: fmt.Sprintf("ok %d qp %d", cs.cfg.Now().Unix(), pid)}
}

// readFailure answers a message that could not be read to its end.
func (s *session) readFailure(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		s.cs.fatal(textTimeout)
		return replyTimeout
	}
	// The client went away (or its connection failed) in the middle of
	// the message: end the session without a word, as qmail does; the
	// reply below then goes nowhere.
	s.cs.failed.Store(true)
	s.cs.front.Close()
	return replyGone
}

// noCR drops the CRs of a reply text.
func noCR(s string) string { return strings.ReplaceAll(s, "\r", "") }
