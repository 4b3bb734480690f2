package qq

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// StartDir is the directory qmail-queue starts in for a tree at root
// (Options.Root): the root itself, or "/" when $QMAILQUEUE (qmailqueue,
// set says whether it is) names an absolute program and the root cannot
// be entered: such a program does not need the tree, and a program run
// outside an installed tree (or by a user who may not search the root)
// forwards instead of failing, as qmail-local does.
func StartDir(root, qmailqueue string, set bool) string {
	if set && filepath.IsAbs(qmailqueue) && syscall.Access(root, 1) != nil { // 1: X_OK
		return "/"
	}
	return root
}

// Program returns the qmail-queue to run for a tree at root: $QMAILQUEUE
// from env when set (relative names are relative to root, where the child
// starts), else root/bin/qmail-queue. A QMAILQUEUE set but empty is set,
// as for qmail's env_get: it names no program, so Program returns "", which
// Queue cannot start ("unable to exec qq (#4.3.0)", a temporary failure,
// as qmail's execv("") gives); it is not the tree's qmail-queue (nor its
// queue service, nor qmail-queue -m).
func Program(root string, env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if len(env[i]) >= 11 && env[i][:11] == "QMAILQUEUE=" {
			p := env[i][11:]
			if p == "" {
				return ""
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(root, p)
			}
			return p
		}
	}
	return filepath.Join(root, "bin", "qmail-queue")
}

// errNoProgram is why Queue did not start the program of an empty
// $QMAILQUEUE.
var errNoProgram = errors.New("QMAILQUEUE is set but empty")

// Options controls one run of qmail-queue.
type Options struct {
	Root string   // qmail tree; the child's working directory
	Env  []string // child environment; nil means the caller's (QMAILQUEUE is read from it)
	// IgnoreQMAILQUEUE makes Queue always run Root/bin/qmail-queue.
	IgnoreQMAILQUEUE bool
	// Started, if set, is called with the child's pid once it runs (the
	// caller's own pid when the queue service takes the message).
	Started func(pid int)
	// NoService makes Queue run qmail-queue even when the queue service
	// (qmail-queued) is there.
	NoService bool
	// Stderr is the child's descriptor 2; nil means the caller's.
	Stderr *os.File
}

// Queue runs qmail-queue with msg on fd 0 and env's encoding on fd 1 and
// waits for it. It returns the child's pid (0 if it never started) and nil
// on success, or a qerr.Error with the caller text of spec/queue.md §4.
//
// If msg is an *os.File it becomes the child's stdin directly (no copy).
//
// When qmail-queue itself is to run (no $QMAILQUEUE) and the tree's queue
// service (qmail-queued) is up and takes the message, the message goes
// through the service instead: the same protocol and result, without a
// process start. Anything else runs qmail-queue.
func Queue(opt Options, msg io.Reader, env *Envelope) (int, error) {
	cenv := opt.Env
	if cenv == nil {
		cenv = os.Environ()
	}
	own := filepath.Join(opt.Root, "bin", "qmail-queue")
	prog := own
	if !opt.IgnoreQMAILQUEUE {
		prog = Program(opt.Root, cenv)
	}
	if prog == "" { // QMAILQUEUE set but empty: qmail's execv("") fails
		return 0, qerr.Wrap(errNoProgram, false, "unable to exec qq (#4.3.0)")
	}
	if prog == own && !opt.NoService {
		pid, _, err := viaService(opt.Root, msg, env, opt.Started)
		if err != errNotTaken {
			return pid, err
		}
	}
	envR, envW, err := os.Pipe()
	if err != nil {
		return 0, qerr.Wrap(err, false, "unable to exec qq (#4.3.0)")
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		envR.Close()
		envW.Close()
		return 0, qerr.Wrap(err, false, "unable to exec qq (#4.3.0)")
	}
	cmd := &exec.Cmd{Path: prog, Args: []string{prog}, Env: cenv, Dir: opt.Root}
	cmd.Stdout = envR
	cmd.Stderr = os.Stderr
	if opt.Stderr != nil {
		cmd.Stderr = opt.Stderr
	}
	// fd 6 carries a custom error text (the maintained line's extension).
	cmd.ExtraFiles = []*os.File{nil, nil, nil, errW}
	var msgW *os.File
	if f, ok := msg.(*os.File); ok {
		cmd.Stdin = f
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			envR.Close()
			envW.Close()
			errR.Close()
			errW.Close()
			return 0, qerr.Wrap(err, false, "unable to exec qq (#4.3.0)")
		}
		cmd.Stdin = r
		msgW = w
		defer r.Close()
	}
	if err := cmd.Start(); err != nil {
		envR.Close()
		envW.Close()
		errR.Close()
		errW.Close()
		if msgW != nil {
			msgW.Close()
		}
		return 0, qerr.Wrap(err, false, "unable to exec qq (#4.3.0)")
	}
	envR.Close()
	errW.Close()
	if r, ok := cmd.Stdin.(*os.File); ok && msgW != nil {
		r.Close()
	}
	if opt.Started != nil {
		opt.Started(cmd.Process.Pid)
	}
	writeFailed := feed(msgW, msg, envW, env)
	custom := make([]byte, 256)
	n, _ := io.ReadFull(errR, custom[:255])
	custom = custom[:n]
	errR.Close()
	werr := pollfd.Wait(cmd) // in the poller: see startProc
	pid := cmd.Process.Pid
	code := 0
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return pid, qerr.Wrap(werr, false, "qq crashed (#4.3.0)")
		}
		ws, ok := ee.Sys().(syscall.WaitStatus)
		if !ok || !ws.Exited() {
			return pid, qerr.Wrap(werr, false, "qq crashed (#4.3.0)")
		}
		code = ws.ExitStatus()
	}
	if code == 0 && writeFailed {
		code = ExitRead
	}
	if code == ExitCustom {
		if len(custom) > 2 && (custom[0] == 'D' || custom[0] == 'Z') {
			return pid, &qerr.Error{Perm: custom[0] == 'D', Text: string(custom[1:])}
		}
		return pid, qerr.Temp("qq temporary problem (#4.3.0)")
	}
	return pid, ExitError(code)
}

// feed writes msg into msgW (when not nil: the message is not passed as a
// file) and then env into envW, and closes both. A message that could not
// be copied whole must not be queued: then no envelope is sent, so
// qmail-queue (or the service) sees it end early and gives up, as qmail's
// qmail_fail does (an aborted SMTP DATA, a read error). It reports whether
// anything failed.
func feed(msgW *os.File, msg io.Reader, envW *os.File, env *Envelope) (failed bool) {
	if msgW != nil {
		if _, err := io.Copy(msgW, msg); err != nil {
			failed = true
		}
		msgW.Close()
	}
	if !failed {
		if _, err := envW.Write(env.Encode()); err != nil {
			failed = true
		}
	}
	envW.Close()
	return failed
}
