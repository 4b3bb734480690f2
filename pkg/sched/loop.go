package sched

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// Timing constants (spec/scheduler.md §3).
const (
	sleepTodo    = 1500
	sleepForever = 86400
	sleepFuzz    = 1
	sleepCleanup = 76431
	sleepSysfail = 123
	ossified     = 129600
)

// Options connects a scheduler to its peers. cmd/qmail-send fills it from
// fds 0-6; tests use pipes.
type Options struct {
	Root     string    // QMAILHOME (absolute)
	Log      io.Writer // fd 0
	SpawnReq [2]io.Writer
	SpawnRep [2]io.Reader
	CleanReq io.Writer
	CleanRep io.Reader
	Signals  <-chan os.Signal // TERM, ALRM, HUP
	Trigger  bool             // watch queue/lock/trigger (and the request FIFO queue/lock/sendctl)
	Now      func() int64     // clock (seconds); nil means time.Now
	// Inject runs qmail-queue for a bounce; nil means pkg/qq.
	Inject func(msg io.Reader, sender string, recip []string) (int, error)
}

type evKind int

const (
	evReport evKind = iota
	evWrote
	evTrigger
	evSignal
	evCtl     // a qmailctl request line (control.go)
	evRemoved // a remover finished (remove.go)
)

type event struct {
	kind evKind
	c    int
	data []byte
	err  error
	sig  os.Signal

	removed *removed
}

// job is one message on one channel being worked on.
type job struct {
	used    bool
	refs    int
	id      uint64
	channel int
	retry   int64
	sender  string
	numtodo int
	hiteof  bool
	dying   bool
	skipped bool // records of held domains were left T
}

// delivery is one slot of a channel; its index is the spawner's slot
// (one byte, or two with a wide spawner).
type delivery struct {
	used  bool
	job   int
	delid uint64
	mpos  int64
	recip string
}

// pass is the channel file being read for a job.
type pass struct {
	open bool
	id   uint64
	job  int
	f    *os.File
	r    *bufio.Reader
	pos  int64
}

// Sched is qmail-send's state, owned by the loop goroutine.
type Sched struct {
	opt   Options
	root  string
	queue string
	ctl   *control.Dir
	cf    *config
	log   logger
	now   func() int64

	recent   int64
	exitasap bool
	// termed is set by TERM, helperLost by the loss of a spawner or of
	// qmail-clean; Run exits 111 when a helper was lost and no TERM came
	// (exitCode).
	termed     bool
	helperLost bool
	spawnAlive [2]bool
	cleanAlive bool
	// cleanGone is set once qmail-clean is known to be gone, whether a
	// remover finds it (its foop/ID fails) or the loop does (lostClean:
	// a todo/ID or a stale message's foop/ID fails): the removers then
	// unlink no more info files (the message would be left in mess/
	// with nothing to say it is done; a kept info/ID is finished at the
	// next start), as qmail stops at the first failed clean-up. A
	// remover already past its check when the loop finds qmail-clean
	// gone still unlinks its info file, as one does that finds it gone
	// itself; the loss is not known before.
	cleanGone atomic.Bool
	clean     *cleanPipe
	rq        *removeQueue
	inflight  map[uint64]int  // removals handed out, per message (remove.go)
	ended     map[uint64]bool // messages past "end msg" whose info removal is under way (remove.go)
	infoOut   int             // info removals handed out, not seen back (remove.go)
	// removalsStopped is set when the loop ends (stopRemovals): queued
	// channel-file removals are dropped and the done list is not worked.
	removalsStopped bool

	concurrency [2]int
	width       [2]int // slot field width of each spawner (spawnproto.Narrow or Wide)
	used        [2]int
	dels        [2][]delivery
	jobs        []job
	passes      [2]pass
	pending     [2]int // requests handed to the writer and not written yet (at most reqQueue)
	reqCh       [2]chan []byte
	decoders    [2]spawnproto.ReportDecoder
	stop        chan struct{}
	masterDelid uint64

	sched [2]prioq
	done  prioq
	fail  prioq

	events    chan event
	triggered bool
	flagHUP   bool
	flagALRM  bool

	todo        *os.File // open todo/ directory during a scan
	todoHalt    bool     // the scan must end: out of descriptors (todo.go)
	todoBackoff int64    // no scan before this, triggered or not (todo.go)
	noFilesErr  error    // the error that set todoHalt (todo.go)
	batchSize   int      // messages per preprocessing step (todo.go)
	// damagedTodo names, with the reason, the todo/IDs whose last
	// preprocessing failed for good (todo.go), so that qmailctl delete
	// removes them and bounce refuses them (control.go), and a scan
	// started by a trigger passes them over (only the periodic one reads
	// them again).
	damagedTodo map[uint64]string
	todoRescan  bool // the running scan of todo/ is the periodic one
	nextTodo    int64
	todoWait    int64 // the interval nextTodo was set with, from then (clockBack)
	cleanupNext int64
	cleanupWalk *messWalk

	holds *holdLog
	// stateRetry marks the state files (holdperiods, heldmsgs) whose
	// last write failed; they are written again at stateRetryAt
	// (state.go).
	stateRetry   [2]bool
	stateRetryAt int64
	mc           *msgCtl // per-message control (control.go)
	// fifos are lock/trigger and lock/sendctl once open (closed at exit,
	// which ends their readers); a missing or broken one is warned about
	// and opened again at each HUP.
	fifos      [2]*os.File
	generation int
	// started is the time this process began (nanoseconds), written
	// into sendstatus: a qmail-send restarted under the same pid (a
	// container's fixed start order) counts its generation from 0
	// again, and qmailctl tells the two apart by it.
	started int64
	// rereadFailed names the control files the last HUP could not read
	// (their old values stay in force); sendstatus reports them.
	rereadFailed []string
	// statusTrouble is why the last write of lock/sendstatus failed, as
	// logged ("" after a write that worked): said once, not at every
	// write that fails alike.
	statusTrouble string
	mutex         mutexWatch // the lock on queue/lock/sendmutex (mutex.go)
}

// Run is qmail-send: it returns the exit code.
func Run(opt Options) int {
	s := &Sched{opt: opt, root: opt.Root, log: logger{w: opt.Log}, started: time.Now().UnixNano()}
	s.now = opt.Now
	if s.now == nil {
		s.now = func() int64 { return time.Now().Unix() }
	}
	s.queue = filepath.Join(s.root, "queue")
	s.ctl = control.Open(s.root)
	if st, err := os.Stat(s.root); err != nil || !st.IsDir() {
		s.log.line("alert: cannot start: unable to switch to home directory")
		return 111
	}
	// The controls are read twice. This first read only checks them, so
	// that a bad file stops the start before the lock is touched (and is
	// reported as such, not as a qmail-send already running).
	if _, err := loadConfig(s.root); err != nil {
		s.log.line("alert: cannot start: ", controlsFailure(s.root, err))
		return 111
	}
	if st, err := os.Stat(s.queue); err != nil || !st.IsDir() {
		s.log.line("alert: cannot start: unable to switch to queue directory")
		return 111
	}
	controlsChecked()
	lock, code := s.takeMutex()
	if code != 0 {
		return code
	}
	s.mutex.f = lock
	if fi, err := lock.Stat(); err == nil { // sameFile has just done it
		s.mutex.info = fi
	}
	defer func() { s.mutex.f.Close() }()
	// The values in force are read now that the lock is held and the pid
	// written. Until then qmailctl finds no qmail-send running: a hold
	// flag it changes (a link hook at boot, while qmail starts) is only
	// on disk, and the start is what must honour it. A change made from
	// here on finds this qmail-send running and sends HUP, which waits in
	// opt.Signals (qmail-send's handler is installed before Run) until
	// the loop re-reads.
	cf, err := loadConfig(s.root)
	if err != nil {
		s.log.line("alert: cannot start: ", controlsFailure(s.root, err))
		return 111
	}
	s.cf = cf
	s.fitBatch()
	for c := 0; c < 2; c++ {
		// One byte (qmail's spawners), or NUL + two bytes (wide slots).
		limit, width, err := spawnproto.ReadAnnounce(opt.SpawnRep[c])
		if err != nil {
			s.log.line("alert: cannot start: hath the daemon spawn no fire?")
			return 111
		}
		s.width[c] = width
		s.decoders[c].Width = width
		s.concurrency[c] = min(cf.concurrency[c], limit)
		s.dels[c] = make([]delivery, s.concurrency[c])
		s.spawnAlive[c] = true
	}
	s.jobs = make([]job, s.concurrency[0]+s.concurrency[1])
	s.cleanAlive = true
	s.clean = &cleanPipe{req: opt.CleanReq, rep: opt.CleanRep}
	s.events = make(chan event, 64)
	s.stop = make(chan struct{})
	defer close(s.stop)
	s.startRemovers()
	for c := 0; c < 2; c++ {
		s.reqCh[c] = make(chan []byte, reqQueue)
		go s.readReports(c)
		go s.writeRequests(c)
	}
	s.recent = s.now()
	s.holds = loadHoldLog(s.queue)
	s.holds.lifetime = s.cf.lifetime
	s.holds.oldest = s.recent // lowered to each birth scanInfo finds
	if s.mc, err = loadMsgCtl(s.queue); err != nil {
		s.log.line("alert: cannot start: unable to read bounce/", HeldMsgsName, ": ", qerr.Bare(err).Error(),
			"; the messages held with qmailctl would be delivered (make it qmails' or run qmail-install -root ", safe(s.root), ")")
		return 111
	}
	s.scanInfo()
	s.pruneHeld()
	// sendstatus first: whoever sees the first status line (a harness, an
	// admin's script) finds this qmail-send's pid and flags there, not
	// the last one's.
	s.holds.startup(s, s.recent)
	s.writeStatus()
	s.status()
	s.logHeld()
	s.releaseAtStart()
	if opt.Trigger {
		s.openFIFOs()
		defer s.closeFIFOs()
	}
	if opt.Signals != nil {
		go func() {
			for sig := range opt.Signals {
				if !s.send(event{kind: evSignal, sig: sig}) {
					return
				}
			}
		}()
	}
	s.nextTodo, s.todoWait = s.recent, 0 // scan todo/ at once
	s.cleanupNext = s.recent
	s.loop()
	s.stateRetryAt = 0 // a last try of a failed state write
	s.retryState()
	s.writeBack()
	s.log.line("status: exiting")
	return s.exitCode()
}

// exitCode is Run's code once the loop has ended: 111 when it ended
// because a spawner or qmail-clean was lost (its alert line is in the
// log), so that a supervisor that restarts qmail on failure starts it
// again; 0 when it ended because TERM asked for the stop. A TERM received
// at any time before the exit counts, also after the loss: a stop was
// asked for, and a helper that dies during a stop (the same TERM sent to
// the whole process group, qmail-start's children killed with it) makes
// it no less the stop that was asked for; reporting a failure then would
// mark a stopped service failed. The loss is still logged. A TERM that
// reaches qmail-send only after the loss has ended its loop (nothing was
// left to wait for) is not seen, and the code stays 111.
func (s *Sched) exitCode() int {
	if s.helperLost && !s.termed {
		return 111
	}
	return 0
}

// takeMutex opens and locks lock/sendmutex and writes the pid into it.
// The lock counts only on the file the name still gives once it is held:
// a sendmutex replaced between the open and the lock (qmail-install's
// repair replaces a hard-linked one, holding its lock meanwhile) would
// otherwise leave this qmail-send locking a file no one else looks at,
// and the next start would run a second one on the same queue. So the
// name is opened again until the locked file is the one it names.
func (s *Sched) takeMutex() (*os.File, int) {
	name := filepath.Join(s.queue, "lock", "sendmutex")
	for try := 0; ; try++ {
		// Non-blocking, regular files only: a FIFO put there (no
		// reader) held the start in open(2) for ever, and with a
		// reader qmail-send ran locking a pipe (QA).
		f, err := openLockFile(name, os.O_WRONLY, 0)
		if err != nil {
			s.log.line("alert: cannot start: unable to open mutex")
			return nil, 111
		}
		if err := lockMutex(int(f.Fd())); err != nil {
			f.Close()
			s.log.line("alert: cannot start: qmail-send is already running")
			return nil, 111
		}
		mutexLocked()
		if sameFile(f, name) {
			rewrite(f, itoa(os.Getpid())+"\n")
			return f, 0
		}
		f.Close() // replaced meanwhile: lock the file the name gives now
		if try == 10 {
			s.log.line("alert: cannot start: queue/lock/sendmutex keeps being replaced")
			return nil, 111
		}
	}
}

// controlsChecked is called between the check of the controls and the
// lock (tests change a hold flag there, as qmailctl would while qmail-send
// starts).
var controlsChecked = func() {}

// mutexLocked is called between the lock and the check (tests replace
// the file there, as a repair racing the start would).
var mutexLocked = func() {}

// sameFile reports whether name still names the open file f.
func sameFile(f *os.File, name string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(name)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// lockMutex takes the exclusive lock on sendmutex. Whoever asks whether
// qmail-send runs (qmailctl, a monitor, flock -s -n) holds a shared lock
// for a moment, and at boot that happens while qmail starts: a refusal is
// retried for up to two seconds before it counts as another qmail-send.
func lockMutex(fd int) error {
	const step, tries = 20 * time.Millisecond, 100
	for i := 0; ; i++ {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EWOULDBLOCK || i == tries {
			return err
		}
		time.Sleep(step)
	}
}

// readReports forwards a spawner's report bytes to the loop.
func (s *Sched) readReports(c int) {
	for {
		buf := make([]byte, 4096)
		n, err := s.opt.SpawnRep[c].Read(buf)
		if n > 0 {
			if !s.send(event{kind: evReport, c: c, data: buf[:n]}) {
				return
			}
		}
		if err != nil {
			s.send(event{kind: evReport, c: c, err: err})
			return
		}
	}
}

// writeRequests writes each request completely, then tells the loop.
func (s *Sched) writeRequests(c int) {
	for {
		select {
		case req := <-s.reqCh[c]:
			_, err := s.opt.SpawnReq[c].Write(req)
			if !s.send(event{kind: evWrote, c: c, err: err}) {
				return
			}
		case <-s.stop:
			return
		}
	}
}

// fifoNames are the named pipes qmail-send reads, with what is lost
// while one cannot be read.
var fifoNames = [2]struct{ rel, lost string }{
	{"lock/trigger", "new mail waits for the scan of todo/ every 1500 seconds"},
	{ctlFIFO, "qmailctl requests go unanswered"},
}

// openFIFOs opens the named pipes not open yet and starts their readers;
// each that is missing or not a named pipe is logged (qmail-install
// repairs them). It runs at start and at each HUP.
func (s *Sched) openFIFOs() {
	for i, n := range fifoNames {
		if s.fifos[i] != nil {
			if samePipe(s.fifos[i], s.path(n.rel)) {
				continue
			}
			// Removed or replaced since it was opened (a repair by
			// qmail-install): writers open the new one, so read that;
			// closing the old one ends its reader.
			s.fifos[i].Close()
			s.fifos[i] = nil
		}
		f, err := openFIFO(s.path(n.rel))
		if err != nil {
			s.log.line("warning: unable to open ", n.rel, ": ", qerr.Bare(err).Error(), "; ", n.lost,
				" (qmail-install -root ", safe(s.root), " repairs it; then send HUP)")
			continue
		}
		s.fifos[i] = f
		if i == 0 {
			// Mail queued while there was no trigger to pull
			// (a repair, then HUP) waits no longer.
			s.nextTodo, s.todoWait = s.recent, 0
			go s.watchTrigger(f)
		} else {
			go s.watchCtl(f)
		}
	}
}

func (s *Sched) closeFIFOs() {
	for _, f := range s.fifos {
		if f != nil {
			f.Close()
		}
	}
}

// samePipe reports whether path still names the pipe f has open.
func samePipe(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// openFIFO opens a named pipe read-write, so that it never reports EOF (a
// reader with no writer would otherwise be readable for ever), and
// non-blocking; a writer's non-blocking open for writing then succeeds as
// long as qmail-send runs. Anything but a named pipe is refused: a
// regular file would read as end of file at once.
func openFIFO(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		f.Close()
		if err == nil {
			err = errors.New("not a named pipe")
		}
		return nil, err
	}
	return f, nil
}

// watchTrigger signals the loop when lock/trigger becomes readable.
func (s *Sched) watchTrigger(f *os.File) {
	buf := make([]byte, 64)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
		if !s.send(event{kind: evTrigger}) {
			return
		}
	}
}

// send hands an event to the loop; false once the loop has ended.
func (s *Sched) send(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.stop:
		return false
	}
}

// reqQueue is the number of requests a channel's writer may hold, not
// yet written to the spawner. qmail keeps one (its buffer must be empty
// before the next delivery starts), and starts at most one delivery per
// channel per iteration; passStep now makes as many rounds as the
// iteration preprocessed messages (pass.go), and each round may start a
// delivery on each channel while the writer still writes the ones before.
// A free delivery slot is needed as before, so the requests waiting for
// a spawner that does not read are no more than its slots, nor than this.
const reqQueue = batchMax

// canStart reports whether a delivery could start on channel c now.
func (s *Sched) canStart(c int) bool {
	return s.spawnAlive[c] && s.pending[c] < reqQueue && s.used[c] < s.concurrency[c]
}

func (s *Sched) jobAvail() bool {
	for i := range s.jobs {
		if !s.jobs[i].used {
			return true
		}
	}
	return false
}

// wakeup computes when the loop must next run (spec/scheduler.md §3).
func (s *Sched) wakeup() int64 {
	w := s.recent + sleepForever
	if !s.exitasap {
		avail := s.jobAvail()
		for c := 0; c < 2; c++ {
			if s.cf.hold.held(c) {
				continue
			}
			if s.passes[c].open {
				if s.canStart(c) {
					w = 0
				}
			} else if avail {
				if e, ok := s.sched[c].min(); ok {
					w = min(w, e.due)
				}
			}
		}
		if e, ok := s.fail.min(); ok {
			w = min(w, e.due)
		}
		if e, ok := s.done.min(); ok && s.doneOpen() {
			w = min(w, e.due) // else the end of a removal wakes the loop
		}
		if t := s.stateWake(); t != 0 {
			w = min(w, t)
		}
		if s.todo != nil || s.triggered {
			w = 0
		} else {
			w = min(w, s.nextTodo)
		}
	}
	if s.cleanupWalk != nil {
		w = 0
	} else {
		w = min(w, s.cleanupNext)
	}
	return w
}

// canExit reports whether no delivery runs on a live channel.
func (s *Sched) canExit() bool {
	for c := 0; c < 2; c++ {
		if s.spawnAlive[c] && s.used[c] > 0 {
			return false
		}
	}
	return true
}

// loop runs until TERM (or the loss of a helper) has come and no delivery
// runs on a live channel; then the channel-file removals no remover has
// begun are dropped and only those under way are waited for (stopRemovals,
// remove.go).
func (s *Sched) loop() {
	for !s.exitasap || !s.canExit() || s.stopRemovals() {
		s.recent = s.now()
		s.clockBack()
		if s.flagALRM {
			s.flagALRM = false
			s.handleALRM()
		}
		if s.flagHUP {
			s.flagHUP = false
			s.handleHUP()
		}
		w := s.wakeup()
		if w <= s.recent {
			s.drain(0)
		} else {
			s.drain(time.Duration(w-s.recent+sleepFuzz) * time.Second)
		}
		if s.flagALRM || s.flagHUP {
			// As qmail's select interrupted by a signal: nothing else
			// this iteration, so that a hold asked for together with
			// work that became due (a resume from suspend, its
			// network hook holding at once) is applied first.
			continue
		}
		s.recent = s.now()
		s.clockBack()
		s.checkMutex()
		// As many pass rounds as messages preprocessed (at least one):
		// qmail's loop does one todo message and one pass step per
		// iteration, and a batch of preprocessing must not starve the
		// deliveries it schedules (docs/performance.md).
		s.passStep(s.todoStep())
		s.cleanupStep()
		s.retryState()
	}
}

// clockBack pulls each of the loop's own waits back to at most its
// interval from now. They are times on the clock (now plus the interval
// when set), so after the clock went back (NTP stepping it, a virtual
// machine's clock set right after a resume) one lies further ahead than
// its interval and held its work back until the clock caught up: a day
// for a step of a day, in which, after a run out of descriptors, every
// trigger was ignored (todoBackoff) and no new message preprocessed. So
// the backoff of preprocessing and the retry of a failed state write
// (sleepSysfail), the next scan of todo/ (todoWait: sleepTodo, or
// sleepSysfail after a system failure) and the next walk of the cleanup
// (sleepCleanup) come at most their interval after the step. The
// schedules of messages (the prioqs: retries of deliveries, and of a
// message's files after a system failure) are left as qmail has them.
func (s *Sched) clockBack() {
	s.todoBackoff = min(s.todoBackoff, s.recent+sleepSysfail)
	s.nextTodo = min(s.nextTodo, s.recent+s.todoWait)
	s.stateRetryAt = min(s.stateRetryAt, s.recent+sleepSysfail)
	s.cleanupNext = min(s.cleanupNext, s.recent+sleepCleanup)
}

// testHookWait, when set (tests only), is called with true just before
// the loop blocks waiting for an event and with false once it woke: a
// test that must change the clock only while the loop waits reads it.
var testHookWait func(waiting bool)

// drain waits up to d for one event (not at all when d is 0), then handles
// every event already queued.
func (s *Sched) drain(d time.Duration) {
	if d > 0 {
		t := time.NewTimer(d)
		if testHookWait != nil {
			testHookWait(true)
			defer testHookWait(false)
		}
		select {
		case ev := <-s.events:
			t.Stop()
			s.handle(ev)
		case <-t.C:
			// Whatever came at the same moment (a signal) is
			// handled too, before the work the timer was for.
		}
	}
	for i := 0; i < 256; i++ {
		select {
		case ev := <-s.events:
			s.handle(ev)
		default:
			return
		}
	}
}

func (s *Sched) handle(ev event) {
	switch ev.kind {
	case evReport:
		if ev.err != nil {
			s.spawnDied(ev.c)
			return
		}
		if s.spawnAlive[ev.c] {
			s.decoders[ev.c].Feed(ev.data, func(r spawnproto.Report) { s.report(ev.c, r) })
		}
	case evWrote:
		s.pending[ev.c]--
		if ev.err != nil {
			s.spawnDied(ev.c)
		}
	case evTrigger:
		if !s.exitasap {
			s.triggered = true
		}
	case evCtl:
		s.control(ev)
	case evRemoved:
		s.removedEvent(ev.removed)
	case evSignal:
		switch ev.sig {
		case syscall.SIGTERM:
			s.termed = true
			if !s.exitasap {
				s.exitasap = true
				s.writeStatus() // qmailctl status says so
			}
		case syscall.SIGALRM:
			s.flagALRM = true
		case syscall.SIGHUP:
			s.flagHUP = true
		}
	}
}

func (s *Sched) spawnDied(c int) {
	if !s.spawnAlive[c] {
		return
	}
	s.log.line("alert: oh no! lost spawn connection! dying...")
	s.spawnAlive[c] = false
	s.helperLost = true
	s.exitasap = true
}

// status logs the status line.
func (s *Sched) status() {
	x := ""
	if s.exitasap {
		x = " exitasap"
	}
	s.log.line("status: local ", itoa(s.used[0]), "/", itoa(s.concurrency[0]),
		" remote ", itoa(s.used[1]), "/", itoa(s.concurrency[1]), x)
}

// cleanRequest asks qmail-clean to remove todo/ID or the message
// (foop/ID); it reports whether the answer was '+'.
func (s *Sched) cleanRequest(kind string, id uint64) bool {
	name := kind + "/" + utoa(id)
	if !s.cleanAlive {
		return false
	}
	a, err := s.clean.call(name)
	if err != nil {
		s.lostClean()
		return false
	}
	if a != '+' {
		s.log.line("warning: qmail-clean unable to clean up ", name)
		return false
	}
	return true
}

// lostClean gives up on a qmail-clean that no longer answers.
func (s *Sched) lostClean() {
	if !s.cleanAlive {
		return
	}
	s.log.line("alert: oh no! lost qmail-clean connection! dying...")
	s.cleanAlive = false
	s.cleanGone.Store(true) // the removers keep info files from now on
	s.helperLost = true
	s.exitasap = true
}
