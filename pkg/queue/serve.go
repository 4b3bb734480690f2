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
// taken (MaxJobs, or fewer when the descriptor limit allows fewer, down
// to none: see fitService, and capacity for a limit lowered while it
// runs) the service answers "no" and callers run qmail-queue, so a full
// service never stops anyone from queueing. A
// caller that has gone frees its slot at once (pollReader): so that it
// cannot make the job keep its connection alive, a request passing an
// AF_UNIX socket is refused (pkg/qq, servicefds.go), and a job gives up
// when anything arrives on its connection after the request.
//
// Closing what a caller passed must not wait on the caller: sockets are
// closed by a thread that exits, where the kernel never lingers, and a
// connection is emptied before it is closed, so that no lingering socket
// in flight in it is closed by the kernel on the closing thread
// (qq.CloseConn, ServiceRequest.Close). Some closes can still block for as long as the
// caller likes (a file on a FUSE mount waits for its daemon). The accept
// loop therefore never closes anything of a caller's: a job closes its
// own (holding its slot until they are closed, so that blocked closes
// hold at most MaxJobs threads), and a refused connection goes to a few
// closer goroutines (refusalClosers, with refusalBacklog connections
// waiting for them). When those are all busy too, the loop stops
// accepting until a slot or a closer is free: callers wait in the listen
// backlog for at most their answer timeout, or fail to connect at once
// when it is full, and run qmail-queue either way.

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/nofile"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
	"github.com/hqmail/hqmail/pkg/sigcatch"
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

// closeRefused closes a refused connection and what its caller passed; a
// variable so that tests can make it block, as the close of a file on a
// FUSE mount can.
var closeRefused = qq.CloseConn

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
	// Log receives the service's warnings (a job failed for a system
	// error, fewer jobs than MaxJobs fit the descriptor limit); nil means
	// os.Stderr, which qmail-start shares with its own.
	Log io.Writer
	// jobs, if set, counts the running jobs (tests wait on it for jobs
	// that outlive Serve, as they may after the grace).
	jobs *sync.WaitGroup
}

// Listen creates the service's socket at root/public/qmail-queue (mode
// 0666: anyone may queue, as anyone may run qmail-queue) after removing a
// stale one. It first takes an exclusive lock on queue/lock/queued (made
// if missing, mode 0600: only qmailq can open it, so no caller can hold
// the service off), so that a second service on the same tree gets
// ErrRunning and leaves the first alone. The returned lock descriptor
// must stay open while serving. Any other error is a *listenError,
// naming the file it is about: the lock (a queued left to root by a
// service run by hand as root cannot be opened by qmailq), public/ or the
// socket.
//
// The lock is each tree's own: a lock with more than one link is shared
// with another tree (a copy made with cp -al), whose service would keep
// this one from ever listening, or the other way round. Such a lock is
// replaced by a new file of this tree's (sharedLock) when it is free or
// when the root written in it (markLock) is another tree's; held by this
// tree's own service, it is ErrRunning as ever.
func Listen(root string) (sock, lock int, err error) {
	lockPath := filepath.Join(root, LockFile)
	lock, err = unix.Open(lockPath, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, -1, &listenError{"open lock file", lockPath, err}
	}
	var lst unix.Stat_t
	if err := unix.Fstat(lock, &lst); err == nil && lst.Nlink > 1 {
		unix.Close(lock)
		if lock, err = sharedLock(root); err != nil {
			if err == ErrRunning {
				return -1, -1, err
			}
			return -1, -1, &listenError{"replace the shared lock file", lockPath, err}
		}
	} else if err := unix.Flock(lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(lock)
		if err == unix.EWOULDBLOCK {
			return -1, -1, ErrRunning
		}
		return -1, -1, &listenError{"lock", lockPath, err}
	}
	markLock(lock, root)
	dirPath := filepath.Join(root, filepath.Dir(qq.ServiceSocket))
	dir, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(lock)
		return -1, -1, &listenError{"open directory", dirPath, err}
	}
	defer unix.Close(dir)
	sockPath := filepath.Join(root, qq.ServiceSocket)
	// Non-blocking, so that a caller gone between poll and accept cannot
	// hold the accept loop (and the stop) until the next caller comes.
	sock, err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		unix.Close(lock)
		return -1, -1, &listenError{"listen on", sockPath, err}
	}
	fail := func(e error) (int, int, error) {
		unix.Close(sock)
		unix.Close(lock)
		return -1, -1, &listenError{"listen on", sockPath, e}
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
	// Every packet received on a connection then comes with its sender's
	// credentials (each accepted connection inherits the option), which
	// tells an empty packet from the end when qq.CloseConn empties it.
	if err := unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
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

// markLock writes root into the lock the service holds (open as fd), so
// that the service of a tree that shares the file (a cp -al copy) can
// tell the lock is not its own tree's (sharedLock). Errors are ignored:
// the file's contents are only this hint.
func markLock(fd int, root string) {
	b := []byte(root + "\n")
	if unix.Ftruncate(fd, 0) == nil {
		unix.Pwrite(fd, b, 0)
	}
}

// sharedLock takes the lock of the tree at root when the file has more
// than one link. Under an flock on queue/lock itself (services of this
// tree starting at once replace it one at a time), the file is opened
// again: with one link now (another service replaced it), it is locked
// as usual; with more, it is replaced by a new file, locked before its
// rename, when nobody holds it or when the root written in it names
// another tree than root (that tree's service keeps the old file under
// its own name). Held by this tree's own service (the root written is
// root's, or none is), the result is ErrRunning.
func sharedLock(root string) (int, error) {
	dirPath := filepath.Join(root, filepath.Dir(LockFile))
	dir, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dir) // and its flock
	if err := unix.Flock(dir, unix.LOCK_EX); err != nil {
		return -1, err
	}
	name := filepath.Base(LockFile)
	old, err := unix.Openat(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, err
	}
	defer func() {
		if old >= 0 {
			unix.Close(old)
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(old, &st); err != nil {
		return -1, err
	}
	err = unix.Flock(old, unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case err == unix.EWOULDBLOCK && (st.Nlink <= 1 || !otherTreeLock(old, root)):
		return -1, ErrRunning
	case err != nil && err != unix.EWOULDBLOCK:
		return -1, err
	case err == nil && st.Nlink <= 1:
		fd := old
		old = -1
		return fd, nil
	}
	tmp := "." + name + ".new." + strconv.Itoa(os.Getpid())
	unix.Unlinkat(dir, tmp, 0)
	fd, err := unix.Openat(dir, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dir, tmp, 0)
		return -1, err
	}
	if err := unix.Renameat(dir, tmp, dir, name); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dir, tmp, 0)
		return -1, err
	}
	unix.Fsync(dir)
	return fd, nil
}

// otherTreeLock reports whether the lock open as fd names, as markLock
// wrote it, another tree than root. A path that no longer exists is not
// known to be another tree: a tree moved while its service ran (and then
// copied) has its own service holding the lock under the old path.
func otherTreeLock(fd int, root string) bool {
	b := make([]byte, 4096)
	n, err := unix.Pread(fd, b, 0)
	if err != nil || n <= 0 {
		return false
	}
	its := strings.TrimSpace(string(b[:n]))
	if its == "" || strings.ContainsRune(its, '\n') {
		return false
	}
	a, err := os.Stat(its)
	if err != nil {
		return false
	}
	r, err := os.Stat(root)
	return err == nil && !os.SameFile(a, r)
}

// listenError is a failure of Listen other than ErrRunning: what it was
// doing ("open lock file", "lock", "open directory", "listen on"), on
// which path, and the system's error.
type listenError struct {
	op, path string
	err      error
}

func (e *listenError) Error() string {
	return "unable to " + e.op + " " + e.path + ": " + e.err.Error()
}

func (e *listenError) Unwrap() error { return e.err }

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
	logw := c.Log
	if logw == nil {
		logw = os.Stderr
	}
	log := &errLog{w: logw, every: time.Second}
	want := serviceLimits{jobs: maxJobs, closers: max(refusalClosers, 1), backlog: max(refusalBacklog, 1)}
	nofile := nofileFor(want.need())
	lim := fitService(want, nofile)
	// Said once at the start, not rate-limited. With no job at all
	// every caller is answered "no" and runs qmail-queue.
	if lim.jobs < want.jobs {
		text := "qmail-queued: warning: descriptor limit " + strconv.FormatInt(nofile, 10) +
			" fits " + plural(lim.jobs, "job") + " at once, not " + strconv.Itoa(want.jobs)
		if lim.jobs == 0 {
			text += ": every caller runs qmail-queue"
		}
		io.WriteString(logw, text+"\n")
	}
	maxJobs = lim.jobs
	fit := &capacity{start: lim, want: want.jobs, jobs: lim.jobs, nofile: nofile, note: &noticeLog{w: logw}}
	wg := c.jobs
	if wg == nil {
		wg = new(sync.WaitGroup)
	}
	var running atomic.Int64
	var seq atomic.Uint64
	tag := strconv.Itoa(os.Getpid())
	gs := &groupSync{}
	whoCache := &whoCache{root: c.Root}
	refused := newCloser(lim.closers, lim.backlog, closeRefused)
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
			maxJobs = fit.now() // a limit raised since frees slots
			continue
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				break
			}
			continue
		}
		// The descriptor limit may have changed since the last caller
		// (prlimit, a soft limit lowered): fit the jobs to it before this
		// caller is answered. When it now fits fewer jobs than run and a
		// refusal has no room either, wait as when saturated.
		maxJobs = fit.now()
		if running.Load() >= int64(maxJobs) && !refused.room() {
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
			defer qq.CloseConn(conn)
			serveConn(&Config{Root: c.Root, Tag: tag + "." + strconv.FormatUint(n, 10), Now: clock(),
				DirSync: gs.sync}, conn, alarm, whoCache, log)
		}()
	}
	// Callers connecting from now on fail and run qmail-queue.
	unix.Unlinkat(unix.AT_FDCWD, filepath.Join(c.Root, qq.ServiceSocket), 0)
	// Closing the listener releases the connections still in its backlog
	// and the descriptors their callers passed, which the kernel closes on
	// the closing thread as they are (a lingering socket among them makes
	// the close wait): the stop does not wait for it, and the process's
	// exit ends it (sockets closed at exit do not linger).
	go unix.Close(c.Listener)
	refused.stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	log.close(time.Second)
}

// closer closes refused connections, and the requests in them, on its own
// goroutines.
type closer struct {
	conns   chan int
	pending atomic.Int64 // connections in conns not yet taken by a goroutine
	closeFn func(conn int)
}

func newCloser(goroutines, backlog int, closeFn func(conn int)) *closer {
	c := &closer{conns: make(chan int, max(backlog, 1)), closeFn: closeFn}
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
		c.closeFn(conn)
	}
}

// stop lets the goroutines end once the connections handed over are
// closed. No add after stop.
func (c *closer) stop() { close(c.conns) }

// serveConn runs one request: a job over the caller's descriptors, with
// the Root, Tag, Now and DirSync of c. A job that fails for a
// system error is logged on log.
func serveConn(c *Config, conn int, alarm time.Duration, wc *whoCache, log *errLog) {
	req, err := qq.ReceiveRequest(conn, requestWait) // a bad request is answered "no"
	if err != nil {
		return
	}
	deadline := time.Now().Add(alarm) // real time, whatever the clock says
	msg := &pollReader{fd: req.Message, conn: conn, deadline: deadline}
	env := &pollReader{fd: req.Envelope, conn: conn, deadline: deadline}
	defer req.Close() // sockets closed where they cannot linger
	if qq.Answer(conn, true) != nil {
		return
	}
	c.Message, c.Envelope = msg, env
	c.Gone = func() bool { return callerGone(conn) }
	c.UID, c.PID, c.Who = req.UID, req.PID, wc.who(req.UID)
	r := runJobResult(c)
	if r.err != nil {
		log.jobFailed(r)
	}
	if r.code != 0 {
		r.id = 0
	}
	qq.SendResult(conn, r.code, r.id)
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
//
// Jobs are grouped by the identity of the directory (device and inode of
// the descriptor the job opened), not by its name: a job's descriptor
// names the directory its entries were made in, and a directory replaced
// under the same name (todo/ moved away and made anew by qmail-install)
// is another group. Each round fsyncs through the descriptor of one of
// the jobs it answers; every job of the round keeps its own open until
// its answer comes, so that descriptor is valid for the whole fsync. No
// descriptor is opened here: a flush after a commit link cannot fail for
// want of one.
type groupSync struct {
	mu   sync.Mutex
	dirs map[dirID]*dirGroup
}

// dirID is a directory's identity.
type dirID struct{ dev, ino uint64 }

type dirGroup struct {
	waiters []syncWaiter // for the next fsync
}

// syncWaiter is a job waiting for an fsync: its descriptor of the
// directory, open until ch has been answered.
type syncWaiter struct {
	name string
	fd   int
	ch   chan error
}

// sync flushes the directory open on fd (name is for messages) together
// with the other jobs' flushes of the same directory.
func (g *groupSync) sync(name string, fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		// Not expected on an open descriptor; flush it alone.
		if err := fsyncFD(fd); err != nil {
			return pathErr("fsync", name, err)
		}
		return nil
	}
	id := dirID{dev: uint64(st.Dev), ino: st.Ino}
	ch := make(chan error, 1)
	g.mu.Lock()
	if g.dirs == nil {
		g.dirs = map[dirID]*dirGroup{}
	}
	d := g.dirs[id]
	if d == nil {
		// No round is running for this directory: start one.
		d = &dirGroup{}
		g.dirs[id] = d
		go g.loop(id, d)
	}
	d.waiters = append(d.waiters, syncWaiter{name: name, fd: fd, ch: ch})
	g.mu.Unlock()
	return <-ch
}

// loop fsyncs the directory id as long as jobs wait for it: each round
// takes every waiter registered before it starts, and flushes through the
// first one's descriptor. The group is removed when none is left.
func (g *groupSync) loop(id dirID, d *dirGroup) {
	for {
		g.mu.Lock()
		w := d.waiters
		d.waiters = nil
		if len(w) == 0 {
			delete(g.dirs, id)
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		var err error
		if e := fsyncFD(w[0].fd); e != nil {
			err = pathErr("fsync", w[0].name, e)
		}
		for _, x := range w {
			x.ch <- err
		}
	}
}

// waiting is how many jobs wait for an fsync not yet started (for tests).
func (g *groupSync) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, d := range g.dirs {
		n += len(d.waiters)
	}
	return n
}

// Descriptors, for fitting the number of jobs to RLIMIT_NOFILE.
//
// One job holds at most fdsPerJob at once while it queues: its connection,
// the two descriptors the caller passed, the root and queue directories,
// the pid/mess file (pid/ names are tried one at a time), the intd file,
// the three directories it flushes (mess/S, intd and todo, opened by the
// job and kept until it ends: see groupSync) and lock/trigger (opened
// before the commit link). But receiving the request can hold more for a
// moment: fdsPerReceive, the connection and as many descriptors as one
// packet carries (a request carrying more than two is refused and they are
// closed). So can each closer, emptying a refused connection, besides its
// fdsPerCloser. Those are counted in full: were there no room for them in
// the process's table, the kernel would close what does not fit itself,
// on the receiving thread, and a caller's lingering socket among them
// would make that thread wait for as long as the caller likes (QA: callers
// passing 253 descriptors at once, under a limit of 1024, held every
// slot).
//
// The service itself keeps fdsFixed: descriptors 0-2 (0 is qmail-start's
// stop pipe), the listener, the lock, both ends of the stop pipe it makes,
// the Go runtime's (epoll, its wake-up eventfd, and the two cgroup CPU
// limit files it keeps open), etc/ids while it is read, one accepted
// connection not yet handed on: 13, and three to spare (11 were counted
// in /proc/PID/fd of an idle service). A refused connection waiting for
// a closer holds one. With the default numbers (64 jobs, 4 closers, 64
// waiting) that is 17,352 in all: Go raises the soft limit to the hard
// one at start, and the usual hard limits (systemd's 524,288, a login's
// 1,048,576) leave room; a hard limit of 4,096 fits 15 jobs.
const (
	fdsPerJob     = 11
	fdsPerCloser  = 5
	fdsPerReceive = 1 + qq.MaxRights
	fdsFixed      = 16
)

// serviceLimits is how many jobs run at once and how many refused
// connections are handled at once (closers) or wait for them (backlog).
type serviceLimits struct {
	jobs, closers, backlog int
}

// need is the number of descriptors l may use at once.
func (l serviceLimits) need() int64 {
	return int64(fdsFixed + l.jobs*perJob + l.closers*perCloser + l.backlog)
}

// ServiceDescriptors is the descriptor limit the service needs to run all
// its jobs and closers at once (qmail-start raises the hard limit to it
// when it can).
func ServiceDescriptors() int64 {
	return serviceLimits{jobs: MaxJobs, closers: max(refusalClosers, 1), backlog: max(refusalBacklog, 1)}.need()
}

// What one job and one closer are counted at (see fdsPerReceive).
const (
	perJob    = max(fdsPerJob, fdsPerReceive)
	perCloser = max(fdsPerCloser, fdsPerReceive)
)

// fitService returns want, or, when nofile descriptors are not enough for
// it, limits that fit: the refusals get the least that keeps their logic
// (one closer, one connection waiting for it), the jobs what is left, and
// what is left after the jobs goes to more closers, then to the refusal
// backlog, up to want's. Callers beyond that are refused, or wait in the
// listen backlog as with a saturated service, and run qmail-queue. When
// not even one job fits, jobs is 0: every caller is refused (a job that
// could only fail would answer "qq trouble" where qmail-queue, run by
// the refused caller, can queue). nofile <= 0 means unknown: want is
// returned.
func fitService(want serviceLimits, nofile int64) serviceLimits {
	if nofile <= 0 || want.need() <= nofile {
		return want
	}
	l := serviceLimits{jobs: 0, closers: 1, backlog: 1}
	fit := (nofile - l.need()) / perJob
	l.jobs = int(min(max(fit, 0), int64(want.jobs)))
	if rest := nofile - l.need(); rest > 0 {
		more := min(rest/perCloser, int64(want.closers-1))
		l.closers += int(more)
		rest -= more * perCloser
		l.backlog = int(min(1+rest, int64(want.backlog)))
	}
	return l
}

// nofileFor raises the soft descriptor limit toward need and returns it
// (nofile.Raise); a variable so that tests can pretend a limit.
var nofileFor = func(need int64) int64 {
	soft, _ := nofile.Raise(need)
	return soft
}

// nofileNow returns the soft descriptor limit in force (at most 1<<31; 0
// when it cannot be read), without changing it; a variable so that tests
// can pretend a limit changed while the service runs.
var nofileNow = func() int64 {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return int64(min(rl.Cur, 1<<31))
}

// jobsFit is how many jobs fit in nofile descriptors beside the fixed
// ones and l's closers and backlog (counted as fitService counts them),
// at most l.jobs; nofile <= 0 (unknown) gives l.jobs.
func jobsFit(l serviceLimits, nofile int64) int {
	if nofile <= 0 {
		return l.jobs
	}
	fit := (nofile - serviceLimits{closers: l.closers, backlog: l.backlog}.need()) / perJob
	return int(min(max(fit, 0), int64(l.jobs)))
}

// capacity follows the descriptor limit while the service runs. The limit
// fitted at start can be lowered later (prlimit on the service, or its
// soft limit lowered by anything): jobs taken then would fail for want of
// descriptors ("qq trouble creating files", the caller's mail not
// queued), where a refused caller runs qmail-queue and queues it. So the
// accept loop reads the limit (one getrlimit) as each caller comes and
// takes the caller only when the jobs running and this one fit it. The
// closers and the refusal backlog keep their size from the start and are
// counted in full; the jobs never exceed those fitted at start (a limit
// raised beyond it takes a restart to be used). Only the accept loop uses
// it.
type capacity struct {
	start  serviceLimits // fitted at start
	want   int           // configured jobs (MaxJobs), for the notice
	jobs   int           // jobs that fit the limit last read
	nofile int64         // the limit last read
	note   *noticeLog
}

// now reads the limit and returns how many jobs fit it. A change of that
// number is said once on the log.
func (c *capacity) now() int {
	n := nofileNow()
	if n <= 0 || n == c.nofile {
		return c.jobs
	}
	c.nofile = n
	jobs := jobsFit(c.start, n)
	if jobs == c.jobs {
		return jobs
	}
	c.jobs = jobs
	text := "descriptor limit now " + strconv.FormatInt(n, 10) + ": fits " + plural(jobs, "job") + " at once"
	if jobs < c.want {
		text = "warning: " + text + ", not " + strconv.Itoa(c.want)
		if jobs == 0 {
			text += ": every caller runs qmail-queue"
		}
	}
	c.note.say("qmail-queued: " + text + "\n")
	return jobs
}

// noticeLog writes a line on its own goroutine, so that a log that blocks
// never holds the accept loop. While a write blocks, only the latest line
// said meanwhile is kept and written after it: each says the state of
// things in full, and an older one is out of date.
type noticeLog struct {
	w       io.Writer
	mu      sync.Mutex
	writing bool
	next    string // said while writing; "" none
}

func (l *noticeLog) say(line string) {
	l.mu.Lock()
	if l.writing {
		l.next = line
		l.mu.Unlock()
		return
	}
	l.writing = true
	l.mu.Unlock()
	go func() {
		for {
			l.w.Write([]byte(line))
			l.mu.Lock()
			line, l.next = l.next, ""
			if line == "" {
				l.writing = false
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
		}
	}()
}

// errLog writes the service's job failures, one line each, at most one
// line every so often: when the machine runs out of descriptors or disk
// every job may fail, and the log (qmail-start's stderr) must not flood.
// Lines held back are counted: in the next line when it comes as the
// interval ends, else in a line of their own written by a timer when the
// interval is over ("3 more job failures not shown"), so that a burst is
// counted even when no failure follows it. Every write is made on its
// own goroutine, so that a log that blocks holds no job's slot; while it
// blocks, later lines are counted, not written, and the count waits.
type errLog struct {
	w       io.Writer
	every   time.Duration
	mu      sync.Mutex
	next    time.Time // no line before this
	writing bool
	dropped int
	timer   bool // a write of the count is scheduled
	// For tests: the time (nil: time.Now) and the timer (nil:
	// time.AfterFunc).
	clock func() time.Time
	after func(time.Duration, func())
}

func (l *errLog) now() time.Time {
	if l.clock != nil {
		return l.clock()
	}
	return time.Now()
}

func (l *errLog) warn(text string) {
	now := l.now()
	l.mu.Lock()
	if l.writing || now.Before(l.next) {
		l.dropped++
		l.schedule(now)
		l.mu.Unlock()
		return
	}
	l.writing, l.next = true, now.Add(l.every)
	n := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	var b strings.Builder
	b.WriteString("qmail-queued: warning: ")
	b.WriteString(text)
	if n > 0 {
		b.WriteString(" (and " + strconv.Itoa(n) + " more not shown)")
	}
	b.WriteByte('\n')
	go l.write(b.String())
}

// write writes one line, then lets the next be written.
func (l *errLog) write(line string) {
	l.w.Write([]byte(line))
	l.mu.Lock()
	l.writing = false
	l.mu.Unlock()
}

// schedule makes sure the lines held back are counted once the interval
// is over. Call with mu held.
func (l *errLog) schedule(now time.Time) {
	if l.timer {
		return
	}
	l.timer = true
	wait := l.next.Sub(now)
	if l.writing {
		wait = max(wait, l.every) // look again once the write may be done
	}
	if l.after != nil {
		l.after(max(wait, 0), l.flush)
	} else {
		time.AfterFunc(max(wait, 0), l.flush)
	}
}

// flush writes the count of the lines held back, unless a line has
// counted them meanwhile; while a write blocks or the interval is not
// over it looks again later.
func (l *errLog) flush() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = false
	if l.dropped == 0 {
		return
	}
	if l.writing || now.Before(l.next) {
		l.schedule(now)
		return
	}
	// The count does not start a new interval: the next failure is
	// shown as it comes, so that a change of error is seen.
	n := l.dropped
	l.dropped = 0
	l.writing = true
	go l.write("qmail-queued: warning: " + plural(n, "more job failure") + " not shown\n")
}

// close writes the count of the lines still held back, at the stop: the
// timer that would have written it ends with the process. A log that
// blocks (a logger that does not read) is given up on after wait.
func (l *errLog) close(wait time.Duration) {
	l.mu.Lock()
	n := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if n == 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		l.w.Write([]byte("qmail-queued: warning: " + plural(n, "more job failure") + " not shown\n"))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// plural is n and word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// jobFailed logs a job that failed for a system error: its exit code and
// the error ("66 open todo: too many open files"), and, when the failure
// came after the commit (a flush of todo/), the id it was queued under.
func (l *errLog) jobFailed(r jobResult) {
	text := "job failed with " + strconv.Itoa(r.code) + ": " + r.err.Error()
	if r.committed {
		text += " (queued as " + strconv.FormatUint(r.id, 10) + " all the same)"
	}
	l.warn(text)
}

// pollReader reads a descriptor the caller passed: poll, then a read that
// never waits, until the deadline. It gives up as soon as the caller
// hangs up its connection: a caller that goes away has given up the
// message, as one that kills its qmail-queue has (else a message
// descriptor that never ends, such as /dev/zero, would fill the disk for
// the caller that left). It gives up too when anything arrives on the
// connection, which the protocol never sends after the request: a packet
// there could hold the caller's own end of the connection in flight (and
// the message pipe's write end), and the hang-up would never come.
//
// The read must not wait, or neither the deadline nor the hang-up would
// be looked at while it does: a caller may keep its own copy of the
// pipe's read end and read it too, and when it takes the bytes that woke
// the poll, a read that waits would wait for as long as any holder of
// the write end lives (past the 24-hour alarm, the caller long gone). So
// a pipe, a device or a socket is read with RWF_NOWAIT (preadv2), which
// holds for that one read whatever the descriptor's flags; where the
// kernel does not take it for the descriptor, O_NONBLOCK is set on it
// (on the open file description, shared with the caller, whose own reads
// then get EAGAIN: its own doing) before each read, as the caller can
// clear it again; a caller doing so between that and the read can still
// make the read wait there. Either way "nothing there" (EAGAIN) means
// another poll. A regular file or a block device is read as it is: poll
// always says it is readable, a read never waits for a writer, and
// RWF_NOWAIT would only refuse what is not cached yet.
type pollReader struct {
	fd       int
	conn     int // the caller's connection
	deadline time.Time
	how      readHow // decided by the first Read
}

// readHow is how a pollReader keeps its reads from waiting.
type readHow uint8

const (
	readUndecided readHow = iota
	readNoWait            // preadv2 with RWF_NOWAIT
	readNonblock          // read(2) with O_NONBLOCK set before each read
	readPlain             // read(2): a regular file or block device
)

// tryNoWait is false in tests that exercise the O_NONBLOCK fallback on a
// kernel that takes RWF_NOWAIT.
var tryNoWait = true

var (
	errDeadline = errors.New("caller too slow")
	errGone     = errors.New("caller gone")
)

// callerGone reports, without waiting, whether the caller's connection
// says the caller has given the message up (as pollReader tells it).
func callerGone(conn int) bool {
	pfd := []unix.PollFd{{Fd: int32(conn), Events: unix.POLLIN | unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && pfd[0].Revents&(unix.POLLIN|unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	}
}

func (r *pollReader) Read(p []byte) (int, error) {
	for {
		left := time.Until(r.deadline)
		if left <= 0 {
			return 0, errDeadline
		}
		ms := int(min(left, time.Hour) / time.Millisecond)
		pfd := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(r.conn), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(pfd, max(ms, 1))
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if pfd[1].Revents&(unix.POLLIN|unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return 0, errGone
		}
		m, err := r.read(p)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			// EAGAIN: another reader took what woke the poll (or
			// the kernel would have waited): poll again, deadline
			// and hang-up first.
			continue
		case err != nil:
			return 0, err
		case m == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return m, nil
	}
}

// read reads once, without waiting (see pollReader).
func (r *pollReader) read(p []byte) (int, error) {
	if r.how == readUndecided {
		r.how = readNonblock
		if tryNoWait {
			r.how = readNoWait
		}
		var st unix.Stat_t
		if unix.Fstat(r.fd, &st) == nil {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG, unix.S_IFBLK:
				r.how = readPlain
			}
		}
	}
	if r.how == readNoWait {
		n, err := unix.Preadv2(r.fd, [][]byte{p}, -1, unix.RWF_NOWAIT)
		switch err {
		case unix.EOPNOTSUPP, unix.EINVAL, unix.ENOSYS, unix.EPERM:
			// Not for this descriptor (a kernel whose pipes do not
			// take it, a terminal), not known to this kernel, or
			// refused by a seccomp filter.
			r.how = readNonblock
		default:
			return n, err
		}
	}
	if r.how == readNonblock {
		fl, err := unix.FcntlInt(uintptr(r.fd), unix.F_GETFL, 0)
		if err == nil && fl&unix.O_NONBLOCK == 0 {
			_, err = unix.FcntlInt(uintptr(r.fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
		}
		if err != nil {
			return 0, err // a read now could wait for ever
		}
	}
	return unix.Read(r.fd, p)
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
func MainService(root string) int { return mainService(root, os.Stderr) }

// mainService is MainService writing its diagnostics to stderr.
func mainService(root string, stderr io.Writer) int {
	syscall.Umask(0o33)
	// Its standard error is qmail-start's: with that a pipe whose reader
	// has gone (the rc script's splogger killed), a warning must fail to
	// be written, not kill the service and the jobs it runs.
	sigcatch.Drop(syscall.SIGPIPE)
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
		// The error names its file: the lock, public/ or the socket.
		io.WriteString(stderr, "qmail-queued: fatal: "+err.Error()+"\n")
		return 111
	}
	defer unix.Close(lock)
	// Stop at end of file (or any byte) on fd 0 when it is qmail-start's
	// pipe, and on SIGTERM or SIGINT.
	r, w, err := os.Pipe()
	if err != nil {
		io.WriteString(stderr, "qmail-queued: fatal: unable to create pipe: "+err.Error()+"\n")
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
	Serve(&ServiceConfig{Root: root, Listener: sock, Stop: int(r.Fd()), Log: stderr})
	r.Close()
	return 0
}
