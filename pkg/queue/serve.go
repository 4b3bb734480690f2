package queue

// Service mode (qmail-queued, docs/man/qmail-queued.8): the writer of this
// package kept running under qmailq, taking messages over the socket of
// pkg/qq (service.go) instead of from a freshly started set-uid
// qmail-queue. Each message is one job exactly as in the one-message
// mode: same order of work, same durability, same exit codes, and the
// result is sent only once the job has ended. Jobs run concurrently, so
// the fsyncs of simultaneous callers overlap.
//
// What a caller may do to the service is what it may do to qmail-queue:
// hand it bytes. Its uid and pid come from the kernel. A caller that stops
// writing holds one job slot until the 24-hour alarm; when every slot is
// taken (MaxJobs) the service answers "no" and callers run qmail-queue, so
// a full service never stops anyone from queueing.
//
// Closing a caller's descriptor can block for as long as the caller likes
// (a TCP socket with SO_LINGER and a full send queue waits in close(2) for
// the linger time; a file on a FUSE mount waits for its daemon), and so
// can closing a connection whose request is still unread (the kernel
// closes the descriptors in flight on the closing thread). The accept
// loop therefore never closes either: a job closes its own (holding its
// slot until they are closed, so that blocked closes hold at most MaxJobs
// threads), and a refused connection goes to a few closer goroutines
// (refusalClosers, with refusalBacklog connections waiting for them).
// When those are all busy too, the loop stops accepting until a slot or a
// closer is free: callers wait in the listen backlog for at most their
// answer timeout, or fail to connect at once when it is full, and run
// qmail-queue either way.

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

// MaxJobs is how many messages the service reads at once.
const MaxJobs = 64

// requestWait bounds the wait for a request on an accepted connection.
const requestWait = 10 * time.Second

// Refused connections are closed (with whatever their callers passed) by
// refusalClosers goroutines, away from the accept loop; refusalBacklog
// more wait for them. Each close that blocks holds one closer, and one OS
// thread. Variables for tests.
var (
	refusalClosers = 4
	refusalBacklog = 64
)

// busyWait is how often the accept loop looks again while it can neither
// take nor refuse a caller.
const busyWait = 100 * time.Millisecond

// ServiceConfig is one run of the service.
type ServiceConfig struct {
	Root string
	// Listener is a listening SOCK_SEQPACKET socket (Listen).
	Listener int
	// Stop, when readable or at end of file, ends the service: qmail-start
	// holds the other end of this pipe. -1: none.
	Stop int
	// MaxJobs bounds concurrent jobs (0: MaxJobs).
	MaxJobs int
	// Alarm bounds one job (0: Alarm): a caller that has not finished
	// writing by then gets 54 and the job's files are removed.
	Alarm time.Duration
	// Grace bounds the wait for jobs in flight once stopped (0: one minute).
	Grace time.Duration
	// Clock gives each message's time; nil means time.Now.
	Clock func() time.Time
}

// Listen creates the service's socket at root/public/qmail-queue (mode
// 0666: anyone may queue, as anyone may run qmail-queue) after removing a
// stale one. It first takes an exclusive lock on queue/lock/queued (made
// if missing, mode 0600: only qmailq can open it, so no caller can hold
// the service off), so that a second service on the same tree gets
// ErrRunning and leaves the first alone. The returned lock descriptor
// must stay open while serving.
func Listen(root string) (sock, lock int, err error) {
	lock, err = unix.Open(filepath.Join(root, LockFile), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, -1, err
	}
	if err := unix.Flock(lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(lock)
		if err == unix.EWOULDBLOCK {
			return -1, -1, ErrRunning
		}
		return -1, -1, err
	}
	dir, err := unix.Open(filepath.Join(root, filepath.Dir(qq.ServiceSocket)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(lock)
		return -1, -1, err
	}
	defer unix.Close(dir)
	// Non-blocking, so that a caller gone between poll and accept cannot
	// hold the accept loop (and the stop) until the next caller comes.
	sock, err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		unix.Close(lock)
		return -1, -1, err
	}
	fail := func(e error) (int, int, error) {
		unix.Close(sock)
		unix.Close(lock)
		return -1, -1, e
	}
	// Bind relative to public/ through /proc, so that a long root works.
	base := filepath.Base(qq.ServiceSocket)
	name := "/proc/self/fd/" + strconv.Itoa(dir) + "/" + base
	if err := unix.Unlinkat(dir, base, 0); err != nil && err != unix.ENOENT {
		return fail(err)
	}
	if err := unix.Bind(sock, &unix.SockaddrUnix{Name: name}); err != nil {
		return fail(err)
	}
	if err := unix.Fchmodat(dir, base, 0o666, 0); err != nil {
		return fail(err)
	}
	if err := unix.Listen(sock, 128); err != nil {
		return fail(err)
	}
	return sock, lock, nil
}

// LockFile is the service's lock, relative to the root.
const LockFile = "queue/lock/queued"

// ErrRunning: another service holds the tree's lock.
var ErrRunning = errors.New("another qmail-queued serves this tree")

// Serve accepts and runs jobs until Stop fires, then waits (up to Grace)
// for the jobs in flight and returns. The socket is removed first, so
// that callers run qmail-queue from then on.
func Serve(c *ServiceConfig) {
	maxJobs := c.MaxJobs
	if maxJobs <= 0 {
		maxJobs = MaxJobs
	}
	alarm := c.Alarm
	if alarm <= 0 {
		alarm = Alarm
	}
	grace := c.Grace
	if grace <= 0 {
		grace = time.Minute
	}
	clock := c.Clock
	if clock == nil {
		clock = time.Now
	}
	var wg sync.WaitGroup
	var running atomic.Int64
	var seq atomic.Uint64
	tag := strconv.Itoa(os.Getpid())
	gs := &groupSync{queue: filepath.Join(c.Root, "queue")}
	whoCache := &whoCache{root: c.Root}
	refused := newCloser(refusalClosers, refusalBacklog)
	for {
		// A caller is either taken (a slot is free) or refused (a
		// closer will take its connection). When neither can be, leave
		// callers in the backlog and look again shortly. Only this loop
		// takes slots and hands connections to the closers, so a free
		// slot or room found here is still there when the next caller
		// is accepted.
		blocked := running.Load() >= int64(maxJobs) && !refused.room()
		pfd := []unix.PollFd{{Fd: int32(c.Listener), Events: unix.POLLIN}}
		wait := -1
		if blocked {
			pfd[0].Fd = -1 // not polled
			wait = int(busyWait / time.Millisecond)
		}
		if c.Stop >= 0 {
			pfd = append(pfd, unix.PollFd{Fd: int32(c.Stop), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(pfd, wait); err != nil {
			if err == unix.EINTR {
				continue
			}
			break
		}
		if len(pfd) > 1 && pfd[1].Revents != 0 {
			break
		}
		if blocked {
			continue
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				break
			}
			continue
		}
		conn, _, err := unix.Accept4(c.Listener, unix.SOCK_CLOEXEC)
		if err != nil {
			if err == unix.EMFILE || err == unix.ENFILE {
				time.Sleep(100 * time.Millisecond) // let jobs end
			}
			continue
		}
		// Jobs may have ended since: look again. A slot found free
		// stays free, and room for a refusal found before stays there.
		if running.Load() >= int64(maxJobs) {
			// Run qmail-queue yourself. A caller whose request is not
			// here yet sees "no" or the connection reset, which means
			// the same. Nothing of the caller's is closed here.
			qq.Refuse(conn)
			refused.add(conn)
			continue
		}
		running.Add(1)
		wg.Add(1)
		n := seq.Add(1)
		go func() {
			// The slot is given back only once the caller's descriptors
			// and the connection are closed (those closes may block).
			defer wg.Done()
			defer running.Add(-1)
			defer unix.Close(conn)
			serveConn(&Config{Root: c.Root, Tag: tag + "." + strconv.FormatUint(n, 10), Now: clock(),
				DirSync: gs.sync}, conn, alarm, whoCache)
		}()
	}
	// Callers connecting from now on fail and run qmail-queue.
	unix.Unlinkat(unix.AT_FDCWD, filepath.Join(c.Root, qq.ServiceSocket), 0)
	// Closing the listener releases the connections still in its backlog
	// and the descriptors their callers passed: that close can block as a
	// refusal's can, so the stop does not wait for it.
	go unix.Close(c.Listener)
	refused.stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
}

// closer closes refused connections, and the requests in them, on its own
// goroutines.
type closer struct {
	conns   chan int
	pending atomic.Int64 // connections in conns not yet taken by a goroutine
}

func newCloser(goroutines, backlog int) *closer {
	c := &closer{conns: make(chan int, max(backlog, 1))}
	for range max(goroutines, 1) {
		go c.run()
	}
	return c
}

// room reports whether add will not wait. Only one goroutine may add.
func (c *closer) room() bool { return c.pending.Load() < int64(cap(c.conns)) }

// add hands conn over; call it only when room() says so.
func (c *closer) add(conn int) {
	c.pending.Add(1)
	c.conns <- conn
}

func (c *closer) run() {
	for conn := range c.conns {
		c.pending.Add(-1)
		qq.DropRequest(conn)
		unix.Close(conn)
	}
}

// stop lets the goroutines end once the connections handed over are
// closed. No add after stop.
func (c *closer) stop() { close(c.conns) }

// serveConn runs one request: a job over the caller's descriptors, with
// the Root, Tag, Now and DirSync of c.
func serveConn(c *Config, conn int, alarm time.Duration, wc *whoCache) {
	req, err := qq.ReceiveRequest(conn, requestWait)
	if err != nil {
		if errors.Is(err, qq.ErrBadRequest) {
			qq.Answer(conn, false)
		}
		return
	}
	deadline := time.Now().Add(alarm) // real time, whatever the clock says
	msg := &pollReader{fd: req.Message, conn: conn, deadline: deadline}
	env := &pollReader{fd: req.Envelope, conn: conn, deadline: deadline}
	defer unix.Close(req.Message)
	defer unix.Close(req.Envelope)
	if qq.Answer(conn, true) != nil {
		return
	}
	c.Message, c.Envelope = msg, env
	c.UID, c.PID, c.Who = req.UID, req.PID, wc.who(req.UID)
	code, id := runJob(c)
	qq.SendResult(conn, code, id)
}

// whoCache reads etc/ids once for the service's life (qmail-install
// rewrites it only when the tree is reinstalled, and the service is
// restarted with qmail-start then).
type whoCache struct {
	root string
	once sync.Once
	ids  *qhome.IDs
}

func (w *whoCache) who(uid int) string {
	w.once.Do(func() {
		if ids, err := qhome.LoadIDs(w.root); err == nil {
			w.ids = ids
		}
	})
	return whoIDs(w.ids, uid)
}

// groupSync makes the directory fsyncs of concurrent jobs together: a job
// that has made its entry in a directory waits for an fsync of that
// directory that started after it asked (so its entry is covered), and one
// fsync answers every job that asked while the previous one ran. With
// eight callers at once this turns up to eight fsyncs of intd/ (and of
// todo/, and of each mess/S) into two or three, each as durable as before.
type groupSync struct {
	queue string // the queue directory
	mu    sync.Mutex
	dirs  map[string]*dirGroup
}

type dirGroup struct {
	running bool
	waiters []chan error // for the next fsync
}

func (g *groupSync) sync(name string) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	if g.dirs == nil {
		g.dirs = map[string]*dirGroup{}
	}
	d := g.dirs[name]
	if d == nil {
		d = &dirGroup{}
		g.dirs[name] = d
	}
	d.waiters = append(d.waiters, ch)
	if !d.running {
		d.running = true
		go g.loop(name, d)
	}
	g.mu.Unlock()
	return <-ch
}

// loop fsyncs name as long as jobs wait for it: each round takes every
// waiter registered before it starts.
func (g *groupSync) loop(name string, d *dirGroup) {
	for {
		g.mu.Lock()
		w := d.waiters
		d.waiters = nil
		if len(w) == 0 {
			d.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := fsyncDir(unix.AT_FDCWD, filepath.Join(g.queue, name))
		for _, c := range w {
			c <- err
		}
	}
}

// pollReader reads a descriptor the caller passed, without changing its
// flags (the caller may share it): poll, then read, until the deadline.
// It gives up as soon as the caller hangs up its connection: a caller
// that goes away has given up the message, as one that kills its
// qmail-queue has (else a message descriptor that never ends, such as
// /dev/zero, would fill the disk for the caller that left).
type pollReader struct {
	fd       int
	conn     int // the caller's connection
	deadline time.Time
}

var (
	errDeadline = errors.New("caller too slow")
	errGone     = errors.New("caller gone")
)

func (r *pollReader) Read(p []byte) (int, error) {
	for {
		left := time.Until(r.deadline)
		if left <= 0 {
			return 0, errDeadline
		}
		ms := int(min(left, time.Hour) / time.Millisecond)
		pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(r.conn), Events: unix.POLLRDHUP}}
		n, err := unix.Poll(pfd, max(ms, 1))
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if pfd[1].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return 0, errGone
		}
		m, err := unix.Read(r.fd, p)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err != nil:
			return 0, err
		case m == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return m, nil
	}
}

// lockWait bounds how long a starting service waits for the tree's lock:
// longer than a stopping service may take to finish its jobs (Grace).
var lockWait = 2 * time.Minute

// listenWaiting is Listen, waiting while another service holds the lock:
// a service being stopped keeps it for up to a minute while its last jobs
// finish, and the one qmail-start has just started (by a quick restart)
// must take over after it rather than exit and leave the tree without a
// service. It gives up with ErrRunning after lockWait, or at once when
// stop (qmail-start's stop pipe; -1: none) is readable or ends.
func listenWaiting(root string, stop int) (sock, lock int, err error) {
	for deadline := time.Now().Add(lockWait); ; {
		sock, lock, err = Listen(root)
		if !errors.Is(err, ErrRunning) || time.Now().After(deadline) {
			return sock, lock, err
		}
		if stop < 0 {
			time.Sleep(time.Second)
			continue
		}
		pfd := []unix.PollFd{{Fd: int32(stop), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 1000); n > 0 && pfd[0].Revents != 0 {
			return -1, -1, ErrRunning // told to stop while waiting
		}
	}
}

// MainService is qmail-queued: the root from the executable's location, fd 0 the
// stop pipe from qmail-start (or a terminal/nothing when run by hand:
// then SIGTERM stops it). It returns the exit code.
func MainService(root string) int {
	syscall.Umask(0o33)
	stop := -1
	var st unix.Stat_t
	if unix.Fstat(0, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
		stop = 0 // qmail-start's stop pipe
	}
	sock, lock, err := listenWaiting(root, stop)
	if err != nil {
		if errors.Is(err, ErrRunning) {
			return 0
		}
		os.Stderr.WriteString("qmail-queued: fatal: unable to listen on " +
			filepath.Join(root, qq.ServiceSocket) + ": " + err.Error() + "\n")
		return 111
	}
	defer unix.Close(lock)
	// Stop at end of file (or any byte) on fd 0 when it is qmail-start's
	// pipe, and on SIGTERM or SIGINT.
	r, w, err := os.Pipe()
	if err != nil {
		os.Stderr.WriteString("qmail-queued: fatal: unable to create pipe: " + err.Error() + "\n")
		return 111
	}
	if stop == 0 {
		go func() {
			var b [1]byte
			os.Stdin.Read(b[:])
			w.Close()
		}()
	}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		w.Close()
	}()
	// r must stay reachable while Serve polls its descriptor: a collected
	// *os.File closes it, and the number may then name a caller's pipe.
	Serve(&ServiceConfig{Root: root, Listener: sock, Stop: int(r.Fd())})
	r.Close()
	return 0
}
