// Package queue is the writer side of the qmail queue: qmail-queue
// (spec/queue.md §4, §5). It reads a message on one descriptor and an
// envelope on another and, on success, leaves the message in state S4
// (mess/S/ID and todo/ID) with every byte and directory entry that matters
// flushed to disk.
//
// Order of work (queue.md §5, with this project's durability rules):
//
//  1. open ROOT (61, also when it cannot be searched) and ROOT/queue
//     (62, also when it cannot be searched: found at step 2); every later name is relative to the queue directory
//     (openat/linkat), so the process never depends on its cwd (a set-uid
//     qmail-queue run by another user opened and checked both once before, and
//     uses those descriptors: settree.go);
//  2. create pid/<pid>.<start>.<seq>, seq 1..9, O_EXCL (63); ID = inode;
//  3. link it to mess/<ID mod 23>/<ID> (64); unlink the pid name (63); a
//     mess/ name already taken (a copied queue), or an intd/ID or todo/ID
//     left by an earlier message of that inode, keeps that pid/ file and
//     goes back to 2 with the next seq (createMess);
//  4. write the Received line and all of the message (54 read, 53 write);
//  5. create intd/<ID> O_EXCL (65); write u<uid>, p<pid>, then copy the
//     envelope while validating it (91 format, 11 too long, 54 truncated
//     or unreadable, 53 write);
//  6. open mess/S/ (64) and intd/ (65), then fsync the mess file, the intd
//     file, mess/S/ and intd/: the four concurrently, or one after
//     another in multi-message mode (53);
//  7. open lock/trigger and todo/ (66: see below), link intd/<ID> to
//     todo/<ID> (66) — the commit point — and fsync todo/ (53; on failure
//     the message stays: it is committed, and a scan of todo/ may have
//     taken it already, so removing its files could leave qmail-send a
//     message without its text; the caller hears a temporary failure,
//     and a retry may queue it twice);
//  8. poke lock/trigger; return 0.
//
// Nothing after the commit link opens a descriptor: the todo/ directory
// and the trigger are opened before it, so that a process or service
// short of descriptors (EMFILE) fails before the commit, cleans up, and
// the caller's retry queues the message once. Only a failed fsync of
// todo/ is left after it.
//
// Every directory a job flushes is opened by the job itself, relative to
// its own queue descriptor, and kept open until the job ends; in the
// service (serve.go) the fsync may be made through another job's
// descriptor of the same directory, never through one opened earlier by
// name. So the directory flushed is always the one the job's names were
// made in, even after the queue's directories were replaced (a repair
// that moves todo/ away and lets qmail-install make a new one).
//
// Deviation from qmail 1.03 (required by this project): every error exit
// removes the files this run made (truncate, then unlink), not only read
// and write errors, so bad input leaves no trace in the queue. The 24-hour
// alarm (52) exits without cleaning up, as in qmail; a kill -9 leaves at
// most pid/ or mess/ (+ intd/) leftovers without todo/, which qmail-send's
// 36-hour cleanup removes.
//
// Signals (the program only, Main and MainMulti): QUIT is ignored, as
// qmail ignores it (and INT and HUP, which this one catches instead);
// TERM, INT and HUP (INT and HUP unless ignored when the program
// started, as under nohup; the Go runtime keeps no inherited ignore of
// TERM) before the commit link remove what the message made, as a
// failure does, and then kill the process with the same signal (default
// action, re-raised), so the caller sees a crashed qq, a temporary
// failure, and retries. At or after the commit link the message is
// queued: the signal waits until the run is finished (one message: exit 0
// as if none came; -m: after the message's result line, see multi.go).
// The commit link and the signal's cleanup never interleave: the job
// makes every name it may have to take back (pid/, mess/, intd/) and the
// commit link under sigGuard's mutex, and the handler cleans up and dies
// holding it (sigGuard).
//
// Two rounds of disk waits per message: the message and envelope data with
// their directory entries before the commit link (one journal commit on
// ext4 with a journal; four overlapping writes without one; in
// multi-message mode the four in turn, see syncAll), then the todo/
// directory after it. The link must not reach the disk before the data it
// names, so the two rounds cannot be merged.
package queue

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

	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// Alarm is qmail-queue's suicide timer.
const Alarm = 24 * time.Hour

// File operations, package variables so that tests can inject failures
// (ENOSPC, EIO, a missing directory) at any step.
var (
	sysOpenat    = unix.Openat
	sysWrite     = unix.Write
	sysFsync     = unix.Fsync
	sysLinkat    = unix.Linkat
	sysUnlinkat  = unix.Unlinkat
	sysFtruncate = unix.Ftruncate
	sysFstatfs   = unix.Fstatfs
	sysFstatat   = unix.Fstatat
	exit         = os.Exit
)

// Config is one run of qmail-queue.
type Config struct {
	Root     string    // the qmail tree (qhome.Root() in the program)
	Message  io.Reader // fd 0: the message, read to EOF
	Envelope io.Reader // fd 1: the envelope, read up to its final NUL
	UID      int       // real uid of the caller
	PID      int       // our process id
	Now      time.Time // start time: pid file name and Received date
	// Alarm, when > 0, exits the process with 52 after that long (without
	// cleanup). The program passes queue.Alarm; tests leave it 0.
	Alarm time.Duration
	// Who, if set, is the <who> of the Received line; empty means it is
	// derived from UID and the tree's etc/ids (multi-message mode derives
	// it once per process).
	Who string
	// Tag, if set, names the pid/ file instead of PID (the service runs
	// many jobs at once, each with its own tag).
	Tag string
	// DirSync, if set, makes the directory fsyncs (the service shares one
	// among its jobs: see groupSync); nil means each job fsyncs itself.
	// It gets the job's own descriptor of the directory (name is for
	// messages), which stays open until DirSync returns; it must open
	// no descriptor (it is called after the commit link for todo/).
	DirSync func(name string, fd int) error
	// Serial makes the four fsyncs before the commit one after another
	// instead of concurrently (multi-message mode: see syncAll).
	Serial bool

	// Gone, if set, reports whether the caller has given the message up
	// (the service: the caller's connection hung up, as a ^C to a
	// sendmail waiting for its result does). It is asked once more just
	// before the commit link, under the guard's lock: a message whose
	// caller went away during the flushes is removed, as qmail-queue's
	// is when it is killed then, instead of queued for a caller that
	// reported nothing (and whose user may send it again).
	Gone func() bool

	// guard, if set, is the program's signal handler state (Main,
	// MainMulti); nil in the service and in tests that run in-process.
	guard *sigGuard

	// tree, if set, is the root of a set-id qmail-queue, opened and
	// checked (settree.go): the job uses its descriptors of the root and
	// queue/ instead of opening Root.
	tree *tree
}

// Test hooks, nil in the program: afterCommit runs right after the commit
// link; signalHeld when a signal is held back because a committed message
// is not finished.
var (
	afterCommit func()
	signalHeld  func(syscall.Signal)
)

// sigGuard is what the signal handler of qmail-queue (catchSignals)
// knows of the run. Its mutex is held by the job while it makes or takes
// back a name in the queue (createMess, the intd/ file, the commit link,
// cleanup) and by the handler from the signal to the process's death, so
// the handler sees every name the message has and no name or commit
// follows its cleanup.
type sigGuard struct {
	mu      sync.Mutex
	job     *job           // the message in progress, from its first name until its end is settled
	hold    bool           // a message is committed and its run not finished: a signal waits
	pending syscall.Signal // the signal that waited (0: none)
}

func (g *sigGuard) lock() {
	if g != nil {
		g.mu.Lock()
	}
}

func (g *sigGuard) unlock() {
	if g != nil {
		g.mu.Unlock()
	}
}

// catchSignals catches TERM, INT and HUP for g, INT and HUP unless
// ignored when the program started (nohup, a background job of a
// non-interactive shell): qmail-queue keeps ignoring them then. An
// inherited ignore of TERM is not kept: the Go runtime replaces it with
// its own handler before main runs (signal.Ignored says false), so TERM
// is always caught, and the message in progress removed.
//
// QUIT is ignored, as qmail's qmail-queue ignores it (sig_miscignore):
// the Go runtime's own action would print "SIGQUIT: quit" on fd 2 and
// exit 2. qmail-queue execs nothing, so the ignore reaches no program.
func catchSignals(g *sigGuard) {
	signal.Ignore(syscall.SIGQUIT)
	var sigs []os.Signal
	for _, s := range []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) == 0 {
		return
	}
	c := make(chan os.Signal, len(sigs))
	signal.Notify(c, sigs...)
	go func() {
		for s := range c {
			g.signal(s.(syscall.Signal))
		}
	}()
}

// signal handles sig: held back while a committed message is not
// finished (the run ends it, see Main and RunMulti), else the message in
// progress (if any) is removed and the process dies of sig, with g.mu
// held to the end.
func (g *sigGuard) signal(sig syscall.Signal) {
	g.mu.Lock()
	if g.hold {
		if g.pending == 0 {
			g.pending = sig
		}
		g.mu.Unlock()
		if signalHeld != nil {
			signalHeld(sig)
		}
		return
	}
	if g.job != nil {
		g.job.cleanup()
	}
	dieOf(sig)
}

// dieOf kills the process with sig, its default action restored, so that
// its parent sees it killed by that signal (the caller's "qq crashed",
// a temporary failure): an exit code would claim something spec/queue.md
// §4 gives another meaning. It does not return; should the signal not
// end the process (it always does), SIGKILL does.
func dieOf(sig syscall.Signal) {
	signal.Reset(sig)
	pid := os.Getpid()
	for range 10 {
		syscall.Kill(pid, sig)
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	select {}
}

// Run queues one message and returns qmail-queue's exit code.
func Run(c *Config) int {
	if c.Alarm > 0 {
		t := time.AfterFunc(c.Alarm, func() { exit(qq.ExitTimeout) })
		defer t.Stop()
	}
	code, _ := runJob(c)
	return code
}

// runJob queues one message and returns the exit code and, on success,
// the queue id (the inode number of mess/S/ID).
func runJob(c *Config) (int, uint64) {
	r := runJobResult(c)
	if r.code != 0 {
		return r.code, 0
	}
	return 0, r.id
}

// jobResult is how a job ended: its exit code, the queue id (on success,
// and also when the commit was made but its flush failed), and the system
// error that made it fail, if one did (nil for bad input, a caller that
// went away, or success).
type jobResult struct {
	code      int
	id        uint64
	committed bool
	err       error
}

func runJobResult(c *Config) jobResult {
	j := &job{c: c, rootfd: -1, qfd: -1, messfd: -1, intdfd: -1, splitfd: -1, intddirfd: -1, todofd: -1, trigfd: -1}
	buf := bufs.Get().(*[]byte)
	j.buf = (*buf)[:0]
	defer bufs.Put(buf)
	j.g = c.guard
	code := j.run()
	// Under the guard's lock: a signal handler must not clean up with
	// this job's descriptors as they are closed (their numbers may then
	// name other files).
	j.g.lock()
	if code != 0 && code != qq.ExitTimeout {
		j.cleanup()
	}
	if j.g != nil && j.g.job == j {
		j.g.job = nil
	}
	j.g.unlock()
	j.close()
	r := jobResult{code: code, committed: j.committed, err: j.err}
	if code == 0 || j.committed {
		r.id = j.id
	}
	if code == 0 {
		r.err = nil
	}
	return r
}

type job struct {
	c         *Config
	g         *sigGuard // c.guard (nil: no signal handler)
	rootfd    int
	qfd       int  // queue/
	borrowed  bool // rootfd and qfd are c.tree's: not closed by the job
	pidname   string
	messfd    int
	mess      string // mess/S/ID, once linked
	intdfd    int
	intd      string // intd/ID, once created
	committed bool   // todo/ID is linked: nothing is removed after that
	splitfd   int    // mess/S/, opened for its fsync
	intddirfd int    // intd/, opened for its fsync
	todofd    int    // todo/, opened before the commit
	trigfd    int    // lock/trigger, opened before the commit (-1: none)
	id        uint64
	split     string
	buf       []byte
	err       error // the first system error met (for the service's log)
}

// fail records err as the job's system error (the first one stands) and
// returns code.
func (j *job) fail(code int, err error) int {
	if j.err == nil && err != nil {
		j.err = err
	}
	return code
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

const bufSize = 64 << 10

// bufs holds the jobs' copy buffers between jobs: a multi-message run and
// the service queue many messages, and a fresh 64 KB per message is memory
// to clear and then to collect.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

func (j *job) run() int {
	var err error
	if t := j.c.tree; t != nil {
		// A set-id qmail-queue: the root and queue/ it checked, through
		// the descriptors it checked (or the error of queue/'s open).
		j.rootfd, j.qfd, err, j.borrowed = t.fd, t.qfd, t.qerr, true
	} else {
		// O_PATH: no read permission is needed, as for qmail's chdir
		// (a QMAILHOME of mode 0711 is usable). Search permission,
		// which chdir needs, is needed for the names below it (see the
		// "queue" open).
		j.rootfd, err = sysOpenat(unix.AT_FDCWD, j.c.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			j.rootfd = -1
			return j.fail(qq.ExitHome, pathErr("open", j.c.Root, err))
		}
		j.qfd, err = sysOpenat(j.rootfd, "queue", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		j.qfd = -1
		// The O_PATH open of the root needs no search permission on
		// it; qmail's chdir does. A root the process may not search is
		// trouble with the home directory (61), not with the queue:
		// looking up "." in it needs that permission.
		fd, derr := sysOpenat(j.rootfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if derr != nil {
			return j.fail(qq.ExitHome, pathErr("open", j.c.Root, derr))
		}
		unix.Close(fd)
		return j.fail(qq.ExitQueueDir, pathErr("open", "queue", err))
	}
	if code := j.createMess(); code != 0 {
		return code
	}
	if code := j.writeMess(); code != 0 {
		return code
	}
	if code := j.writeIntd(); code != 0 {
		return code
	}
	// Everything the todo/ link will name must be on disk first. Starting
	// write-back of both files before waiting lets one journal commit
	// carry both (the fsyncs then mostly wait for the same commit).
	unix.SyncFileRange(j.messfd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	unix.SyncFileRange(j.intdfd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	if code, err := j.syncAll(); err != nil {
		return j.fail(code, err)
	}
	if code := j.prepareCommit(); code != 0 {
		return code
	}
	todo := "todo/" + strconv.FormatUint(j.id, 10)
	// The link and its record under the guard's lock: a signal's cleanup
	// comes wholly before it (and the link is never made) or after it
	// (and takes nothing back).
	j.g.lock()
	if j.c.Gone != nil && j.c.Gone() {
		j.g.unlock()
		return qq.ExitRead // the caller has gone: nobody reads the code
	}
	err = sysLinkat(j.qfd, j.intd, j.qfd, todo, 0)
	if err == nil {
		// Committed: from here on nothing opens a descriptor.
		j.committed = true // see step 7: nothing is taken back
		if j.g != nil {
			j.g.hold = true
		}
	}
	j.g.unlock()
	if err != nil {
		return j.fail(qq.ExitTodo, &os.LinkError{Op: "link", Old: j.intd, New: todo, Err: err})
	}
	if afterCommit != nil {
		afterCommit()
	}
	err = j.syncTodo()
	j.trigger()
	if err != nil {
		return j.fail(qq.ExitWrite, err)
	}
	return 0
}

// prepareCommit opens, before the commit link, every descriptor the steps
// after it need: lock/trigger and the todo/ directory for its fsync (the
// job's own descriptor, also in the service). A failure here is still
// before the commit, so the job cleans up and a retry is safe. A trigger
// that cannot be opened for want of a descriptor fails the job too (else
// the message would wait for qmail-send's next scan of todo/); one with
// no reader (qmail-send not running) is left alone, as qmail does. todo/
// is opened last, right before the link is made by the same path.
func (j *job) prepareCommit() int {
	fd, err := sysOpenat(j.qfd, "lock/trigger", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		j.trigfd = fd
	case err == unix.EMFILE || err == unix.ENFILE:
		return j.fail(qq.ExitTodo, pathErr("open", "lock/trigger", err))
	}
	fd, err = openDir(j.qfd, "todo")
	if err != nil {
		return j.fail(qq.ExitTodo, err)
	}
	j.todofd = fd
	return 0
}

// syncTodo flushes todo/ after the commit link, through the descriptor
// prepareCommit opened. A file system that went read-only meanwhile (ext4
// after an error, errors=remount-ro) reports the fsync of a directory done
// without writing it, so the link may never reach the disk: that is no
// success, though the message may be queued (a retry can duplicate it).
func (j *job) syncTodo() error {
	if err := j.syncDir("todo", j.todofd); err != nil {
		return err
	}
	var sfs unix.Statfs_t
	if sysFstatfs(j.todofd, &sfs) == nil && sfs.Flags&unix.ST_RDONLY != 0 {
		return pathErr("fsync", "todo", unix.EROFS)
	}
	return nil
}

// createMess makes the message's inode under pid/ and links it into mess/.
//
// A mess/ name can already be taken by another file than the inode it
// names: in a queue copied or restored from elsewhere ids are no longer
// inode numbers. Such a pid/ file is kept, empty, holding its inode (a
// file system that hands out the lowest free inode would give it to
// every later message, and each would fail the same way until the old
// message left the queue), and the next pid/ name is tried. The same
// goes for an id whose intd/ID or todo/ID an earlier message left behind
// (a crash, a mess file removed by hand: see leftover); that is looked
// at before the mess/ link, so that qmail-send never finds the old
// todo/ID with this message's file. qmail-clean's cleanup of pid/
// removes the kept file after 36 hours.
//
// It runs under the guard's lock, and makes the job the guard's message
// in progress: the handler of a signal learns each name as it is made.
func (j *job) createMess() int {
	j.g.lock()
	defer j.g.unlock()
	if j.g != nil {
		j.g.job = j
	}
	tag := j.c.Tag
	if tag == "" {
		tag = strconv.Itoa(j.c.PID)
	}
	prefix := "pid/" + tag + "." + strconv.FormatInt(j.c.Now.Unix(), 10) + "."
	code := qq.ExitPid
	for seq := 1; seq <= 9; seq++ {
		name := prefix + strconv.Itoa(seq)
		fd, err := sysOpenat(j.qfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			if seq == 1 && err == unix.EACCES {
				// queue/ was opened O_PATH, which needs no search
				// permission on it; qmail's chdir does. A queue the
				// process may not search is trouble with the queue
				// directory (62), not with pid/.
				dfd, derr := sysOpenat(j.qfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if derr != nil {
					return j.fail(qq.ExitQueueDir, pathErr("open", "queue", derr))
				}
				unix.Close(dfd)
			}
			j.err = pathErr("open", name, err) // the last try's error stands
			continue
		}
		j.err = nil
		j.messfd, j.pidname = fd, name
		var st unix.Stat_t
		if err := unix.Fstat(j.messfd, &st); err != nil {
			return j.fail(qq.ExitPid, pathErr("stat", name, err))
		}
		j.id = st.Ino
		id := strconv.FormatUint(j.id, 10)
		if c, err := leftover(j.qfd, id); c != 0 {
			// An old intd/ID or todo/ID: keep the pid/ file and try
			// another, as for a taken mess/ name below.
			unix.Close(j.messfd)
			j.messfd, j.pidname, code, j.err = -1, "", c, err
			continue
		}
		j.split = strconv.FormatUint(j.id%qhome.Split, 10)
		mess := "mess/" + j.split + "/" + id
		if err := sysLinkat(j.qfd, j.pidname, j.qfd, mess, 0); err != nil {
			lerr := &os.LinkError{Op: "link", Old: j.pidname, New: mess, Err: err}
			if err != unix.EEXIST {
				return j.fail(qq.ExitMess, lerr)
			}
			// Another file has this id's name: keep the pid/ file
			// (its inode stays taken) and try another.
			unix.Close(j.messfd)
			j.messfd, j.pidname, code, j.err = -1, "", qq.ExitMess, lerr
			continue
		}
		j.mess = mess
		if err := sysUnlinkat(j.qfd, j.pidname, 0); err != nil {
			return j.fail(qq.ExitPid, pathErr("unlink", j.pidname, err))
		}
		j.pidname = ""
		j.intd = "intd/" + id
		return 0
	}
	return code
}

// leftover reports whether the id (a fresh inode) is unusable because
// an earlier message with that inode left intd/ID or todo/ID behind (a
// crash, or a mess file removed by hand): the exit code the message would
// have failed with (65 creating intd/ID, 66 linking todo/ID), with the
// error, or 0. A todo/ID left there must never meet a mess/S/ID of this
// message: qmail-send would take the old envelope for it. Only an entry
// that is there counts; a name that cannot be looked up (no such
// directory, no permission) is left for the step that makes it to report.
func leftover(qfd int, id string) (int, error) {
	var st unix.Stat_t
	for _, n := range [...]struct {
		name string
		code int
	}{{"intd/" + id, qq.ExitIntd}, {"todo/" + id, qq.ExitTodo}} {
		if sysFstatat(qfd, n.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			return n.code, pathErr("create", n.name, unix.EEXIST)
		}
	}
	return 0, nil
}

// writeAll writes p to fd, retrying short writes.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := sysWrite(fd, p)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}

func (j *job) writeMess() int {
	j.buf = append(j.buf[:0], "Received: (qmail "...)
	j.buf = strconv.AppendInt(j.buf, int64(j.c.PID), 10)
	j.buf = append(j.buf, " invoked "...)
	if j.c.Who != "" {
		j.buf = append(j.buf, j.c.Who...)
	} else {
		j.buf = append(j.buf, who(j.c.Root, j.c.UID)...)
	}
	j.buf = append(j.buf, "); "...)
	j.buf = append(j.buf, qdate.Header(j.c.Now)...)
	j.buf = append(j.buf, '\n')
	for {
		if len(j.buf) == cap(j.buf) {
			if err := writeAll(j.messfd, j.buf); err != nil {
				return j.fail(qq.ExitWrite, pathErr("write", j.mess, err))
			}
			j.buf = j.buf[:0]
		}
		n, err := j.c.Message.Read(j.buf[len(j.buf):cap(j.buf)])
		j.buf = j.buf[:len(j.buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errFrame) {
				return qq.ExitEnvelope
			}
			return qq.ExitRead
		}
	}
	if err := writeAll(j.messfd, j.buf); err != nil {
		return j.fail(qq.ExitWrite, pathErr("write", j.mess, err))
	}
	j.buf = j.buf[:0]
	return 0
}

var errWrite = errors.New("write error")

func (j *job) writeIntd() int {
	j.g.lock() // the name and its descriptor together (see sigGuard)
	fd, err := sysOpenat(j.qfd, j.intd, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err == nil {
		j.intdfd = fd
	}
	j.g.unlock()
	if err != nil {
		return j.fail(qq.ExitIntd, pathErr("open", j.intd, err))
	}
	b := j.buf[:0]
	b = append(b, 'u')
	b = strconv.AppendInt(b, int64(j.c.UID), 10)
	b = append(b, 0, 'p')
	b = strconv.AppendInt(b, int64(j.c.PID), 10)
	b = append(b, 0)
	j.buf = b
	br := byteReader(j.c.Envelope)
	err = qq.ReadEnvelope(br, func(kind byte, addr []byte) error {
		if len(j.buf)+len(addr)+2 > cap(j.buf) {
			if err := writeAll(j.intdfd, j.buf); err != nil {
				j.fail(0, pathErr("write", j.intd, err))
				return errWrite
			}
			j.buf = j.buf[:0]
		}
		j.buf = append(j.buf, kind)
		j.buf = append(j.buf, addr...)
		j.buf = append(j.buf, 0)
		return nil
	})
	if err != nil {
		if errors.Is(err, errWrite) {
			return qq.ExitWrite
		}
		return qq.ParseExit(err)
	}
	if err := writeAll(j.intdfd, j.buf); err != nil {
		return j.fail(qq.ExitWrite, pathErr("write", j.intd, err))
	}
	return 0
}

// byteReader reads the envelope in blocks without ever reading past its
// final NUL being a concern: qmail-queue owns fd 1 and nothing follows.
func byteReader(r io.Reader) io.ByteReader {
	if br, ok := r.(io.ByteReader); ok {
		return br
	}
	return &blockReader{r: r, b: make([]byte, 0, 4096)}
}

type blockReader struct {
	r   io.Reader
	b   []byte
	off int
	err error
}

func (b *blockReader) ReadByte() (byte, error) {
	for b.off >= len(b.b) {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.r.Read(b.b[:cap(b.b)])
		b.b = b.b[:n]
		b.off = 0
		if err != nil {
			b.err = err
		} else if n == 0 {
			b.err = io.ErrNoProgress
		}
	}
	c := b.b[b.off]
	b.off++
	return c, nil
}

// syncAll opens the mess/S and intd directories (kept open until the job
// ends) and flushes them and the mess and intd files. A single writer
// does all four at once: on a file system without a journal (or with
// slow flushes) their writes then overlap instead of queueing one behind
// the other. Each overlapped fsync costs a hand-off between threads,
// though, and the runtime's monitor thread polls while any of them
// waits; with many writers at once (qmail-smtpd's sessions, each with its
// own qmail-queue -m) the machine runs out of CPU before the disk runs
// out of requests, so Serial does them in turn. On ext4 with a journal
// the first fsync commits the others' changes too, and the next three
// return without waiting (docs/performance.md).
//
// The exit code goes with the error: a directory that cannot be opened
// is trouble with mess/ (64) or intd/ (65), as the steps that made the
// names in them say (a process short of descriptors, EMFILE, fails here
// at a limit of 12 or 13, and "write error or disk full" sent the admin
// to look at the disk); a flush that fails is a write error (53).
func (j *job) syncAll() (int, error) {
	split := "mess/" + j.split
	var err error
	if j.splitfd, err = openDir(j.qfd, split); err != nil {
		j.splitfd = -1
		return qq.ExitMess, err
	}
	if j.intddirfd, err = openDir(j.qfd, "intd"); err != nil {
		j.intddirfd = -1
		return qq.ExitIntd, err
	}
	fsyncFile := func(fd int, name string) func() error {
		return func() error {
			if err := sysFsync(fd); err != nil {
				return pathErr("fsync", name, err)
			}
			return nil
		}
	}
	steps := [4]func() error{
		fsyncFile(j.messfd, j.mess),
		fsyncFile(j.intdfd, j.intd),
		func() error { return j.syncDir(split, j.splitfd) },
		func() error { return j.syncDir("intd", j.intddirfd) },
	}
	if j.c.Serial {
		for _, f := range steps {
			if err := f(); err != nil {
				return qq.ExitWrite, err
			}
		}
		return 0, nil
	}
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	do := func(f func() error) {
		defer wg.Done()
		if err := f(); err != nil {
			first.CompareAndSwap(nil, &err)
		}
	}
	wg.Add(len(steps))
	for _, f := range steps[1:] {
		go do(f)
	}
	do(steps[0])
	wg.Wait()
	if p := first.Load(); p != nil {
		return qq.ExitWrite, *p
	}
	return 0, nil
}

// syncDir flushes the directory name, open on fd: the service's group
// commit (DirSync) or a plain fsync.
func (j *job) syncDir(name string, fd int) error {
	if j.c.DirSync != nil {
		return j.c.DirSync(name, fd)
	}
	if err := fsyncFD(fd); err != nil {
		return pathErr("fsync", name, err)
	}
	return nil
}

// openDir opens the directory name below the directory dirfd, for an
// fsync.
func openDir(dirfd int, name string) (int, error) {
	fd, err := sysOpenat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, pathErr("open", name, err)
	}
	return fd, nil
}

// fsyncFD fsyncs an open directory; a file system that cannot sync
// directories (EINVAL) counts as done.
func fsyncFD(fd int) error {
	err := sysFsync(fd)
	if err == unix.EINVAL {
		err = nil
	}
	return err
}

// trigger wakes qmail-send: one byte into lock/trigger, opened by
// prepareCommit; errors (no reader, a full FIFO) are ignored.
func (j *job) trigger() {
	if j.trigfd >= 0 {
		unix.Write(j.trigfd, []byte{0})
	}
}

// cleanup removes what a failed run made before the commit: intd/ID and
// mess/S/ID truncated then unlinked, and the pid/ name. With a guard it
// runs under its lock (from runJobResult, or from the signal handler).
func (j *job) cleanup() {
	if j.qfd < 0 || j.committed {
		return
	}
	if j.intdfd >= 0 {
		sysFtruncate(j.intdfd, 0)
		sysUnlinkat(j.qfd, j.intd, 0)
	}
	if j.messfd >= 0 {
		sysFtruncate(j.messfd, 0)
		if j.mess != "" {
			sysUnlinkat(j.qfd, j.mess, 0)
		}
		if j.pidname != "" {
			sysUnlinkat(j.qfd, j.pidname, 0)
		}
	}
}

func (j *job) close() {
	if j.borrowed {
		j.qfd, j.rootfd = -1, -1
	}
	for _, fd := range []int{j.trigfd, j.todofd, j.intddirfd, j.splitfd, j.intdfd, j.messfd, j.qfd, j.rootfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// who is the <who> of the Received line: "by alias", "from network" or
// "for bounce" when the caller's real uid is alias, qmaild or qmails of
// the tree (etc/ids), else "by uid N". In a shared tree (one user for every
// name) the names say nothing, so it is always "by uid N".
func who(root string, uid int) string {
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		ids = nil
	}
	return whoIDs(ids, uid)
}

// whoIDs is who with the tree's ids already read (nil: unreadable).
func whoIDs(ids *qhome.IDs, uid int) string {
	if ids != nil && !ids.Shared {
		switch uid {
		case ids.Alias.UID:
			return "by alias"
		case ids.Qmaild.UID:
			return "from network"
		case ids.Qmails.UID:
			return "for bounce"
		}
	}
	return "by uid " + unixid.Format(uid)
}

// Main is qmail-queue: the message on fd 0, the envelope on fd 1, the root
// from the executable's location only (run set-uid, only a
// tree its caller cannot have made: else 61, see setIDTree). It returns
// the exit code. A TERM, INT or HUP before the commit removes the message
// and kills the process with that signal; one after it is held back, and
// Main returns 0 (or the failed todo/ flush's 53) as if it had not come.
func Main() int {
	root := qhome.Root()
	t, code := setIDTree(root)
	if code != 0 {
		return code
	}
	g := &sigGuard{}
	catchSignals(g)
	c := &Config{
		Root:     root,
		Message:  os.NewFile(0, "message"),
		Envelope: os.NewFile(1, "envelope"),
		UID:      syscall.Getuid(),
		PID:      os.Getpid(),
		Now:      time.Now(),
		Alarm:    Alarm,
		guard:    g,
		tree:     t,
	}
	if t != nil {
		c.Who = whoIDs(t.ids, c.UID)
	}
	syscall.Umask(0o33)
	return Run(c)
}

// Path helpers for tests and tools.

// MessPath returns queue/mess/S/ID relative to the queue directory.
func MessPath(id uint64) string {
	return filepath.Join("mess", strconv.FormatUint(id%qhome.Split, 10), strconv.FormatUint(id, 10))
}
