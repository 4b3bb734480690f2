package spawn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/nofile"
	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sigcatch"
	"github.com/hqmail/hqmail/pkg/spawnproto"
	"golang.org/x/sys/unix"
)

// Status is how one delivery ended.
type Status struct {
	Code     int            // exit code, when not Signaled
	Signaled bool           // the program was killed by a signal
	Signal   syscall.Signal // that signal, when known (0: not known)
	// Report, when not empty, is the whole report (letter first), sent as
	// is: the spawner decided without a program (hqmail additions only).
	Report string
}

// Delivery is one accepted request, ready to run.
type Delivery struct {
	Slot      int
	Mess      string // "S/ID", relative to queue/mess
	Sender    string
	Recipient string
	At        int      // index of the last '@' in Recipient
	Message   *os.File // the message, offset 0: the program's fd 0
	Output    *os.File // write end of the output pipe: the program's fd 1 and 2
}

// Local returns the recipient's local part (before the last '@').
func (d *Delivery) Local() string { return d.Recipient[:d.At] }

// Domain returns the recipient's domain (after the last '@').
func (d *Delivery) Domain() string { return d.Recipient[d.At+1:] }

// A Spawner is the half of a spawner that knows how to deliver.
type Spawner interface {
	// Deliver runs one delivery to its end and returns how it ended. It
	// must neither close d.Message nor d.Output. A non-nil error means no
	// program could be started at all; it is reported as
	// "Zqmail-spawn unable to fork. (#4.3.0)".
	Deliver(d *Delivery) (Status, error)
	// Report turns a finished delivery into a report letter (K, Z or D)
	// and text. output is what the program wrote on fd 1 and 2 (after the
	// Config.Truncate cut).
	Report(st Status, output []byte) (letter byte, text string)
}

// An Abandoner is a Spawner that can tell its running deliveries that
// their results will never be read: qmail-send ended (it was killed, or
// crashed) without waiting for them, as it does at every orderly exit.
// The next qmail-send finds them undone in the queue and makes them again,
// so each should give up whatever it can still give up without losing a
// message (qmail-rspawn: a qmail-remote that has not sent the final dot).
// Abandon is called once, at end of input, when deliveries are running.
type Abandoner interface {
	Abandon()
}

// Config holds what differs between the two spawners besides the Spawner.
type Config struct {
	// Owner is the uid that must own every message file (qmailq).
	Owner int
	// Truncate, when > 100, cuts output longer than Truncate bytes to
	// Truncate-34 bytes plus TruncNote (qmail-lspawn: 3000). 0 keeps up to
	// MaxOutput bytes.
	Truncate int
	// Limit is the number of slots, which is also the most deliveries run
	// at once (0 means qhome.SpawnLimit, 120; above MaxLimit means
	// MaxLimit). A limit above 255 is announced in the wide form of
	// pkg/spawnproto and every slot field is then two bytes.
	Limit int
	// Dir, when not empty, is the directory message paths are relative
	// to; otherwise the working directory (Main: ROOT/queue/mess).
	Dir string
}

// MaxLimit is the largest Config.Limit a spawner runs with: the largest
// concurrency qmail-send accepts from control/concurrency* (sched.MaxConcurrency).
const MaxLimit = qhome.RemoteSpawnLimit

// RemoteLimit is what qmail-rspawn announces (the wide form). qmail-lspawn
// keeps qmail's 120 in one byte.
const RemoteLimit = MaxLimit

// fdsPerSlot is how many descriptors one running delivery may hold in the
// spawner: the message, both ends of the output pipe, both ends of exec's
// transient status pipe, two pidfds of the child (os/exec's own and the
// one pollfd.Wait waits on), and a kept process's socket and the read end
// of its fd 2 pipe (with, while it starts, the socket's other end and the
// pipe's write end). fdsReserve is kept for everything else, the idle kept
// processes among them: up to keep.DefaultMaxIdle (64), each with its
// socket, its fd 2 pipe and its two pidfds.
const (
	fdsPerSlot = 10
	fdsReserve = 32 + 4*64
)

// FitLimit returns the limit to run with: limit (normalised as
// Config.Limit is) when fds descriptors are enough for it, otherwise the
// largest limit they allow (at least 1). fds <= 0 means unknown.
func FitLimit(limit int, fds int64) int {
	if limit <= 0 {
		limit = qhome.SpawnLimit
	}
	return nofile.Fit(min(limit, MaxLimit), fdsPerSlot, fdsReserve, fds)
}

// RaiseNofile raises the soft RLIMIT_NOFILE so that limit deliveries fit,
// as far as the hard limit allows, and returns the soft limit in force
// (0 when it cannot be read). Children get the limit the spawner was
// started with back on exec.
func RaiseNofile(limit int) int64 {
	soft, _ := nofile.Raise(fdsReserve + fdsPerSlot*int64(limit))
	return soft
}

// TruncNote is appended to output cut by Config.Truncate.
const TruncNote = "\nError report too long, sorry.\n"

// MaxOutput bounds the output kept of one delivery when Config.Truncate is
// 0; later bytes are read and dropped. qmail-remote's reports are at most
// two pieces of about 5 KB each.
const MaxOutput = 64 << 10

// Fixed report texts of the request checks (spec/delivery.md §1).
const (
	TextNoMem       = "Zqmail-spawn out of memory. (#4.3.0)\n"
	TextSlotTooBig  = "ZInternal error: delnum too big. (#4.3.5)\n"
	TextSlotInUse   = "ZInternal error: delnum in use. (#4.3.5)\n"
	TextNonNumeric  = "DInternal error: messid has nonnumerics. (#5.3.5)\n"
	TextTooLong     = "DInternal error: messid too long. (#5.3.5)\n"
	TextTooShort    = "DInternal error: messid too short. (#5.3.5)\n"
	TextNoHost      = "DSorry, address must include host name. (#5.1.3)\n"
	TextOpen        = "Zqmail-spawn unable to open message. (#4.3.0)\n"
	TextFstat       = "Zqmail-spawn unable to fstat message. (#4.3.0)\n"
	TextWrongType   = "ZSorry, message has wrong type. (#4.3.5)\n"
	TextWrongOwner  = "ZSorry, message has wrong owner. (#4.3.5)\n"
	TextPipe        = "Zqmail-spawn unable to create pipe. (#4.3.0)\n"
	TextFork        = "Zqmail-spawn unable to fork. (#4.3.0)\n"
	maxMessLen      = 100
	defaultTruncCut = 34 // len(TruncNote) + 3, as qmail computes the cut
)

// Check applies the request checks that need no file system access, in
// qmail's order. It returns the report (letter first) for a rejected
// request, or "" and the index of the recipient's last '@'.
func Check(req *spawnproto.Request, limit int, busy func(int) bool) (reject string, at int) {
	if req.TooLong {
		return TextNoMem, 0
	}
	if req.Slot >= limit {
		return TextSlotTooBig, 0
	}
	if busy(req.Slot) {
		return TextSlotInUse, 0
	}
	for i := 0; i < len(req.Mess); i++ {
		c := req.Mess[i]
		if c == '/' && i > 0 {
			continue
		}
		if c < '0' || c > '9' {
			return TextNonNumeric, 0
		}
	}
	if len(req.Mess) >= maxMessLen {
		return TextTooLong, 0
	}
	if req.Mess == "" {
		return TextTooShort, 0
	}
	at = strings.LastIndexByte(req.Recipient, '@')
	if at < 0 {
		return TextNoHost, 0
	}
	return "", at
}

// OpenMessageIn opens the message mess ("N/ID") in the directory dir (the
// working directory when "") and checks that it is a regular file owned
// by owner. It never blocks on a FIFO. On failure it returns the report
// text.
//
// queue/mess and its split directories belong to qmailq, and the spawner
// may run as root: no symbolic link is followed below dir. dir is opened
// as given (the spawner's own choice), then each component of mess
// relative to the one before with O_NOFOLLOW, the last one also
// O_NONBLOCK, so that a link planted there never makes root open its
// target (a FIFO, a device), and a FIFO planted there does not block. A
// link as the message is "wrong type", anything else that cannot be
// opened "unable to open".
func OpenMessageIn(dir, mess string, owner int) (*os.File, string) {
	fd, reject := openNoFollow(dir, mess)
	if reject != "" {
		return nil, reject
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, TextFstat
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, TextWrongType
	}
	if int(st.Uid) != owner {
		syscall.Close(fd)
		return nil, TextWrongOwner
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, TextOpen
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, mess)), ""
}

// openNoFollow opens mess for OpenMessageIn: dir as given, then each
// component of mess with O_NOFOLLOW.
func openNoFollow(dir, mess string) (int, string) {
	start := dir
	if start == "" {
		start = "."
	}
	if strings.HasPrefix(mess, "/") {
		start = "/"
	}
	at, err := openatRetry(unix.AT_FDCWD, start, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1, TextOpen
	}
	var names []string
	for _, c := range strings.Split(mess, "/") {
		if c != "" { // "1//2" as the kernel reads it
			names = append(names, c)
		}
	}
	if len(names) == 0 {
		unix.Close(at)
		return -1, TextOpen
	}
	for i, c := range names {
		last := i == len(names)-1
		flags := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			flags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY
		}
		fd, err := openatRetry(at, c, flags)
		unix.Close(at)
		if err != nil {
			if last && err == unix.ELOOP {
				return -1, TextWrongType // the message is a symbolic link
			}
			return -1, TextOpen
		}
		at = fd
	}
	return at, ""
}

// openatRetry is openat(2), retried when interrupted.
func openatRetry(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Cut applies qmail's report length rule: output longer than limit bytes
// becomes its first limit-34 bytes plus TruncNote. limit <= 100 keeps all.
func Cut(output []byte, limit int) []byte {
	if limit <= 100 || len(output) <= limit {
		return output
	}
	out := append([]byte(nil), output[:limit-defaultTruncCut]...)
	return append(out, TruncNote...)
}

// collect reads r to EOF, keeping at most max bytes.
func collect(r io.Reader, max int) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 && len(out) < max {
			take := n
			if len(out)+take > max {
				take = max - len(out)
			}
			out = append(out, buf[:take]...)
		}
		if err != nil {
			return out
		}
	}
}

type result struct {
	slot   int
	report []byte
}

type input struct {
	req *spawnproto.Request
	err error
}

// Run speaks the spawner side of the protocol on in/out until in is at end
// of file and no delivery is left. It first writes the announcement: one
// byte for a limit up to 255 (qmail's form), the wide form above, in
// which case requests and reports carry two-byte slots.
// Errors writing reports are ignored (qmail-send is gone; its requests
// end too).
func Run(in io.Reader, out io.Writer, sp Spawner, cfg Config) error {
	limit := FitLimit(cfg.Limit, 0)
	keep := MaxOutput
	if cfg.Truncate > 100 {
		keep = cfg.Truncate + 1
	}
	announce, width := spawnproto.Announce(limit)
	if _, err := out.Write(announce); err != nil {
		return err
	}
	reqs := make(chan input)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		br := bufio.NewReader(in)
		for {
			req, err := spawnproto.ReadRequestWidth(br, width)
			select {
			case reqs <- input{req, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	done := make(chan result)
	busy := make([]bool, limit)
	running := 0
	eof := false
	send := func(slot int, text string) {
		if text == "" || text[0] == 0 {
			text = "Z" // never sent: every report has a letter
		}
		rep := spawnproto.Report{Slot: slot, Letter: text[0], Text: text[1:]}
		out.Write(rep.EncodeWidth(width))
	}
	for !eof || running > 0 {
		var rc chan input
		if !eof {
			rc = reqs
		}
		select {
		case in := <-rc:
			if in.err != nil {
				// End of input, or an error or a cut request at its end:
				// no more requests can be read. qmail-send has gone; if
				// it did not wait for the deliveries still running, no
				// result of theirs will be read (Abandoner).
				eof = true
				if a, ok := sp.(Abandoner); ok && running > 0 {
					a.Abandon()
				}
				continue
			}
			req := in.req
			reject, at := Check(req, limit, func(s int) bool { return busy[s] })
			if reject != "" {
				send(req.Slot, reject)
				continue
			}
			msg, reject := OpenMessageIn(cfg.Dir, req.Mess, cfg.Owner)
			if reject != "" {
				send(req.Slot, reject)
				continue
			}
			pr, pw, err := os.Pipe()
			if err != nil {
				msg.Close()
				send(req.Slot, TextPipe)
				continue
			}
			busy[req.Slot] = true
			running++
			d := &Delivery{Slot: req.Slot, Mess: req.Mess, Sender: req.Sender,
				Recipient: req.Recipient, At: at, Message: msg, Output: pw}
			go func() {
				outc := make(chan []byte, 1)
				go func() { outc <- collect(pr, keep); pr.Close() }()
				st, err := sp.Deliver(d)
				msg.Close()
				pw.Close()
				output := <-outc
				var text string
				switch {
				case err != nil:
					text = TextFork
				case st.Report != "":
					text = st.Report
				default:
					letter, t := sp.Report(st, Cut(output, cfg.Truncate))
					text = string(letter) + t
				}
				done <- result{d.Slot, []byte(text)}
			}()
		case r := <-done:
			busy[r.slot] = false
			running--
			send(r.slot, string(r.report))
		}
	}
	return nil
}

// Main is the body of a spawner program: chdir ROOT/queue/mess, call init
// (may be nil; an error exits 111), catch SIGPIPE, raise the soft
// RLIMIT_NOFILE for Config.Limit deliveries (announcing fewer slots when
// the hard limit does not allow that many), run the protocol on fds 0
// and 1. It returns the exit code.
func Main(root string, sp Spawner, cfg Config, init func() error) int {
	CloseOnExecAll()
	if err := os.Chdir(filepath.Join(root, "queue", "mess")); err != nil {
		return 111
	}
	if init != nil {
		if err := init(); err != nil {
			return 111
		}
	}
	// A write to a closed pipe on fd 1 returns EPIPE instead of killing
	// us. A TERM is dropped too (qmail's spawners die of it): a stop that
	// signals the whole process group (kill -TERM -PGID, a service
	// manager that signals every process) reaches them with qmail-send's;
	// qmail-send then waits for its running deliveries, and a spawner gone
	// would lose their results (qmail-send exits at once, "lost spawn
	// connection", and the next run makes them again). They end as
	// always, at end of input, once qmail-send has gone. Dropped, not
	// ignored: the delivery programs keep the default actions.
	sigcatch.Drop(syscall.SIGPIPE, syscall.SIGTERM)
	cfg.Limit = FitLimit(cfg.Limit, RaiseNofile(FitLimit(cfg.Limit, 0)))
	// Both pipes are qmail-start's, private to qmail-send and us.
	if err := Run(pollfd.File(0, "requests"), pollfd.File(1, "reports"), sp, cfg); err != nil {
		return 111
	}
	return 0
}

// MaxReason bounds the reason CrashReason returns, in bytes.
const MaxReason = 120

// crashPrefixes are the lines the Go runtime begins its account of a
// program's death with, the most telling first: a fatal error (out of
// threads or memory, a concurrent map write: "fatal error: newosproc"),
// an unrecovered panic ("panic: " and the value; one raised again is
// indented below it), and the runtime's own notes, which precede some
// fatal errors ("runtime: failed to create new OS thread ...",
// "runtime: out of memory: ...").
var crashPrefixes = []string{"fatal error: ", "panic: ", "runtime: "}

// CrashReason finds why a Go program died in what it wrote (its fd 2, or
// fds 1 and 2 mixed): the first line that begins "fatal error: ", else
// the first that begins "panic: ", else the first that begins
// "runtime: ". A line ends at a newline or a NUL (qmail-remote's reports
// end in NUL, and the trace may follow one). The line is cut to MaxReason
// bytes, trailing blanks are dropped, and every byte that is not
// printable ASCII becomes '?', so that the reason can go into qmail-send's
// log and a bounce as it is. It returns "" when no line begins so.
func CrashReason(out []byte) string {
	for _, prefix := range crashPrefixes {
		rest := out
		for len(rest) > 0 {
			line := rest
			if i := bytes.IndexAny(rest, "\n\x00"); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if bytes.HasPrefix(line, []byte(prefix)) {
				return prefix + clean(line[len(prefix):min(len(line), MaxReason)])
			}
		}
	}
	return ""
}

// clean returns line without trailing blanks, with '?' for every byte
// outside printable ASCII.
func clean(line []byte) string {
	line = bytes.TrimRight(line, " \t\r")
	b := make([]byte, len(line))
	for i, c := range line {
		if c < ' ' || c > '~' {
			c = '?'
		}
		b[i] = c
	}
	return string(b)
}

// CrashText is the report text (without its letter) of a delivery whose
// program crashed: "PROGRAM crashed (REASON).\n" with the reason
// CrashReason finds in out, what the program wrote; qmail's
// "PROGRAM crashed.\n" when it finds none (a program killed by a signal
// writes nothing).
func CrashText(program string, out []byte) string {
	if r := CrashReason(out); r != "" {
		return program + " crashed (" + r + ").\n"
	}
	return program + " crashed.\n"
}

// StatusOf converts the error of exec.Cmd.Wait (or a process state) into a
// Status. ok is false when err says nothing about an exit status.
func StatusOf(ps *os.ProcessState) Status {
	if ps == nil {
		return Status{Signaled: true}
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return Status{Signaled: true, Signal: ws.Signal()}
	}
	return Status{Code: ws.ExitStatus()}
}

// NotStarted is the status of a delivery whose program could not be
// started: qmail's "Unable to run PROG." with the reason added ("Unable
// to run qmail-local: temporary failure." under a process limit), a
// deferral when TempErrno says the error passes, a failure otherwise.
// qmail's spawners report only the exit code of their forked child, so
// its log cannot tell a missing program from a full process table.
func NotStarted(prog string, err error) Status {
	letter := "D"
	if TempErrno(err) {
		letter = "Z"
	}
	return Status{Report: letter + "Unable to run " + prog + ": " + qerr.Str(err) + ".\n"}
}

// TempErrno reports whether an error from starting a program is
// temporary. Only the errors of exec itself that say the program cannot
// run (missing, not executable, not a program) are permanent, as qmail's
// child of the spawner makes only its execvp's errno permanent; anything
// else (out of descriptors, processes or memory, a failed dup2 in the
// forked child: Go reports all of them as "fork/exec") is a passing
// shortage and defers the delivery.
func TempErrno(err error) bool {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return true
	}
	switch en {
	case syscall.ENOENT, syscall.EACCES, syscall.ENOEXEC, syscall.ENOTDIR,
		syscall.ELOOP, syscall.ENAMETOOLONG, syscall.EISDIR, syscall.EPERM:
		return false
	}
	return true
}

// CloseOnExecAll marks every descriptor above 2 close-on-exec, so that
// descriptors inherited from whoever started us (without close-on-exec)
// do not reach the programs we start under other ids. Go's own
// descriptors are close-on-exec already.
func CloseOnExecAll() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
