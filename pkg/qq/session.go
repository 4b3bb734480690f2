package qq

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// Session queues the messages of one caller (qmail-smtpd: one SMTP
// session) through a single "qmail-queue -m" (docs/man/qmail-queue.8),
// started at the first Queue and ended by Close, instead of one process
// per message. Each message is still committed on its own and Queue
// returns success only after qmail-queue's result line for it says 0.
//
// When the environment names another program in $QMAILQUEUE (a filter that
// knows only qmail's one-message protocol), Session runs that program once
// per message through Queue instead.
//
// Any trouble with the process (it died, a pipe broke, a line it wrote
// cannot be read) fails the current message with a temporary error, ends
// that process, and the next message starts a fresh one: a message is
// never reported queued unless qmail-queue said so, and never handed to
// two processes.
//
// A Session is not safe for concurrent use.
type Session struct {
	opt   Options
	multi bool
	p     *proc
}

// NewSession returns a Session that runs qmail-queue with opt; no process
// is started yet.
func NewSession(opt Options) *Session {
	s := &Session{opt: opt}
	if s.opt.Env == nil {
		s.opt.Env = os.Environ()
	}
	prog := filepath.Join(opt.Root, "bin", "qmail-queue")
	s.multi = opt.IgnoreQMAILQUEUE || Program(opt.Root, s.opt.Env) == prog
	return s
}

// Multi reports whether the session uses qmail-queue -m (false: one
// $QMAILQUEUE process per message).
func (s *Session) Multi() bool { return s.multi }

// proc is one running qmail-queue -m.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	in   *os.File      // its fd 0
	bw   *bufio.Writer // over in
	env  *os.File      // its fd 1
	res  *os.File      // its fd 6
	br   *bufio.Reader // over res
	buf  []byte
	done chan struct{}
	werr error // the wait's result, once done is closed
}

// Start starts the session's qmail-queue -m unless one is running. Queue
// calls it; calling it early only moves the start.
func (s *Session) Start() error {
	if !s.multi {
		return nil
	}
	if s.p != nil {
		select {
		case <-s.p.done: // ended while idle: reap it, start another
			s.end()
		default:
			return nil
		}
	}
	p, err := startProc(s.opt)
	if err != nil {
		return qerr.Wrap(err, false, "unable to exec qq (#4.3.0)")
	}
	s.p = p
	if s.opt.Started != nil {
		s.opt.Started(p.pid)
	}
	return nil
}

func startProc(opt Options) (*proc, error) {
	prog := filepath.Join(opt.Root, "bin", "qmail-queue")
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return
	}
	inR, inW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	envR, envW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	resR, resW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	cmd := &exec.Cmd{Path: prog, Args: []string{prog, "-m"}, Env: opt.Env, Dir: opt.Root,
		Stdin: inR, Stdout: envR, Stderr: os.Stderr,
		ExtraFiles: []*os.File{nil, nil, nil, resW}}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	inR.Close()
	envR.Close()
	resW.Close()
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, in: inW, bw: bufio.NewWriterSize(inW, 64<<10),
		env: envW, res: resR, br: bufio.NewReaderSize(resR, 64), buf: make([]byte, 32<<10),
		done: make(chan struct{})}
	// The process lives as long as the caller's session (an idle SMTP
	// connection keeps it): wait for it in the poller, not in a blocked
	// waitid(2) that would hold an OS thread for each session, so that a
	// full process table fails one session's qmail-queue instead of the
	// runtime's next thread and so every session (pollfd.Wait).
	go func() {
		p.werr = pollfd.Wait(cmd)
		close(p.done)
	}()
	return p, nil
}

// Queue queues msg with env and returns the pid of the qmail-queue that
// did it (0 if none could be started), the queue id (0 when $QMAILQUEUE is
// used) and nil, or a qerr.Error with the caller text of spec/queue.md §4.
// A read error on msg fails the message with "qq read error" and queues
// nothing.
func (s *Session) Queue(msg io.Reader, env *Envelope) (pid int, id uint64, err error) {
	if !s.multi {
		pid, err := Queue(s.opt, msg, env)
		return pid, 0, err
	}
	if err := s.Start(); err != nil {
		return 0, 0, err
	}
	p := s.p
	rerr, werr := p.send(msg)
	if rerr == nil && werr == nil {
		_, werr = p.env.Write(env.Encode())
	}
	if rerr != nil || werr != nil {
		// Unfinished frame or envelope: qmail-queue sees its input end
		// inside the message and queues nothing of it.
		code, cerr := s.end()
		if rerr != nil || (cerr == nil && code == 0) {
			return p.pid, 0, ExitError(ExitRead)
		}
		if cerr != nil {
			return p.pid, 0, cerr
		}
		return p.pid, 0, ExitError(code)
	}
	line, rlerr := p.br.ReadSlice('\n')
	code, id, ok := parseResult(line)
	if rlerr != nil || !ok {
		// No result: the process is gone (or talks nonsense). Whatever
		// it did with this message, the caller learns a temporary
		// failure; a committed message is then at worst sent again.
		if rlerr != io.EOF { // alive but not making sense: stop it
			p.cmd.Process.Kill()
		}
		c, cerr := s.end()
		if cerr != nil {
			return p.pid, 0, cerr
		}
		if c == 0 || rlerr == nil {
			c = ExitBug
		}
		return p.pid, 0, ExitError(c)
	}
	if code != 0 {
		s.end() // it exits after a failed message
		return p.pid, 0, ExitError(code)
	}
	return p.pid, id, nil
}

// send writes msg as netstring chunks ending with "0:,". rerr is a read
// error of msg, werr a write error towards qmail-queue.
func (p *proc) send(msg io.Reader) (rerr, werr error) {
	var hdr [16]byte
	for {
		n, err := msg.Read(p.buf)
		if n > 0 {
			h := strconv.AppendInt(hdr[:0], int64(n), 10)
			h = append(h, ':')
			if _, werr = p.bw.Write(h); werr != nil {
				return nil, werr
			}
			if _, werr = p.bw.Write(p.buf[:n]); werr != nil {
				return nil, werr
			}
			if werr = p.bw.WriteByte(','); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err, nil
		}
	}
	if _, werr = p.bw.WriteString("0:,"); werr != nil {
		return nil, werr
	}
	return nil, p.bw.Flush()
}

// parseResult parses "<code> <id>\n".
func parseResult(line []byte) (code int, id uint64, ok bool) {
	line, found := bytes.CutSuffix(line, []byte{'\n'})
	if !found {
		return 0, 0, false
	}
	c, i, found := bytes.Cut(line, []byte{' '})
	if !found {
		return 0, 0, false
	}
	n, err1 := strconv.Atoi(string(c))
	id, err2 := strconv.ParseUint(string(i), 10, 64)
	if err1 != nil || err2 != nil || n < 0 || n > 255 || (n == 0) != (id != 0) {
		return 0, 0, false
	}
	return n, id, true
}

// end closes the input of the session's process without finishing a
// message, waits for it and forgets it. It returns its exit code, or a
// "qq crashed" error when it did not exit normally.
func (s *Session) end() (int, error) {
	p := s.p
	s.p = nil
	p.close()
	<-p.done
	p.res.Close()
	return exitCode(p.werr)
}

func (p *proc) close() {
	p.in.Close()
	p.env.Close()
}

func exitCode(werr error) (int, error) {
	if werr == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			return ws.ExitStatus(), nil
		}
	}
	return 0, qerr.Wrap(werr, false, "qq crashed (#4.3.0)")
}

// Close ends the session: qmail-queue -m sees EOF between messages and
// exits. It returns nil when it exited 0.
func (s *Session) Close() error {
	if s.p == nil {
		return nil
	}
	code, err := s.end()
	if err != nil {
		return err
	}
	return ExitError(code)
}
