package remote

import (
	"context"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SIGTERM (hqmail addition; qmail's qmail-remote dies of it) means: the
// result of this delivery may never be recorded. qmail-rspawn sends it to
// its running deliveries when qmail-send has gone without waiting for them
// (a crash, kill -9): the queue still says "not delivered", and the next
// qmail-send makes every such delivery again. One that the peer accepted
// meanwhile would arrive twice. A TERM to the whole process group (a
// service manager that signals every process) reaches it too.
//
// So a delivery told to stop is given up if, and only if, the peer cannot
// have accepted it yet: before the final dot has been handed to the
// connection. In keep mode (catchTerm) the connection is then aborted (SO_LINGER 0, see abort):
// whatever is still in the socket's send queue is dropped and the peer
// sees a reset, never a dot. The report is a temporary failure
// (TextStopped); qmail-send, if it is there to read it, tries again later.
// A delivery whose dot has gone out is left to finish: its answer is the
// only thing that can still tell whether the message went, and it is
// reported as usual. A delivery still looking up the host or connecting
// stops at once: the DNS query under way and the connect are cut short.
//
// In keep mode (-k) a TERM between deliveries ends the process as end of
// file on its socket does (QUIT on the kept connection); during one, the
// process ends after answering it.
//
// A spawner that is gone (qmail-rspawn killed) can read no answer either:
// in keep mode, while a delivery runs, the socket is watched (keep.Hooks'
// Hangup, a wait in the runtime's poller), and its end of file counts as
// a TERM.
//
// The one-shot form (oneShotGate) does the same without a goroutine or a
// signal handler of its own, which cost a process that lives for one
// delivery about a sixth of its CPU time (os/signal's watcher and a
// thread blocked in poll(2)): until the dot a TERM keeps its default
// action, and the process dies of it with nothing sent (the kernel's
// close sends what was written, but no dot, so the peer drops the
// message); from the dot on TERM is ignored, so that the answer is read
// and reported. A reader of descriptor 1 gone is seen at the dot, which
// is then not sent.

// TextStopped is the report of a delivery given up at a TERM (without its
// letter, Z); qmail-rspawn gives it for a one-shot qmail-remote that died
// of a TERM, which can only be before its dot.
const TextStopped = "qmail-remote was stopped (SIGTERM) before the message was sent. (#4.3.0)\n"

// stopGate is where a TERM and the delivery meet. A nil *stopGate never
// stops anything.
type stopGate struct {
	mu        sync.Mutex
	requested bool     // TERM has come
	busy      bool     // a delivery is under way (always, in one-shot mode)
	committed bool     // the delivery's final dot has been handed to its connection
	conn      net.Conn // the delivery's connection, while not committed
	aborted   bool     // a TERM aborted conn: its failure is the stop's
	// idle, in keep mode, ends the wait for the next request (the
	// process then exits as at end of file); called with mu held.
	idle func()
	// gone, when set, is asked at the dot whether the spawner has gone;
	// committing, when set, is called as the dot is allowed (one-shot).
	gone       func() bool
	committing func()

	ctx    context.Context // cancelled at the TERM: cuts a connect short
	cancel context.CancelFunc
}

func newStopGate() *stopGate {
	g := &stopGate{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g
}

// oneShotGate is the gate of a one-shot qmail-remote whose answer goes
// to out: TERM keeps its default action until the dot and is ignored from
// then on; out, when it is a descriptor, is asked at the dot whether its
// reader has gone.
func oneShotGate(out io.Writer) *stopGate {
	g := newStopGate()
	if f, ok := out.(*os.File); ok {
		fd := int(f.Fd())
		g.gone = func() bool { return hungUp(fd) }
	}
	g.committing = func() { signal.Ignore(syscall.SIGTERM) }
	return g
}

// hungUp reports whether fd has hung up (a pipe whose reader has gone, a
// terminal hung up), without waiting.
func hungUp(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd)}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
	}
}

// catchTerm returns a gate that SIGTERM triggers (keep mode).
func catchTerm() *stopGate {
	g := newStopGate()
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	go func() {
		<-c
		g.request()
	}()
	return g
}

// request is the TERM: it aborts the connection of a delivery that has
// not committed, or, between deliveries in keep mode, ends the process's
// wait for the next one.
func (g *stopGate) request() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.requested {
		return
	}
	g.requested = true
	g.cancel()
	switch {
	case !g.busy:
		if g.idle != nil {
			g.idle()
		}
	case !g.committed && g.conn != nil:
		abort(g.conn)
		g.aborted = true
	}
}

// stopped reports whether a TERM has come.
func (g *stopGate) stopped() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requested
}

// begin starts a delivery; false means a TERM came first: nothing is to be
// done, the report is TextStopped.
func (g *stopGate) begin() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy, g.committed, g.conn, g.aborted = true, false, nil, false
	return !g.requested
}

// end closes a delivery begun by begin (stopped then says whether the
// process is to end).
func (g *stopGate) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy, g.conn = false, nil
}

// attach makes c the connection a TERM aborts; false means a TERM has
// come: c is not to be used.
func (g *stopGate) attach(c net.Conn) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.requested {
		return false
	}
	g.conn, g.committed = c, false
	return true
}

// commit is asked just before the final dot is written: true means go on
// (a TERM no longer touches the connection), false that a TERM came and
// the dot must not be sent.
func (g *stopGate) commit() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.requested && g.gone != nil && g.gone() {
		g.requested = true
		g.cancel()
	}
	if g.requested {
		return false
	}
	if g.committing != nil {
		g.committing()
	}
	g.committed, g.conn = true, nil
	return true
}

// wasAborted reports whether a TERM aborted the delivery's connection:
// the failure that followed is the stop, not the peer's.
func (g *stopGate) wasAborted() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.aborted
}

// outcome is the report of a delivery that ended with rep: the stop's
// when a TERM aborted its connection and the failure followed from that.
func (g *stopGate) outcome(rep *report) *report {
	if rep.letter == 'Z' && g.wasAborted() {
		return &report{letter: 'Z', text: TextStopped}
	}
	return rep
}

// dialContext is the context connects run under.
func (g *stopGate) dialContext() context.Context {
	if g == nil {
		return context.Background()
	}
	return g.ctx
}
