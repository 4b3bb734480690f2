// Package start is qmail-start (spec/README.md "Process tree"): it starts
// the optional logger, qmail-lspawn, qmail-rspawn, qmail-clean and
// qmail-send, wired by six pipes and qmail-send's readiness pipe, each
// under its own ids when run as root.
//
// qmail's qmail-start forks the daemons and then becomes qmail-send by
// exec after dropping to qmails. A Go program cannot safely change its own
// ids once it runs (other threads keep the old ones), so qmail-start
// starts qmail-send as a child too, with exec credentials, and stays as a
// small root parent: it forwards TERM, HUP and ALRM to qmail-send, exits
// with qmail-send's exit code once qmail-send and the other children have
// ended (waiting at most DefaultGrace for the others), and does nothing
// else. qmail-send's pid is in queue/lock/sendmutex
// for anyone who wants to signal it directly.
//
// A signal is forwarded only once qmail-send catches it: until then the
// default action of HUP or TERM would kill it (and ALRM would be lost).
// qmail-send closes its descriptor 7, the write end of a pipe only it
// holds, right after its signal handlers are in place (sched.SignalsReady);
// until qmail-start reads end of file there, the signals it gets are held,
// each kind once, and then forwarded in the order they first came
// (forward). End of file also comes when qmail-send exits before that;
// a qmail-send that never closes it (one older than the pipe) is taken as
// ready after readyWait.
//
// Descriptors above 2 that qmail-start inherits are closed at its start
// (fds.go): it runs as long as qmail does, and would keep a caller's pipe
// open all that time.
//
// Descriptors of qmail-send: 0 log (write), 1/2 lspawn requests/reports,
// 3/4 rspawn requests/reports, 5/6 clean requests/replies, 7 the
// readiness pipe (write; qmail-send closes it). Each spawner
// and qmail-clean gets its request pipe as fd 0, its report pipe as fd 1
// and as fd 2 a pipe of its own that qmail-start copies into the log
// (helperLog). The logger reads fd 0 and shares qmail-start's fds 1 and 2.
//
// Run by root, a shared tree (installed by an ordinary user) runs entirely
// as its owner (etc/ids), never as root.
//
// control/startheld (hqmail addition): when it exists, qmail-start holds
// remote delivery before qmail-send starts as qmailctl boot does (an
// empty startheld holds all remote mail, over whatever holdremote held),
// so a host that boots offline never dials; not when a network hook has
// released it since the machine booted, nor when a qmail-send already
// runs on the tree (startHeldIfStopped).
//
// As process 1 of a PID namespace (a container's entrypoint) qmail-start
// runs itself again as a child and only forwards signals and reaps
// (init.go).
package start

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/ancestors"
	"github.com/hqmail/hqmail/pkg/ctl"
	"github.com/hqmail/hqmail/pkg/nofile"
	"github.com/hqmail/hqmail/pkg/privsep"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/queue"
	"github.com/hqmail/hqmail/pkg/sendlock"
	"github.com/hqmail/hqmail/pkg/sigcatch"
	"github.com/hqmail/hqmail/pkg/spawn"
	"golang.org/x/sys/unix"
)

// DefaultDelivery is used when qmail-start gets no arguments.
const DefaultDelivery = "./Mailbox"

// Options configure one start.
type Options struct {
	Root            string
	DefaultDelivery string
	Logger          []string // logger program and arguments; nil: none
	IDs             *qhome.IDs
	// Switch: start each program under its own ids (root, tree not shared).
	Switch bool
	// Owner, when not nil, is the one set of ids every program runs under
	// (root starting a shared tree: the tree's owner, never root).
	Owner  *privsep.Cred
	Stdout *os.File // log fd when there is no logger; logger's fd 1
	Stderr *os.File // logger's fd 2 and qmail-start's own complaints
	// Signals delivers the signals to forward to qmail-send; nil: none.
	Signals <-chan os.Signal
	// Grace bounds the wait for the other programs once qmail-send has
	// exited (0: DefaultGrace).
	Grace time.Duration
}

// DefaultGrace is how long qmail-start waits for the spawners, qmail-clean
// and the logger after qmail-send has exited.
const DefaultGrace = 10 * time.Second

// Creds returns the credentials of each program, nil everywhere when not
// switching. Keys: logger, qmail-lspawn, qmail-rspawn, qmail-clean,
// qmail-send.
func Creds(ids *qhome.IDs, sw bool, rgroups []int) map[string]*privsep.Cred {
	if !sw {
		return map[string]*privsep.Cred{}
	}
	return map[string]*privsep.Cred{
		"logger":       privsep.Exactly(ids.Qmaill.UID, ids.Nofiles),
		"qmail-lspawn": privsep.Exactly(0, ids.Qmail),
		"qmail-rspawn": {UID: ids.Qmailr.UID, GID: ids.Qmail, Groups: privsep.WithGroup(ids.Qmail, rgroups)},
		"qmail-clean":  privsep.Exactly(ids.Qmailq.UID, ids.Qmail),
		"qmail-queued": privsep.Exactly(ids.Qmailq.UID, ids.Qmail),
		"qmail-send":   privsep.Exactly(ids.Qmails.UID, ids.Qmail),
	}
}

// StartHeld applies control/startheld: remote delivery held as
// startheld says (everything when it is empty or lists no domain),
// unless a network hook has released it since the machine booted; a
// missing holdremote is created with startheld's contents, an existing
// one gets "*" above its domains (or startheld's domains added). It is
// qmailctl boot's hold (ctl.StartHeld), made under the control
// directory's lock the network hooks take, so that a hook's release is
// never undone. It reports whether holdremote holds more than before.
func StartHeld(root string) (bool, error) {
	return ctl.StartHeld(root)
}

// closer collects files the parent must close.
type closer []*os.File

func (c *closer) add(f ...*os.File) { *c = append(*c, f...) }
func (c closer) close() {
	for _, f := range c {
		if f != nil {
			f.Close()
		}
	}
}

// Run starts everything and waits. It returns qmail-start's exit code.
func Run(o Options) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(o.Stderr, "qmail-start: fatal: "+format+"\n", a...)
		return 111
	}
	var rgroups []int
	if o.Switch {
		rgroups = privsep.UserGroups(o.IDs.Qmailr.UID)
	}
	creds := Creds(o.IDs, o.Switch, rgroups)
	if o.Owner != nil {
		for _, name := range []string{"logger", "qmail-lspawn", "qmail-rspawn", "qmail-clean", "qmail-queued", "qmail-send"} {
			creds[name] = o.Owner
		}
	}
	var parent closer // our copies of the children's ends
	defer func() { parent.close() }()

	var children []chan struct{} // closed as each has ended: the logger
	// sendDone is closed once qmail-send has ended: the logger's end of
	// file after it is its normal end.
	sendDone := make(chan struct{})
	logFd := o.Stdout
	// stopping is closed when qmail-start gets TERM (forward): a TERM
	// sent to the whole process group ends the logger and qmail-queued
	// too, and that is no end of their own to warn about.
	stopping := make(chan struct{})
	if len(o.Logger) > 0 {
		path, err := exec.LookPath(o.Logger[0])
		if err != nil {
			return fail("unable to find logger %s: %v", o.Logger[0], err)
		}
		lr, lw, err := os.Pipe()
		if err != nil {
			return fail("unable to create pipe: %v", err)
		}
		parent.add(lr, lw)
		cmd := &exec.Cmd{Path: path, Args: o.Logger, Dir: "/",
			Stdin: lr, Stdout: o.Stdout, Stderr: o.Stderr}
		privsep.Apply(cmd, creds["logger"])
		if err := cmd.Start(); err != nil {
			return fail("unable to start logger %s: %s", o.Logger[0], startError(err, creds["logger"]))
		}
		done := make(chan struct{})
		children = append(children, done)
		go func(name string) {
			defer close(done)
			cmd.Wait()
			select {
			case <-sendDone:
				return // end of file: qmail-send has ended
			case <-time.After(time.Second):
				// qmail-send's end may be seen a moment after
				// the end of file it caused.
			}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				select {
				case <-stopping:
					return // a stop: TERM to the whole process group
				default:
					// A TERM to the logger alone (qmail-start
					// had none in the second waited above):
					// the log is lost as after a kill.
				}
			}
			// qmail-send goes on delivering, and every log line of
			// it is lost from here on (EPIPE): say so where
			// someone may look, once.
			fmt.Fprintf(o.Stderr, "qmail-start: alert: the logger %s ended (%s) while qmail-send runs: its log lines are lost until qmail-start is started again\n",
				name, endedHow(cmd.ProcessState))
		}(o.Logger[0])
		logFd = lw
	}

	// req[i]: qmail-send writes, helper i reads; rep[i]: the reverse.
	var req, rep [3][2]*os.File
	for i := 0; i < 3; i++ {
		for _, p := range []*[2]*os.File{&req[i], &rep[i]} {
			r, w, err := os.Pipe()
			if err != nil {
				return fail("unable to create pipe: %v", err)
			}
			parent.add(r, w)
			p[0], p[1] = r, w
		}
	}
	bin := filepath.Join(o.Root, "bin")
	helpers := []struct {
		name string
		args []string
	}{
		{"qmail-lspawn", []string{o.DefaultDelivery}},
		{"qmail-rspawn", nil},
		{"qmail-clean", nil},
	}
	// A helper's descriptor 2 is a pipe of its own, copied into the log
	// (helperLog). The helpers write nothing there in normal operation
	// (their deliveries get descriptors of their own), but the trace of
	// a Go crash or fatal error ("failed to create new OS thread") lands
	// in the mail log next to qmail-send's "lost spawn connection" rather
	// than nowhere. Each helper is reaped as it ends, and an abnormal end
	// reported once its last words are in the log.
	var helpersDone []chan struct{}
	for i, h := range helpers {
		errw, copied, err := helperLog(h.name, logFd)
		if err != nil {
			return fail("unable to make the log pipe of %s: %v", h.name, err)
		}
		cmd := &exec.Cmd{Path: filepath.Join(bin, h.name), Args: append([]string{h.name}, h.args...),
			Dir: "/", Stdin: req[i][0], Stdout: rep[i][1], Stderr: errw}
		privsep.Apply(cmd, creds[h.name])
		err = cmd.Start()
		if errw != nil {
			errw.Close() // only the helper holds it now: end of file once it has gone
		}
		if err != nil {
			return fail("unable to start %s: %s", h.name, startError(err, creds[h.name]))
		}
		// Its ends are its own now: closed here at once, so that the
		// descriptors held at qmail-send's start stay few (a low
		// ulimit -n).
		req[i][0].Close()
		rep[i][1].Close()
		done := make(chan struct{})
		helpersDone = append(helpersDone, done)
		go func(name string) {
			defer close(done)
			cmd.Wait()
			<-copied
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				// A stop: TERM to the whole process group reaches the
				// helpers too; qmail-send says if it lost one.
				return
			}
			alertExit(o.Stderr, name, cmd.ProcessState)
		}(h.name)
	}
	// qmail-queued, the queue service, runs while qmail-send does: its fd 0
	// is a pipe whose write end only we hold, closed once qmail-send has
	// ended. If it dies before that, it is started again after a second
	// (callers run qmail-queue meanwhile). A tree without the program
	// (installed before it existed) runs without it, as qmail does.
	var queuedStop *os.File
	var queuedStopped, queuedDone chan struct{}
	if qd := filepath.Join(bin, "qmail-queued"); fileExists(qd) {
		sr, sw, err := os.Pipe()
		if err != nil {
			return fail("unable to create pipe: %v", err)
		}
		startQueued := func() (*exec.Cmd, error) {
			cmd := &exec.Cmd{Path: qd, Args: []string{"qmail-queued"}, Dir: "/",
				Stdin: sr, Stderr: o.Stderr} // nil Stdout: /dev/null
			privsep.Apply(cmd, creds["qmail-queued"])
			return cmd, cmd.Start()
		}
		cmd, err := startQueued()
		if err != nil {
			// The service is never needed for mail to be queued
			// (callers run qmail-queue without it): the mail system
			// starts without it, and says so.
			sr.Close()
			sw.Close()
			fmt.Fprintf(o.Stderr, "qmail-start: warning: unable to start qmail-queued: %s; running without it (callers run qmail-queue)\n",
				startError(err, creds["qmail-queued"]))
		} else {
			queuedStop = sw
			queuedStopped = make(chan struct{})
			queuedDone = make(chan struct{})
			go superviseQueued(cmd, startQueued, sr, queuedStopped, stopping, queuedDone, o.Stderr)
		}
	}
	// readyR sees end of file once qmail-send has closed its fd 7 (the
	// fifth of ExtraFiles; sched.ReadyFd), that is, catches the signals
	// forwarded to it (or has exited).
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fail("unable to create pipe: %v", err)
	}
	defer readyR.Close()
	parent.add(readyW)
	send := &exec.Cmd{Path: filepath.Join(bin, "qmail-send"), Args: []string{"qmail-send"}, Dir: "/",
		Stdin: logFd, Stdout: req[0][1], Stderr: rep[0][0],
		ExtraFiles: []*os.File{req[1][1], rep[1][0], req[2][1], rep[2][0], readyW}}
	privsep.Apply(send, creds["qmail-send"])
	// qmail-start stays qmail-send's parent (qmail's execs into it): a
	// supervisor's signals reach qmail-send through it, and so must its
	// end. Killed outright (daemontools' svc -k, the OOM killer), it
	// would leave qmail-send running with nothing to stop it, and every
	// restart would fail beside it while holds sent through the
	// supervisor went nowhere. The kernel sends qmail-send TERM then (a
	// stop: running deliveries finish). The signal comes when the thread
	// that started the child ends, so this goroutine keeps its thread
	// until qmail-send has gone.
	if send.SysProcAttr == nil {
		send.SysProcAttr = &syscall.SysProcAttr{}
	}
	send.SysProcAttr.Pdeathsig = syscall.SIGTERM
	runtime.LockOSThread()
	if err := send.Start(); err != nil {
		return fail("unable to start qmail-send: %s", startError(err, creds["qmail-send"]))
	}
	// From here on only the children hold pipe ends: each sees end of file
	// when its peer exits.
	parent.close()
	parent = nil

	sendReady := make(chan struct{})
	go func() {
		// Nothing is written there: any return is end of file, or a
		// pipe that no longer tells anything.
		readEOF := make(chan struct{})
		go func() { readyR.Read(make([]byte, 1)); close(readEOF) }()
		// A qmail-send older than the pipe never closes it: after
		// readyWait it is taken as ready, so that held signals (a
		// release's HUP) are not held for its whole life.
		t := time.NewTimer(readyWait)
		defer t.Stop()
		select {
		case <-readEOF:
		case <-t.C:
			fmt.Fprintf(o.Stderr, "qmail-start: warning: qmail-send has not said it catches signals after %v "+
				"(an older qmail-send, which does not close descriptor 7?); forwarding them from now on\n", readyWait)
		}
		close(sendReady)
	}()
	go func() { send.Wait(); close(sendDone) }()
	forward(o.Signals, send.Process, sendReady, sendDone, stopping)
	alertExit(o.Stderr, "qmail-send", send.ProcessState)
	if queuedStop != nil {
		close(queuedStopped) // before the pipe: no restart from here on
		queuedStop.Close()
	}

	// qmail-send has ended; its pipes are closed, so the spawners finish
	// their running deliveries and exit, qmail-clean and the logger see
	// end of file. Wait for them a little, unless told to stop again; a
	// delivery that takes longer finishes after we are gone (as in qmail,
	// where the spawners outlive qmail-send), so a supervisor sees the
	// exit promptly.
	allDone := make(chan struct{})
	go func() {
		for _, d := range children {
			<-d
		}
		for _, d := range helpersDone {
			<-d
		}
		if queuedDone != nil {
			<-queuedDone
		}
		close(allDone)
	}()
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	select {
	case <-allDone:
	case <-o.Signals:
	case <-time.After(grace):
	}
	ws, _ := send.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 111
	}
	return ws.ExitStatus()
}

// startError is the text of err, a failure to start a program under cred,
// with the reason when it is a user namespace that does not map cred's
// ids (the kernel's EPERM or EINVAL says nothing of that).
func startError(err error, cred *privsep.Cred) string {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
		if why := privsep.Unmapped(cred); why != "" {
			return err.Error() + ": " + why
		}
	}
	return err.Error()
}

// maxHelperLine bounds a line copied by helperLog; a longer one is cut
// into pieces, each a line of the log. With the name in front, a line
// stays below PIPE_BUF, so that it reaches a logger's pipe in one piece
// among qmail-send's lines.
const maxHelperLine = 1024

// helperLog makes the pipe a helper gets as its standard error. What the
// helper writes there is copied into log line by line, each line written
// whole and prefixed with the name ("qmail-rspawn: fatal error: ..."),
// until every holder of the write end has closed it; then copied is
// closed. The copy goes through a descriptor of its own (a duplicate of
// log's), so that the logger sees end of file once qmail-send and the
// helpers have gone, and qmail-start's standard output (when it is the
// log) is not held open after qmail-start exits by a spawner still
// finishing a delivery; what such a spawner writes after that is lost.
// With no log (nil) the helper gets /dev/null: w is nil.
func helperLog(name string, log *os.File) (w *os.File, copied <-chan struct{}, err error) {
	done := make(chan struct{})
	if log == nil {
		close(done)
		return nil, done, nil
	}
	fd, err := unix.FcntlInt(log.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	out := os.NewFile(uintptr(fd), "log")
	r, w, err := os.Pipe()
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	go func() {
		defer close(done)
		defer out.Close()
		defer r.Close()
		br := bufio.NewReaderSize(r, maxHelperLine)
		var line []byte
		for {
			b, err := br.ReadSlice('\n')
			if len(b) > 0 {
				line = append(append(append(line[:0], name...), ": "...), b...)
				if line[len(line)-1] != '\n' {
					line = append(line, '\n')
				}
				out.Write(line) // as qmail-send, a log that fails is not our concern
			}
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
		}
	}()
	return w, done, nil
}

// endedHow says how a process ended: "exit status N" or "killed by
// signal N (NAME)".
func endedHow(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %d (%v)", ws.Signal(), ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

// alertExit writes qmail-start's alert line for a program that ended
// abnormally: killed by a signal, or an exit status other than 0 (qmail-send
// after TERM; a helper at end of file) and 111 (qmail-send giving up, with
// alert lines of its own; a helper in trouble, after which qmail-send
// says it lost it). Anything else, above all a Go crash's 2, would leave
// the log ending mid-stream without a word.
func alertExit(w io.Writer, name string, ps *os.ProcessState) {
	if ps == nil {
		return
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return
	}
	switch {
	case ws.Signaled():
		fmt.Fprintf(w, "qmail-start: alert: %s was killed by signal %d (%v)\n", name, ws.Signal(), ws.Signal())
	case ws.ExitStatus() != 0 && ws.ExitStatus() != 111:
		fmt.Fprintf(w, "qmail-start: alert: %s exited with status %d (2: it crashed; the trace is in its log)\n", name, ws.ExitStatus())
	}
}

// superviseQueued waits for qmail-queued and starts it again, a second
// later, when it was killed by a signal or crashed (exit 2, a Go panic)
// before stopped is closed; an exit of its own (0: another service holds
// the tree; 111: no socket) is left alone. It closes stdin (the read end
// of the stop pipe, shared by every instance) and done at the end.
func superviseQueued(cmd *exec.Cmd, start func() (*exec.Cmd, error), stdin *os.File,
	stopped, stopping <-chan struct{}, done chan<- struct{}, stderr *os.File) {
	defer close(done)
	defer stdin.Close()
	// The pause before a restart doubles with each crash that comes
	// soon after the last start (a process limit kills the runtime at
	// once, and a restart a second would fill the log with its traces),
	// up to queuedMaxPause; a run of a minute or more starts it afresh.
	pause := time.Second
	started := time.Now()
	for {
		cmd.Wait()
		if time.Since(started) >= time.Minute {
			pause = time.Second
		}
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() && ws.ExitStatus() != 2 {
			// An exit of its own while qmail-send runs: another service
			// holds the tree, it was stopped on its own (TERM), or it
			// gave up (111). Not started again; said, unless the TERM
			// was a stop of everything (the group's TERM reaches
			// qmail-start a moment before or after).
			select {
			case <-stopped:
			case <-stopping:
			case <-time.After(time.Second):
				fmt.Fprintf(stderr, "qmail-start: warning: qmail-queued exited with status %d; not started again (callers run qmail-queue)\n", ws.ExitStatus())
			}
			return
		}
		select {
		case <-stopped:
			return // a signal of the stop itself
		default:
		}
		// Said, so that a service that keeps dying is seen; callers run
		// qmail-queue meanwhile.
		again := "starting it again"
		if pause > time.Second {
			again = fmt.Sprintf("starting it again in %v", pause)
		}
		if ws.Signaled() {
			fmt.Fprintf(stderr, "qmail-start: alert: qmail-queued was killed by signal %d (%v); %s\n", ws.Signal(), ws.Signal(), again)
		} else {
			fmt.Fprintf(stderr, "qmail-start: alert: qmail-queued exited with status 2 (it crashed); %s\n", again)
		}
		select {
		case <-stopped:
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, queuedMaxPause)
		select {
		case <-stopped:
			return
		default:
		}
		c, err := start()
		if err != nil {
			fmt.Fprintf(stderr, "qmail-start: warning: unable to restart qmail-queued: %v\n", err)
			return
		}
		cmd, started = c, time.Now()
	}
}

// queuedMaxPause bounds the pause before qmail-queued is started again
// after crashes in a row (callers run qmail-queue meanwhile).
const queuedMaxPause = 5 * time.Minute

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readyWait bounds how long signals are held for a qmail-send that has
// not said it catches them (an older one, which knows nothing of fd 7).
// A current qmail-send says so within milliseconds of its start.
var readyWait = 30 * time.Second // the tests' child processes shorten it

// forward passes signals to p until done is closed; the first TERM also
// closes stopping, when it comes. Before ready is closed (p does not
// catch them yet) signals are held: each kind once, however often it
// came (one HUP means what ten do), and passed on in the order each kind
// first came once ready is closed. A TERM held is forwarded then, so an
// early stop still stops qmail-send, through its own exit.
func forward(sigs <-chan os.Signal, p *os.Process, ready, done <-chan struct{}, stopping chan<- struct{}) {
	var held []os.Signal
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM && stopping != nil {
				close(stopping)
				stopping = nil
			}
			if ready != nil {
				if !slices.Contains(held, s) {
					held = append(held, s)
				}
				continue
			}
			p.Signal(s)
		case <-ready:
			ready = nil // a nil channel: this case is done
			for _, s := range held {
				p.Signal(s)
			}
			held = nil
		case <-done:
			return
		}
	}
}

// Main is qmail-start: args are the arguments after the program name.
func Main(args []string, root string, stdout, stderr *os.File) int {
	// Before anything else opens a descriptor: what the caller left open
	// above 2 is not held for as long as qmail runs.
	closeInherited()
	if os.Getpid() == 1 {
		// A container's entrypoint: PID 1 reaps and forwards, a child
		// does the work (init.go).
		if code, ok := runInit(stderr); ok {
			return code
		}
	}
	// First: until then a HUP or TERM kills qmail-start.
	sigs := sigcatch.Catch(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGALRM)
	syscall.Umask(0o077)
	spawn.CloseOnExecAll()
	// Standard error may be a pipe (the rc script's splogger): with the
	// signal dropped (not SIG_IGN, which exec would pass on to the
	// children) an alert written after its reader has gone fails with
	// EPIPE instead of killing qmail-start and orphaning qmail-send.
	sigcatch.Drop(syscall.SIGPIPE)
	if err := os.Chdir("/"); err != nil {
		return 111
	}
	if os.Geteuid() == 0 {
		// Programs are run by their absolute names under root: who can
		// rename a directory above it (moved there after qmail-install)
		// can have root run a tree of their own (ancestors.Check).
		if err := ancestors.Check(root); err != nil {
			fmt.Fprintf(stderr, "qmail-start: fatal: %v; not starting\n", err)
			return 111
		}
	}
	o := Options{Root: root, DefaultDelivery: DefaultDelivery, Stdout: stdout, Stderr: stderr, Signals: sigs}
	if len(args) > 0 {
		o.DefaultDelivery = args[0]
		o.Logger = args[1:]
	}
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		if os.Geteuid() == 0 {
			fmt.Fprintf(stderr, "qmail-start: fatal: unable to read %s: %v\n", filepath.Join(root, qhome.IDsFile), err)
			return 111
		}
		ids = qhome.SharedIDs(os.Getuid(), os.Getgid())
	}
	o.IDs = ids
	if os.Geteuid() == 0 {
		// The queue service counts each job at what a caller can pass
		// in one request (qmail-queued(8)): a hard descriptor limit
		// below that makes it run fewer jobs. As root, raise it for
		// every program started; each raises its soft limit as needed.
		// Where that is not allowed, the service says what it fits.
		nofile.RaiseHard(queue.ServiceDescriptors())
	}
	o.Switch = privsep.CanSwitch(ids.Shared)
	if ids.Shared && os.Geteuid() == 0 && ids.Qmails.UID != 0 {
		// A tree installed by an ordinary user, started by root: run it
		// as its owner, as if the owner had started it.
		o.Owner = privsep.Exactly(ids.Qmails.UID, ids.Qmails.GID)
	}
	if err := startHeldIfStopped(root, stderr); err != nil {
		fmt.Fprintf(stderr, "qmail-start: fatal: unable to apply control/startheld: %v\n", err)
		return 111
	}
	return Run(o)
}

// startHeldIfStopped applies control/startheld (StartHeld) unless a
// qmail-send is known to run on the tree: startheld is for a system that
// starts, and a qmail-start run beside a running qmail-send (which fails:
// its qmail-send cannot take sendmutex) must not hold again what was
// released with qmailctl. Known to run means that sendlock.Locate names
// it: the holder of sendmutex's lock, named in the file, running as
// qmail-send's uid. Any other answer (a sendmutex locked by a process
// that is not qmail-send, or that does not name itself in it, or one that
// cannot be tested) is no qmail-send known to run: queue/lock is
// qmailq's, who can lock a sendmutex of its own there while qmail-start
// looks (QA rsec3), so startheld is applied, the safe side, and a warning
// says why.
//
// What remains: the test and StartHeld are two steps. A qmail-send that
// starts between them (another qmail-start at the same moment, as two
// starts at boot) and a release of remote delivery in the same instant
// would still see holdremote held again; a release by a network hook
// does not, as StartHeld honours it (under the control directory's lock
// the hooks take), so only a qmailctl release in that window of
// microseconds does.
func startHeldIfStopped(root string, stderr io.Writer) error {
	if _, err := os.Stat(filepath.Join(root, "control", "startheld")); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing to apply, nothing to ask
	}
	pid, err := sendlock.Locate(root)
	switch {
	case err == nil:
		fmt.Fprintf(stderr, "qmail-start: warning: qmail-send is already running (pid %d): control/startheld not applied\n", pid)
		return nil
	case !errors.Is(err, sendlock.ErrNotRunning):
		fmt.Fprintf(stderr, "qmail-start: warning: no qmail-send known to run (%v): control/startheld applied all the same, the safe side\n", err)
	}
	_, err = ctl.StartHeldTo(root, stderr)
	return err
}
