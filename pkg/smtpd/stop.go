package smtpd

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
)

// DefaultStopWait bounds the stop of qmail-smtpd -listen: sessions still
// running this long after the signal are cut. It is below systemd's
// TimeoutStopSec (90 s) and make stop (scripts/run.sh) waits a little
// longer than this for the listener to exit.
const DefaultStopWait = 60 * time.Second

// cutGrace is how long Serve waits, after it has cut the sessions left at
// the end of the stop, for them to log their end; a session waiting for
// qmail-queue's result is not woken by the cut, and is not waited for.
const cutGrace = time.Second

// textStopping is the reply of a session that awaits a command when the
// listener stops (RFC 5321 4.2.3: 421 may answer any command when the
// service must shut down), in qmail's style: the greeting as in the 220
// and 221, the enhanced code at the end (RFC 3463 X.3.2, system not
// accepting network messages). It is fatal: the session ends after it.
func textStopping(greeting string) string {
	return "421 " + greeting + " service shutting down, closing transmission channel (#4.3.2)"
}

// errStopping ends a session whose listener stops, at a command boundary.
var errStopping = errors.New("listener stopping")

// stopper is the link between the listener and one session: it ends the
// session at its next command boundary once the listener stops. A session
// that awaits a command is woken (its read deadline set in the past) and
// answers 421; a session in the middle of a message, or waiting for
// qmail-queue's result, is left alone and answers 421 when it next awaits a
// command. A nil *stopper never stops (one session on fd 0/1).
type stopper struct {
	mu       sync.Mutex
	stopping bool
	waiting  net.Conn // the connection a command is being awaited on
}

// longAgo is a deadline in the past: a read waiting under it returns at once.
var longAgo = time.Unix(1, 0)

// stop makes the session end at its next command boundary; a session
// awaiting a command now is woken.
func (s *stopper) stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	if s.waiting != nil {
		s.waiting.SetReadDeadline(longAgo)
	}
}

// stopped reports whether the session is to end at this command boundary.
func (s *stopper) stopped() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// await is called before a read for a command on c: it sets c's read
// deadline to deadline and marks the session as awaiting a command, so that
// stop wakes it; it returns false, and sets nothing, when the session is
// to stop. Every await is followed by wake once the read is over.
func (s *stopper) await(c net.Conn, deadline time.Time) bool {
	if s == nil {
		c.SetReadDeadline(deadline)
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	// Under the lock: a stop that comes after this sees waiting set and
	// moves the deadline; one that came before was seen above.
	c.SetReadDeadline(deadline)
	s.waiting = c
	return true
}

// woke ends an await: it reports whether the session is to stop (then a
// read that failed with a timeout was woken by stop, not timed out).
func (s *stopper) woke() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = nil
	return s.stopping
}

// listenerStop is the stop state of a Listener.
type listenerStop struct {
	mu       sync.Mutex
	init     bool
	stopping bool
	cutting  bool
	stopc    chan struct{} // closed by the first Stop
	cutc     chan struct{} // closed by a second Stop
	ln       net.Listener  // the listener being served, closed by Stop
	sessions map[*stopper]net.Conn
	wg       sync.WaitGroup // running sessions
}

// lazy makes the channels and the map; called with mu held.
func (ls *listenerStop) lazy() {
	if !ls.init {
		ls.init = true
		ls.stopc = make(chan struct{})
		ls.cutc = make(chan struct{})
		ls.sessions = make(map[*stopper]net.Conn)
	}
}

// Stop stops the listener, as qmail-smtpd -listen does on SIGTERM, SIGINT
// and SIGHUP: the listening socket is closed at once (new clients are
// refused) and every session ends at its next command boundary: one
// awaiting a command is answered textStopping and closed, one receiving a
// message receives it to its end and answers it (250 only once
// qmail-queue has committed it) before the 421. Serve returns once every
// session is over, or after StopWait with the sessions left cut. A second
// Stop cuts the sessions left at once. Stop may come before Serve, which
// then returns at once.
func (l *Listener) Stop() {
	ls := &l.stop
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.lazy()
	switch {
	case !ls.stopping:
		ls.stopping = true
		close(ls.stopc)
		if ls.ln != nil {
			ls.ln.Close()
		}
		for s := range ls.sessions {
			s.stop()
		}
	case !ls.cutting:
		ls.cutting = true
		close(ls.cutc)
	}
}

// serving registers ln as the listener Stop closes; false when Stop came
// first.
func (ls *listenerStop) serving(ln net.Listener) (stopc, cutc <-chan struct{}, ok bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.lazy()
	ls.ln = ln
	return ls.stopc, ls.cutc, !ls.stopping
}

// add registers the session on c; it is stopped at once when the listener
// is stopping already (a client accepted as the listener was closed).
func (ls *listenerStop) add(c net.Conn) *stopper {
	s := &stopper{}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.lazy()
	ls.sessions[s] = c
	ls.wg.Add(1)
	if ls.stopping {
		s.stopping = true
	}
	return s
}

// remove unregisters a session that is over.
func (ls *listenerStop) remove(s *stopper) {
	ls.mu.Lock()
	delete(ls.sessions, s)
	ls.mu.Unlock()
	ls.wg.Done()
}

// running is the number of sessions still running.
func (ls *listenerStop) running() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.sessions)
}

// cut closes the connections of the sessions still running and returns
// how many there were.
func (ls *listenerStop) cut() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, c := range ls.sessions {
		c.Close()
	}
	return len(ls.sessions)
}

// sessions is "1 session" or "N sessions".
func sessions(n int) string {
	if n == 1 {
		return "1 session"
	}
	return strconv.Itoa(n) + " sessions"
}

// drain waits for the sessions to end after Stop: until every one is
// over, or wait has passed or a second Stop came, when those left are cut
// (and given cutGrace to log their end).
func (l *Listener) drain(wait time.Duration, cutc <-chan struct{}) {
	ls := &l.stop
	all := make(chan struct{})
	go func() {
		ls.wg.Wait()
		close(all)
	}()
	if n := ls.running(); n > 0 {
		l.logger().Printf("stopping: %s end at their next command, cut in %gs", sessions(n), wait.Seconds())
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-all:
		l.logger().Printf("stopped")
		return
	case <-t.C:
	case <-cutc:
	}
	n := ls.cut()
	l.logger().Printf("stopped: %s cut", sessions(n))
	g := time.NewTimer(cutGrace)
	defer g.Stop()
	select {
	case <-all:
	case <-g.C:
	}
}
