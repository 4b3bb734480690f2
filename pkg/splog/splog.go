// Package splog is splogger's logic: read log lines on stdin and send each
// to syslog with a tag and a facility, as qmail admins use it
// (`qmail-start ./Maildir/ splogger qmail`).
//
// Each line is sent as "<seconds>.<microseconds> <line>" with priority
// alert for lines starting "alert:", warning for "warning:", info for the
// rest. Bytes outside printable ASCII become '?'. A line longer than
// MaxLine goes in pieces of MaxLine bytes, each after the first as
// "<stamp>+<piece>" with the first piece's stamp and priority, so that log
// readers can join them; lines have no length limit. Empty lines are not
// sent. The syslog socket is /dev/log (SPLOGGER_SOCKET names another,
// for tests).
//
// The socket is normally a datagram socket, one message a datagram. Some
// syslog daemons (syslog-ng with a unix-stream source) make it a stream
// socket instead, which refuses a datagram connection with EPROTOTYPE;
// then, as glibc's syslog(3) does, splogger connects as a stream and ends
// each message with a NUL byte.
//
// It never stops reading because syslog is away (no syslogd yet at boot,
// or one that is restarting) or does not read (stopped, wedged, its socket
// full): stopping would leave qmail-send writing into a pipe nobody reads,
// and all delivery with it. Lines are read on stdin all the time and
// handed to a sender, which writes them to the socket one at a time, each
// write bounded by writeTimeout. A write that fails or times out closes
// the connection and starts an outage: lines are dropped, a warning says
// so on stderr once per outage, the socket is tried again at most once a
// second, and a line on stderr says when syslog is back and how many
// messages were lost. While syslog takes messages, even slowly, nothing is
// dropped: the reader waits for the sender, as syslog(3) would make the
// logged program wait.
package splog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxLine is the longest piece of a log line sent in one syslog message.
const MaxLine = 800

// Syslog severities and facilities (RFC 3164 numbers).
const (
	sevAlert   = 1
	sevWarning = 4
	sevInfo    = 6
)

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// facUser is LOG_USER's code, what kern (0) becomes.
const facUser = 1

// ParseFacility accepts a facility name (mail, daemon, local0...) or
// qmail's numeric form: the raw facility value of syslog.h (LOG_MAIL = 16,
// LOG_LOCAL0 = 128), or a small code 0..23. Kern (0, by name or number)
// gives user: qmail's splogger hands it to openlog(3), which in glibc
// takes a facility of 0 as "none given" and keeps LOG_USER, and syslog(3)
// never sends kern from a user program; a log daemon files kern lines as
// the kernel's.
func ParseFacility(s string) (int, error) {
	f, err := parseFacility(s)
	if err == nil && f == 0 {
		f = facUser
	}
	return f, err
}

func parseFacility(s string) (int, error) {
	if f, ok := facilities[strings.ToLower(s)]; ok {
		return f, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("unknown facility %q", s)
	}
	if n >= 8 && n%8 == 0 && n/8 <= 23 {
		return n / 8, nil
	}
	if n <= 23 {
		return n, nil
	}
	return 0, fmt.Errorf("unknown facility %q", s)
}

// Severity picks the priority of a qmail log line.
func Severity(line string) int {
	switch {
	case strings.HasPrefix(line, "alert:"):
		return sevAlert
	case strings.HasPrefix(line, "warning:"):
		return sevWarning
	}
	return sevInfo
}

// Clean replaces bytes outside printable ASCII with '?'.
func Clean(line string) string {
	b := []byte(line)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '?'
		}
	}
	return string(b)
}

// Format renders one syslog message (the local-socket format of BSD
// syslog: "<PRI>Mmm dd hh:mm:ss TAG: MSG"). There is no "[PID]": qmail's
// splogger opens syslog without LOG_PID, and log tools match "qmail: ".
func Format(fac, sev int, t time.Time, tag string, msg string) []byte {
	return fmt.Appendf(nil, "<%d>%s %s: %s", fac*8+sev, t.Format(time.Stamp), tag, msg)
}

// Run reads lines from r to its end and sends them to the socket at path;
// warnings go to errw. It fails only when r does.
//
// The reading goes on in Run while a goroutine sends, so that a syslog
// write that waits (up to writeTimeout) does not stop the reading: while
// syslog is down a message that finds the queue full is dropped at once.
func Run(r io.Reader, path, tag string, fac int, errw io.Writer) error {
	s := &sender{path: path, errw: errw}
	q := make(chan []byte, queueLen)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for m := range q {
			s.send(m)
		}
		s.close()
	}()
	err := readLines(r, tag, fac, func(m []byte) { s.put(q, m) })
	close(q)
	<-sent
	if s.down.Load() {
		fmt.Fprintf(errw, "splogger: warning: syslog at %s still away at the end of input; %d messages dropped\n", s.path, s.dropped.Load())
	}
	return err
}

// readLines reads lines from r to its end and gives each message to out:
// a line, or a piece of a long one.
func readLines(r io.Reader, tag string, fac int, out func([]byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	piece := make([]byte, 0, MaxLine)
	var (
		cont  bool // a piece of this line was sent: the next is a continuation
		now   time.Time
		stamp string
		sev   int
	)
	flush := func() {
		if len(piece) == 0 {
			return
		}
		text := Clean(string(piece))
		piece = piece[:0]
		if cont {
			out(Format(fac, sev, now, tag, stamp+"+"+text))
			return
		}
		now = time.Now()
		stamp = fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
		sev = Severity(text)
		out(Format(fac, sev, now, tag, stamp+" "+text))
		cont = true
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			flush()
			if err == io.EOF {
				return nil
			}
			return err
		}
		if c == '\n' {
			flush()
			cont = false
			continue
		}
		piece = append(piece, c)
		if len(piece) == MaxLine {
			flush()
		}
	}
}

// retryEvery bounds how often a lost syslog socket is tried again.
var retryEvery = time.Second

// writeTimeout bounds each write to syslog. A syslog daemon that is alive
// but does not read (stopped, wedged) lets its socket fill up, and a write
// to it would then wait for good; one that takes no message in this time
// is treated as away. Tests shorten it.
var writeTimeout = 2 * time.Second

// queueLen is how many messages wait between the reader and the sender:
// what is kept while a write waits, dropped if that write times out.
const queueLen = 1024

// dial is net.Dial; tests replace it to see which connections are tried.
var dial = net.Dial

// sender keeps the connection to syslog, and its outages. Only the
// sending goroutine uses it, but for down and dropped, which put reads.
type sender struct {
	path    string
	errw    io.Writer
	conn    net.Conn
	stream  bool          // conn is a stream connection: messages are framed
	down    atomic.Bool   // lines are being dropped
	dropped atomic.Uint64 // messages dropped in this outage
	nextTry time.Time     // no connection attempt before this
}

// put queues m for the sender. While syslog is up it waits for room: a
// syslog that reads, however slowly, gets every line. While syslog is down
// the sender may be in a write that waits up to writeTimeout, and m is
// dropped rather than waited for when the queue is full.
func (s *sender) put(q chan<- []byte, m []byte) {
	select {
	case q <- m:
		return
	default:
	}
	if s.down.Load() {
		s.dropped.Add(1)
		return
	}
	q <- m
}

// send writes one message, reconnecting once when the write fails
// (syslogd restarted); it drops the message when syslog stays away.
//
// Each write has writeTimeout to complete. One that times out is not
// tried again on a new connection: a datagram socket stays full while its
// daemon does not read, and the retry would wait as long again. So the
// connection is closed and the outage starts at once; while it lasts,
// messages are dropped without a write until the next attempt.
//
// On a stream connection the message is followed by a NUL byte, as glibc's
// syslog(3) sends it on a stream socket; syslog-ng's unix-stream source
// takes either a NUL or a newline as the end of a message, and Clean has
// left neither inside one. A write on a stream that fails, times out, or
// writes only part of the message, closes that connection: the rest is
// never sent after it there, where it would run into the next message;
// after a failure the whole message goes again on a new connection.
func (s *sender) send(b []byte) {
	var err error
	for try := 0; try < 2; try++ {
		if s.conn == nil && !s.connect() {
			s.dropped.Add(1)
			return
		}
		msg := b
		if s.stream {
			msg = append(b[:len(b):len(b)], 0)
		}
		s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		var n int
		n, err = s.conn.Write(msg)
		if err == nil && n == len(msg) {
			if s.down.Load() {
				s.down.Store(false)
				fmt.Fprintf(s.errw, "splogger: syslog at %s is back; %d messages dropped\n", s.path, s.dropped.Swap(0))
			}
			return
		}
		s.close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("no message taken in %v", writeTimeout)
			break
		}
		if err == nil {
			err = io.ErrShortWrite
		}
	}
	s.dropped.Add(1)
	s.lost(err)
}

// connect tries a datagram connection first, and a stream connection only
// when the socket refuses that type (EPROTOTYPE), as glibc's syslog(3)
// does. Each reconnection starts again with a datagram, so that a syslogd
// restarted with the other kind of socket is followed.
func (s *sender) connect() bool {
	if time.Now().Before(s.nextTry) {
		return false
	}
	stream := false
	c, err := dial("unixgram", s.path)
	if errors.Is(err, syscall.EPROTOTYPE) {
		stream = true
		c, err = dial("unix", s.path)
	}
	if err != nil {
		s.lost(err)
		return false
	}
	s.conn, s.stream = c, stream
	return true
}

// lost starts (or continues) an outage: lines are dropped until the next
// attempt succeeds.
func (s *sender) lost(err error) {
	s.nextTry = time.Now().Add(retryEvery)
	if !s.down.Load() {
		s.down.Store(true)
		fmt.Fprintf(s.errw, "splogger: warning: unable to send to syslog at %s: %v; dropping lines until it is back\n", s.path, err)
	}
}

func (s *sender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}
