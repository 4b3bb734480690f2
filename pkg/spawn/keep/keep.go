// Package keep runs delivery programs that stay alive between deliveries:
// a spawner hands a request to an idle process started earlier for the
// same key (a remote host for qmail-rspawn, a user for qmail-lspawn)
// instead of starting a program per delivery, which is where most of a
// delivery's CPU goes on a small machine.
//
// The protocol is the same for every program (qmail-remote -k,
// qmail-local -k, qmail-getpw -k): the spawner makes a SOCK_SEQPACKET
// socket pair and starts the program with one end as its fd 0. The program
// first writes one packet, its hello (so that a program that does not know
// the protocol, such as a wrapper script, is found out at once), then
// answers each request packet with exactly one reply packet, until end of
// file. A request may carry one descriptor (SCM_RIGHTS), the message. What
// requests and replies hold is the program's business (see the callers).
//
// Policy: a request takes the most recently idle process for its key, or
// starts one (or, at Pool.Limit, takes the oldest idle one of another key). A process goes back idle when it has answered; idle ones are
// closed (end of file: the program ends its work, e.g. QUIT, and exits)
// after Pool.Cache, at once while Pool.Held says so, and the oldest first
// beyond Pool.MaxIdle. A process that dies while it has a request is
// reported as crashed, with what it wrote on its fd 2 meanwhile (a Go
// program's fatal error or panic); an idle one found dead is replaced.
//
// A kept process's fd 2 is a pipe of its own, non-blocking at both ends:
// the pool reads it only when a request ends in a crash, and empties it
// (discarding) before each request, so that a crash never shows what an
// earlier delivery wrote. A process never waits on a full pipe: a plain
// write(2) beyond the pipe's buffer fails with EAGAIN and is lost, which
// loses nothing of a crash's account, whose first lines say why. (A Go
// program that writes to os.Stderr itself would wait in its poller
// instead; the kept programs write nothing there.)
package keep

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/pollfd"
)

// Both sides work on the raw socket through the runtime's poller (package
// pollfd): a request waiting for its reply parks its goroutine rather than
// a thread in recvmsg, and this package, which the kept programs use too,
// still needs no network code: qmail-local must not link any
// (cmd/qmail-local TestNoNetwork).

// Pool is a set of kept processes of one program.
type Pool struct {
	// Program is the program's file: when it does not greet with Hello,
	// keep mode is off until that file changes.
	Program string
	// Hello is the first packet every process writes.
	Hello string
	// Cache returns how long an idle process is kept; 0 or less turns keep
	// mode off (it is called at each request, so that a control file can
	// be read afresh).
	Cache func() time.Duration
	// Held, when set, is polled while processes are idle: true closes
	// them all at once.
	Held func() bool
	// MaxIdle bounds the idle processes (0: DefaultMaxIdle).
	MaxIdle int
	// MaxReply bounds a reply packet (0: DefaultMaxReply).
	MaxReply int
	// Limit, when positive, bounds the processes, busy and idle together:
	// a request that finds no idle process for its key takes the oldest
	// idle one of another key rather than start one past it. For
	// qmail-rspawn it is concurrencyremote, so that kept connections
	// never outnumber qmail's one per delivery (a relay that allows one
	// connection per client sees one).
	Limit int

	bufs   sync.Pool // *[]byte of MaxReply bytes, for replies
	mu     sync.Mutex
	idle   []*proc            // oldest first
	busy   int                // requests in Do
	active map[*proc]struct{} // the processes with a request
	// signal, once set by Signal, is sent to every process that takes a
	// request from then on.
	signal  os.Signal
	reaping bool
	refused *fileID   // the program file that did not greet
	since   time.Time // when it did not
}

// Defaults.
const (
	DefaultMaxIdle  = 64
	DefaultMaxReply = 128 << 10
)

// ReapEvery is how often idle processes are looked at.
const ReapEvery = 250 * time.Millisecond

// HelloTimeout bounds the wait for a new process's greeting (a variable for
// the tests).
var HelloTimeout = 5 * time.Second

// CrashWait bounds the wait, after a process died with a request, for it
// to have ended before its fd 2 is read (a variable for the tests). A Go
// program's deferred calls, which close its socket, run before the
// runtime prints a panic: end of file on the socket comes before the text.
var CrashWait = 5 * time.Second

// MaxStderr bounds what Do returns of a crashed process's fd 2.
const MaxStderr = 64 << 10

// maxDrain bounds what is read and discarded of a process's fd 2 before a
// request: a process that writes on and on cannot keep the pool reading.
const maxDrain = 1 << 20

// RefusedFor is how long keep mode stays off after a process did not
// greet, unless the program file changes first: a program that does not
// know the protocol costs one start in that time, and one that was only
// slow to start (a loaded host at boot) has keep mode back after it.
var RefusedFor = 10 * time.Minute

type proc struct {
	fd    int      // our end of the socket (for poll(2) only)
	f     *os.File // the same, owned: reads and writes go through rc
	rc    syscall.RawConn
	cmd   *exec.Cmd
	key   string
	since time.Time // idle since
	// errfd is the read end of the process's fd 2 (non-blocking). It is
	// closed when both the pool is done with the process (close) and the
	// process has ended (its waiter): open while the process lives, so
	// that a write to fd 2 never meets a pipe without a reader (SIGPIPE).
	errfd  int
	refs   atomic.Int32  // holders of errfd: the pool and the waiter
	exited chan struct{} // closed when the process has ended
	closed bool          // close has run
}

// fileID identifies one version of a file.
type fileID struct {
	dev, ino    uint64
	size        int64
	mtime, nsec int64
}

func statID(path string) *fileID {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nil
	}
	sec, nsec := st.Mtim.Unix()
	return &fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: sec, nsec: nsec}
}

// Enabled reports whether keep mode is on: Cache is positive and the
// program has not refused the protocol (or has changed since, or the
// refusal is RefusedFor old).
func (p *Pool) Enabled() bool {
	_, on := p.mode()
	return on
}

// mode reads Cache once and says whether keep mode is on.
func (p *Pool) mode() (time.Duration, bool) {
	t := p.Cache()
	if t <= 0 {
		return t, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refused == nil {
		return t, true
	}
	if now := statID(p.Program); now != nil && *now != *p.refused || time.Since(p.since) >= RefusedFor {
		p.refused = nil // another program, or a while later: ask again
		return t, true
	}
	return t, false
}

// Result is how a request ended.
type Result int

const (
	// Answered: reply holds the process's answer.
	Answered Result = iota
	// Crashed: the process died with the request; reply holds what it
	// wrote on its fd 2 meanwhile (see Do).
	Crashed
	// NoProcess: keep mode is off (Cache is 0, or the program refused
	// it), or no process could be started; the caller makes the delivery
	// the one-shot way.
	NoProcess
)

// Do hands req, with fd when fd >= 0, to an idle process kept for key, or
// to a new one: start returns the command to run (the pool sets its
// Stdin and Stderr). It waits for the reply. Cache is read once per
// request. With Answered, reply is the process's reply packet. With
// Crashed, reply is what the process wrote on its fd 2 from the request
// on (at most MaxStderr bytes, nil for none): the Go runtime's account of
// a fatal error or panic, for the caller's report (spawn.CrashText). With
// NoProcess, reply is nil.
func (p *Pool) Do(key string, start func() *exec.Cmd, req []byte, fd int) ([]byte, Result) {
	cache, on := p.mode()
	if !on {
		p.Close() // kept ones too: Cache turned to 0 means none is kept
		return nil, NoProcess
	}
	var rights []byte
	if fd >= 0 {
		rights = unix.UnixRights(fd)
	}
	p.mu.Lock()
	p.busy++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.busy--
		p.mu.Unlock()
	}()
	for attempt := 0; attempt < 2; attempt++ {
		w := p.take(key)
		fresh := w == nil
		if fresh {
			if w = p.start(key, start); w == nil {
				return nil, NoProcess
			}
		}
		p.enter(w)
		w.drain() // what it wrote before belongs to no crash of this request
		if err := send(w.rc, req, rights); err != nil {
			p.leave(w)
			if fresh {
				return w.crashed(), Crashed
			}
			w.close()
			continue // died just now while idle: once more with a new one
		}
		reply, err := p.receive(w.rc)
		p.leave(w)
		if err != nil {
			if err == unix.ECONNRESET && !fresh {
				// The process ended with our request unread (that is what
				// ECONNRESET says on a unix socket): it died while idle
				// just as it was taken, and nothing was delivered.
				w.close()
				continue
			}
			return w.crashed(), Crashed
		}
		p.put(w, cache)
		return reply, Answered
	}
	return nil, Crashed
}

// enter counts w among the processes with a request (Signal).
func (p *Pool) enter(w *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active == nil {
		p.active = make(map[*proc]struct{})
	}
	p.active[w] = struct{}{}
	if p.signal != nil {
		w.cmd.Process.Signal(p.signal)
	}
}

// leave is the end of w's request.
func (p *Pool) leave(w *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.active, w)
}

// Signal sends sig to every process that has a request now, and to every
// one given a request later; idle ones are closed, and none is kept idle
// from then on. qmail-rspawn sends
// SIGTERM when qmail-send has gone without waiting for its deliveries.
func (p *Pool) Signal(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.signal = sig
	for w := range p.active {
		w.cmd.Process.Signal(sig)
	}
	for _, w := range p.idle {
		w.close()
	}
	p.idle = nil
}

// close ends a process: end of file on its socket; it exits by itself.
// The pool is done with w: its fd 2 pipe is closed once the process has
// ended too.
func (w *proc) close() {
	if w.closed {
		return
	}
	w.closed = true
	w.f.Close()
	w.release()
}

// release gives up one hold on errfd; the last closes it.
func (w *proc) release() {
	if w.refs.Add(-1) == 0 {
		unix.Close(w.errfd)
	}
}

// crashed closes w, whose process died with a request (or answered it
// with no packet or a cut one), and returns what the process wrote on its
// fd 2 since the request. It first waits, at most CrashWait, for the
// process to end, so that all it wrote is in the pipe; a process still
// alive sees end of file on its socket and ends.
func (w *proc) crashed() []byte {
	w.f.Close()
	t := time.NewTimer(CrashWait)
	select {
	case <-w.exited:
	case <-t.C:
	}
	t.Stop()
	out := w.readErr(MaxStderr, true)
	w.close()
	return out
}

// drain reads and discards what is waiting on w's fd 2.
func (w *proc) drain() { w.readErr(maxDrain, false) }

// readErr reads what is waiting on w's fd 2, up to max bytes, without
// waiting (the pipe is non-blocking), and returns it when keep is set.
func (w *proc) readErr(max int, keep bool) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for n := 0; n < max; {
		m, err := unix.Read(w.errfd, buf[:min(len(buf), max-n)])
		if err == unix.EINTR {
			continue
		}
		if m <= 0 || err != nil {
			break // EAGAIN: nothing more for now; 0: every writer is gone
		}
		n += m
		if keep {
			out = append(out, buf[:m]...)
		}
	}
	return out
}

// alive reports whether an idle process still holds its end of the
// socket: an idle one never writes, so anything readable (end of file) or
// a hang-up means it is gone.
func (w *proc) alive() bool {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds, 0)
		if err != unix.EINTR {
			return err == nil && n == 0
		}
	}
}

// take removes and returns the most recently idle live process for key;
// with none, and a new process would pass Limit, the oldest idle live
// process of any key, which serves key from then on.
func (p *Pool) take(key string) *proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		w := p.idle[i]
		if w.key != key {
			continue
		}
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		if w.alive() {
			return w
		}
		w.close()
	}
	// p.busy counts this request: a new process would make busy+idle.
	for p.Limit > 0 && len(p.idle) > 0 && p.busy+len(p.idle) > p.Limit {
		w := p.idle[0]
		p.idle = p.idle[1:]
		if w.alive() {
			w.key = key
			return w
		}
		w.close()
	}
	return nil
}

// errReply is a reply that is empty or cut short.
var errReply = errors.New("keep: empty or truncated reply")

// receive reads one reply into a buffer of MaxReply bytes kept between
// requests, and returns a copy of just the reply.
func (p *Pool) receive(rc syscall.RawConn) ([]byte, error) {
	bp, _ := p.bufs.Get().(*[]byte)
	if bp == nil {
		n := p.MaxReply
		if n <= 0 {
			n = DefaultMaxReply
		}
		b := make([]byte, n)
		bp = &b
	}
	defer p.bufs.Put(bp)
	n, _, flags, err := recvmsg(rc, *bp, nil)
	if err != nil {
		return nil, err
	}
	if n == 0 || flags&unix.MSG_TRUNC != 0 {
		return nil, errReply
	}
	return append([]byte(nil), (*bp)[:n]...), nil
}

// put makes w idle for t, or closes it when t is not positive or keep
// mode is held.
func (p *Pool) put(w *proc, t time.Duration) {
	if t <= 0 || (p.Held != nil && p.Held()) {
		w.close()
		return
	}
	w.since = time.Now()
	maxIdle := p.MaxIdle
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.signal != nil {
		w.close() // after Signal nothing is kept
		return
	}
	p.idle = append(p.idle, w)
	for len(p.idle) > maxIdle {
		p.idle[0].close()
		p.idle = p.idle[1:]
	}
	if !p.reaping {
		p.reaping = true
		go p.reap()
	}
}

// Idle is the number of idle processes.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// reap closes idle processes whose time is up, all of them while Held
// says so; it ends when none is idle. Cache is read at each look, so a
// shorter time (or 0) applies to the processes already idle.
func (p *Pool) reap() {
	for {
		time.Sleep(ReapEvery)
		held := p.Held != nil && p.Held()
		cache := p.Cache()
		now := time.Now()
		p.mu.Lock()
		keep := p.idle[:0]
		for _, w := range p.idle {
			if held || cache <= 0 || now.After(w.since.Add(cache)) {
				w.close()
			} else {
				keep = append(keep, w)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		if len(p.idle) == 0 {
			p.reaping = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// Close closes every idle process.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.idle {
		w.close()
	}
	p.idle = nil
}

// start runs a new process with one end of a new socket pair as its fd 0
// and the write end of a new pipe as its fd 2, and waits for its hello. A
// process that does not greet is killed and keep mode is turned off for
// the program file, for RefusedFor.
func (p *Pool) start(key string, mk func() *exec.Cmd) *proc {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	// Both ends non-blocking from the start: the process's, so that it
	// never waits on a full pipe (os.NewFile leaves a descriptor that is
	// non-blocking already so when exec takes it); ours, so that reading
	// never waits.
	var ep [2]int
	if err := unix.Pipe2(ep[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil
	}
	child := os.NewFile(uintptr(fds[1]), "keep socket")
	stderr := os.NewFile(uintptr(ep[1]), "keep stderr")
	cmd := mk()
	cmd.Stdin = child
	cmd.Stderr = stderr
	id := statID(p.Program)
	err = cmd.Start()
	child.Close()
	stderr.Close()
	if err != nil {
		unix.Close(fds[0])
		unix.Close(ep[0])
		return nil
	}
	w := &proc{fd: fds[0], f: pollfd.File(fds[0], "keep socket"), cmd: cmd, key: key,
		errfd: ep[0], exited: make(chan struct{})}
	w.refs.Store(2)
	go func() {
		pollfd.Wait(cmd)
		close(w.exited)
		w.release()
	}()
	if w.rc, err = w.f.SyscallConn(); err != nil || !w.greeted(p.Hello) {
		w.close()
		cmd.Process.Kill()
		p.mu.Lock()
		if id != nil {
			p.refused, p.since = id, time.Now()
		}
		p.mu.Unlock()
		return nil
	}
	return w
}

// greeted waits up to HelloTimeout for the hello packet.
func (w *proc) greeted(hello string) bool {
	if w.f.SetReadDeadline(time.Now().Add(HelloTimeout)) != nil {
		return false
	}
	buf := make([]byte, len(hello)+1)
	m, _, _, err := recvmsg(w.rc, buf, nil)
	w.f.SetReadDeadline(time.Time{})
	return err == nil && string(buf[:max(m, 0)]) == hello
}
