package queue

// Multi-message mode (qmail-queue -m): one process queues a sequence of
// messages, so that a caller with many messages (qmail-smtpd, one process
// per SMTP session) pays for the start of the set-uid program once. Only
// the framing differs from the one-message protocol; the root, the ids,
// the crash-safe order and the durability of each message are the same;
// only the four fsyncs before each commit run one after another rather
// than concurrently, since a caller of this mode is one of many sessions
// at once, where CPU, not the disk, runs out first (see syncAll).
//
//	fd 0  each message as netstrings: "<len>:<len bytes>," chunks, ended
//	      by the empty netstring "0:,"; EOF where a message would start
//	      ends the run (exit 0)
//	fd 1  each message's envelope, exactly as in the one-message mode
//	      (F<sender>\0 (T<recipient>\0)* \0), read after its message
//	fd 6  one result line per message, "<code> <id>\n": 0 and the queue id
//	      once the message is committed (todo/ID linked and todo/ fsynced),
//	      or the exit code of the one-message mode and id 0
//
// The first message that fails ends the process: its result line is
// written, then qmail-queue exits with the same code. Nothing of that
// message stays in the queue; the messages before it stay queued. A
// malformed frame is a format error (91), EOF inside a message a read
// error (54).
//
// A TERM, INT or HUP (the program, MainMulti) ends the run after the
// message in progress: one not yet committed is removed and the process
// dies of the signal at once, without a result line for it; a committed
// one is finished and its "0 <id>" line written first (the caller has
// its word that the message is queued), then the process dies of the
// signal; between messages it dies at once. Dying of the signal rather
// than exiting with a code: pkg/qq's Session (qmail-smtpd) takes a
// killed qmail-queue as "qq crashed", a temporary failure of the message
// it was sending (never "queued"), keeps every message already answered
// 0, and starts a new process for the next message; no exit code says
// that (0 is "every message queued, input ended between messages",
// 54 blames the input, 81 a bug).

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qq"
)

// ResultFD is the descriptor of the result lines in multi-message mode.
const ResultFD = 6

// maxChunk is the longest chunk a frame may announce (9 digits).
const maxChunkDigits = 9

// errFrame is a malformed frame on fd 0 (exit 91).
var errFrame = errors.New("malformed frame")

// MultiConfig is one run of qmail-queue -m.
type MultiConfig struct {
	Root     string
	In       io.Reader // fd 0: framed messages
	Envelope io.Reader // fd 1: one envelope per message
	Results  io.Writer // fd 6: one result line per message
	UID      int
	PID      int
	// Clock gives each message's time (pid file name, Received date);
	// nil means time.Now.
	Clock func() time.Time
	// Alarm, when > 0, exits the process with 52 when one message (or the
	// wait for the next) takes that long.
	Alarm time.Duration

	guard *sigGuard // the program's signal handler state (MainMulti)
	tree  *tree     // a set-id qmail-queue's checked root (see Config.tree)
}

// RunMulti queues messages until EOF on In and returns the exit code: 0
// after a clean end, else the code of the message that failed (its result
// line already written).
func RunMulti(c *MultiConfig) int {
	clock := c.Clock
	if clock == nil {
		clock = time.Now
	}
	var t *time.Timer
	if c.Alarm > 0 {
		t = time.AfterFunc(c.Alarm, func() { exit(qq.ExitTimeout) })
		defer t.Stop()
	}
	in := bufio.NewReaderSize(c.In, bufSize)
	env := bufio.NewReaderSize(c.Envelope, 4096)
	var w string
	if c.tree != nil {
		w = whoIDs(c.tree.ids, c.UID)
	} else {
		w = who(c.Root, c.UID)
	}
	line := make([]byte, 0, 32)
	for {
		if _, err := in.Peek(1); err != nil {
			if err == io.EOF {
				return 0
			}
			return qq.ExitRead
		}
		fr := &frameReader{r: in}
		code, id := runJob(&Config{Root: c.Root, Message: fr, Envelope: env,
			UID: c.UID, PID: c.PID, Now: clock(), Who: w, Serial: true, guard: c.guard, tree: c.tree})
		line = strconv.AppendInt(line[:0], int64(code), 10)
		line = append(line, ' ')
		line = strconv.AppendUint(line, id, 10)
		line = append(line, '\n')
		if _, err := c.Results.Write(line); err != nil {
			// The caller cannot learn the result: it will report a
			// temporary failure, and a committed message may then be
			// sent again (at least once, never lost).
			if code == 0 {
				return qq.ExitBug
			}
			return code
		}
		if code != 0 {
			return code
		}
		if g := c.guard; g != nil {
			// The message is reported: a signal held back since its
			// commit ends the run now.
			g.mu.Lock()
			g.hold = false
			if g.pending != 0 {
				dieOf(g.pending)
			}
			g.mu.Unlock()
		}
		if t != nil {
			t.Reset(c.Alarm)
		}
	}
}

// frameReader reads one message's netstring chunks as a plain stream: EOF
// after the empty chunk, errFrame on a malformed frame,
// io.ErrUnexpectedEOF when the input ends inside the message.
type frameReader struct {
	r      *bufio.Reader
	left   int  // bytes still to come in the current chunk
	inData bool // inside a chunk: its ',' is still due
	err    error
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	for f.left == 0 {
		if f.inData {
			if f.err = f.comma(); f.err != nil {
				return 0, f.err
			}
			f.inData = false
		}
		n, err := f.length()
		if err != nil {
			f.err = err
			return 0, err
		}
		if n == 0 {
			if f.err = f.comma(); f.err == nil {
				f.err = io.EOF
			}
			return 0, f.err
		}
		f.left, f.inData = n, true
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		f.err = err
	}
	return n, err
}

// length reads "<decimal>:" (no sign, no leading zeros, at most 9 digits).
func (f *frameReader) length() (int, error) {
	n, digits := 0, 0
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			return 0, eof(err)
		}
		switch {
		case c == ':' && digits > 0:
			return n, nil
		case c >= '0' && c <= '9' && digits < maxChunkDigits && !(digits == 1 && n == 0):
			n = n*10 + int(c-'0')
			digits++
		default:
			return 0, errFrame
		}
	}
}

func (f *frameReader) comma() error {
	c, err := f.r.ReadByte()
	if err != nil {
		return eof(err)
	}
	if c != ',' {
		return errFrame
	}
	return nil
}

func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// MainMulti is qmail-queue -m: framed messages on fd 0, their envelopes
// on fd 1, result lines on fd 6, the root from the executable's location
// only (run set-uid, only a tree its caller cannot have made:
// else 61, see setIDTree). It returns the exit code; 81 if fd 6 is not
// open for writing (checked before anything is queued: a message
// committed, then not reported, would be sent again by a caller that
// believes the 81). TERM, INT and HUP end the run as the package comment
// above says.
func MainMulti(root string) int {
	fl, err := unix.FcntlInt(ResultFD, unix.F_GETFL, 0)
	if err != nil || fl&unix.O_ACCMODE == unix.O_RDONLY {
		return qq.ExitBug
	}
	t, code := setIDTree(root)
	if code != 0 {
		return code
	}
	c := &MultiConfig{
		Root:     root,
		In:       os.NewFile(0, "messages"),
		Envelope: os.NewFile(1, "envelopes"),
		Results:  os.NewFile(ResultFD, "results"),
		UID:      syscall.Getuid(),
		PID:      os.Getpid(),
		Alarm:    Alarm,
		guard:    &sigGuard{},
		tree:     t,
	}
	catchSignals(c.guard)
	syscall.Umask(0o33)
	return RunMulti(c)
}
