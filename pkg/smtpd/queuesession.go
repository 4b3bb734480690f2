package smtpd

import (
	"io"
	"sync"

	"github.com/hqmail/hqmail/pkg/qq"
)

// connQueue queues the messages of one SMTP connection through one
// "qmail-queue -m" (qq.Session): started at the first DATA, ended when
// the connection's session is over. With $QMAILQUEUE naming another
// program, each message runs that program once, as before. A message is
// answered 250 only after qmail-queue's result line for it said 0.
type connQueue struct {
	mu     sync.Mutex
	s      *qq.Session
	busy   bool // a message is being queued
	closed bool // the connection is over; the last message closes s
}

// queue queues one message. opts are the same for every message of a
// connection (root and environment); opts.Started is honoured in the
// one-process-per-message case only (the first read of msg marks the
// start otherwise, see markReader).
func (q *connQueue) queue(opts qq.Options, msg io.Reader, env *qq.Envelope) (int, error) {
	if queue != nil { // tests: in memory or a fake program per message
		return queue(opts, msg, env)
	}
	q.mu.Lock()
	if q.closed { // not expected: a message after the end of the session
		q.mu.Unlock()
		return qq.Queue(opts, msg, env)
	}
	if q.s == nil {
		o := opts
		o.Started = nil
		q.s = qq.NewSession(o)
	}
	s := q.s
	q.busy = true
	q.mu.Unlock()
	var pid int
	var err error
	if s.Multi() {
		pid, _, err = s.Queue(msg, env)
	} else {
		pid, err = qq.Queue(opts, msg, env)
	}
	q.mu.Lock()
	q.busy = false
	if q.closed && q.s != nil {
		q.s.Close()
		q.s = nil
	}
	q.mu.Unlock()
	return pid, err
}

// close ends the session's qmail-queue, now or, when a message is being
// queued, right after it.
func (q *connQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if !q.busy && q.s != nil {
		q.s.Close()
		q.s = nil
	}
}
