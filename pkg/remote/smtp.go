package remote

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The dialogue is spoken by go-smtp's Client. It talks through a wire, a
// net.Conn of ours between the Client and the connection, which is where
// qmail's rules are kept that the Client does not know:
//
//   - Replies are read here with ReadReply (MaxReply read, MaxText kept, one
//     read deadline of timeoutremote per reply), and the raw reply is kept for
//     "Remote host said:". The reply to the final dot is timed per read, as
//     qmail times every read (connReader): each read of the connection that
//     brings bytes gives the peer another timeoutremote, so a reply that
//     keeps coming is read to its end, within MaxReply. Silence for
//     timeoutremote there is a connection that died, "Possible duplicate!"
//     whatever code had come, as in qmail (its read times out, and a
//     reply cut off by silence is not taken). A final reply whose first
//     line has given its code before it went over MaxReply is that code's
//     answer, with a note that the rest was not read (cut): qmail, keeping
//     5000 bytes and reading on, takes it, and "Possible duplicate!" there
//     would be a certain duplicate. The Client is shown
//     a canonical copy: the code and the first line's text, plus, for a
//     250 answer to EHLO, only the extensions qmail-remote wants it to use
//     (8BITMIME when the message has 8-bit bytes, SMTPUTF8 when the
//     envelope needs it), since Client.Mail adds BODY=8BITMIME whenever the
//     peer offers it.
//   - One command, one reply: before a command is written (and before the
//     message after the reply to DATA) nothing may be left unread in the
//     reader, nor, under TLS, in a record crypto/tls holds (inStep,
//     unread). A peer that said more than its reply (a second
//     greeting, a continuation line without a code, which ends a reply, a
//     reply said twice) would put every later reply one command behind:
//     the reply to DATA read as the final one, a refused message reported
//     accepted. So the session ends there (errOutOfStep), a temporary
//     failure. Under PIPELINING the lines sent ahead are answered in
//     order: the check is made before the batch is written (with MAIL) and
//     before the message, once its replies were all read. QUIT is exempt.
//   - Every write gets a write deadline of timeoutremote; the Client's own
//     deadlines are ignored (it clears them while the message is written).
//   - qmail takes any code below 400 after DATA as "go ahead"; the Client
//     wants 354, so such a reply is shown to it as 354. Likewise a 5xx to
//     EHLO (the command not recognised or not implemented) is shown as
//     502, the code on which the Client falls back to HELO. Any other
//     reply but 250 (a 421, the server closing, RFC 5321 §3.8; another
//     4xx; a stray 220) is shown as it is, so the Client says no HELO and
//     the session reports the name rejected, as qmail does any reply but
//     250 to its HELO. The refusal is kept (refused): a peer that closes
//     after refusing EHLO gives its reason there, not in a reply to HELO.
//   - After a final refusal of AUTH the Client sends "*"; there is no
//     exchange left to cancel, so the wire swallows that line and answers it
//     itself, and the report quotes the refusal (a "*" is sent for real when
//     the peer is still asking, 334).
//   - STARTTLS: go-smtp v0.25 offers it only as NewClientStartTLS (EHLO
//     "localhost", TLS layered over the conn given to it, which would put the
//     reply bounds under TLS). So STARTTLS is one command written here, the
//     handshake done on the connection under the wire, and a new Client made
//     over the same wire, shown a 220 greeting that the wire makes up, says
//     EHLO again as RFC 3207 asks.
//   - QUIT is written here, not through Client.Quit: qmail does not wait
//     for its answer (and the Client refuses Quit after a failed greeting).
//   - Close of the wire does nothing; the session closes the connection.
type wire struct {
	conn    net.Conn      // TCP, or TLS over it
	br      *bufio.Reader // reads conn
	timeout time.Duration

	pending []byte // the rest of the reply shown to the Client
	synth   string // a reply to show without reading the network
	cmd     string // verb of the last command written ("EHLO", "DATA", "*", ...)
	midLine bool   // the last write outside the message did not end a line

	inData    bool // the message is being written (set by the session)
	emptyBody bool // the message had no bytes
	wroteData bool // a byte of the message has been written
	critical  bool // the final dot was written: a failure now may duplicate
	// cut is set when the final reply was decided on its first line's
	// code and the rest, over MaxReply, was not read: see readReply.
	cut bool
	// perRead is set while the final reply is read: connReader gives each
	// read of the connection its own deadline of timeoutremote.
	perRead bool

	last    Reply  // the last reply read, for "Remote host said:"
	ehlo    *Reply // the answer to the last EHLO if it was 250
	refused *Reply // the answer to the last EHLO if it was a refusal
	ioErr   error  // the first failure of the connection (sticky)
	show    func(keyword string) bool
	// want8bit, when set, is asked (once per MAIL command) whether the
	// message needs BODY=8BITMIME; the parameter is taken out of the MAIL
	// line when it does not (the Client adds it whenever the peer offers
	// 8BITMIME, and a kept connection carries messages of both kinds).
	want8bit func() bool
	// shortNext, when > 0, is the deadline of the next reply only: the
	// first reply on a connection kept from an earlier delivery, which must
	// not wait timeoutremote for a peer that went away while it was idle.
	shortNext time.Duration

	// PIPELINING (RFC 2920): ahead, set by the session before MAIL, are
	// the lines the Client will write after MAIL (the RCPT lines, then
	// DATA), exactly as it will write them. They go out with the MAIL line
	// in one write; expect holds them until the Client writes each of them
	// in turn, which the wire then swallows instead of sending it again.
	// The replies come back in order, so the Client reads each one as if
	// it had waited for it. A write that is not the line expected (never,
	// unless the Client's format changes) ends the connection: the
	// delivery is a temporary failure, nothing half sent is committed.
	// The Client may write one line in pieces (go-smtp's text writer
	// writes a line longer than its 4096-byte buffer, then the CR LF, on
	// its own): matched counts the bytes of expect[0] written so far, and
	// each piece must be the next bytes of that line.
	ahead, expect [][]byte
	matched       int
}

// errPipeline is the Client writing something other than the line sent
// ahead of it.
var errPipeline = errors.New("pipelined command out of step")

// errOutOfStep is a peer that sent more than the reply to the last
// command: bytes were left unread when the next command was due.
var errOutOfStep = errors.New("peer out of step")

// outOfStep is errOutOfStep with the first line of the bytes left unread
// (as far as the reader holds it; CR dropped, NUL turned into '?').
type outOfStep struct{ line string }

func (e *outOfStep) Error() string { return errOutOfStep.Error() + ": " + e.line }
func (e *outOfStep) Unwrap() error { return errOutOfStep }

// inStep checks that nothing is left unread before a command (or the
// message) is written; otherwise the connection is given up with an
// *outOfStep holding the first unread line.
func (w *wire) inStep() error {
	n, _ := w.unread()
	if n == 0 {
		return nil
	}
	b, _ := w.br.Peek(n)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	line := strings.TrimRight(strings.ReplaceAll(string(b), "\x00", "?"), "\r")
	w.ioErr = &outOfStep{line: line}
	return w.ioErr
}

// unread is how many bytes of the peer's the wire holds unread, without
// waiting for more. In plain text that is what its reader has buffered.
// Under TLS it is also a record crypto/tls has already taken from the
// socket: tls.Conn.Read returns one record at a time, and a second record
// that came in the same TCP segment (a reply said twice) is held in the
// tls.Conn, out of sight of br.Buffered() and gone from the socket. It is
// looked for by a read whose deadline has already passed: a held record
// is decrypted and returned without touching the socket (for a deadline
// already passed Go's poller refuses the read before any system call),
// and with none the read fails at once with a time-out. That failure
// leaves the tls.Conn usable: readRecordOrCCS in crypto/tls/conn.go
// (go1.26) makes an error sticky (c.in.setErrorLocked) only when it is
// not a temporary net.Error ("if e, ok := err.(net.Error); !ok ||
// !e.Temporary() { c.in.setErrorLocked(err) }"), and a deadline's
// time-out is temporary; the bytes of a record only partly come stay in
// its raw input for the next read. bufio.Reader hands the error back and
// forgets it (readErr). The read deadline is cleared after: every read of
// the connection sets its own first (readReply, connReader, waitEnd,
// idle), and writes have their own deadline. err is an error other than
// a time-out met by that read (the peer's close_notify, say); the
// tls.Conn keeps it for the next read.
func (w *wire) unread() (n int, err error) {
	if n = w.br.Buffered(); n > 0 {
		return n, nil
	}
	if _, ok := w.conn.(*tls.Conn); !ok {
		return 0, nil
	}
	w.conn.SetReadDeadline(time.Unix(1, 0))
	_, err = w.br.Peek(1)
	w.conn.SetReadDeadline(time.Time{})
	if err != nil && isTimeout(err) {
		err = nil
	}
	return w.br.Buffered(), err
}

// newTransaction clears what one mail transaction left in the wire, before
// the next transaction on a kept connection.
func (w *wire) newTransaction() {
	w.inData, w.emptyBody, w.wroteData, w.critical, w.midLine, w.cut = false, false, false, false, false, false
	w.pending, w.synth = nil, ""
	w.ahead, w.expect, w.matched = nil, nil, 0
	w.last = Reply{}
}

func newWire(c net.Conn, timeout time.Duration) *wire {
	w := &wire{conn: c, timeout: timeout}
	w.br = bufio.NewReaderSize(connReader{w}, 4096)
	return w
}

// connReader reads the wire's connection for its bufio.Reader. While the
// final reply is read (perRead), each read is given a new deadline of
// timeoutremote first, as qmail times each read: a peer that keeps
// sending is waited for, one that goes silent is not. Every other reply
// keeps the one deadline readReply sets for all of it.
type connReader struct{ w *wire }

func (r connReader) Read(p []byte) (int, error) {
	if r.w.perRead {
		r.w.conn.SetReadDeadline(time.Now().Add(r.w.timeout))
	}
	return r.w.conn.Read(p)
}

func (w *wire) Read(p []byte) (int, error) {
	if len(w.pending) == 0 {
		if err := w.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, w.pending)
	w.pending = w.pending[n:]
	return n, nil
}

// next reads (or makes up) the reply the Client is waiting for.
func (w *wire) next() error {
	if w.synth != "" {
		w.pending, w.synth = []byte(w.synth), ""
		return nil
	}
	if w.inData {
		// The Client reads only after flushing the final dot.
		w.inData, w.critical, w.cmd = false, true, "."
	}
	r, err := w.readReply()
	if err != nil {
		return err
	}
	w.pending = w.view(r)
	return nil
}

// readReply reads one reply under a deadline of timeoutremote: for the
// whole reply, or, for the reply to the final dot, for each read.
func (w *wire) readReply() (Reply, error) {
	if w.ioErr != nil {
		return Reply{}, w.ioErr
	}
	d := w.timeout
	if w.shortNext > 0 {
		d, w.shortNext = min(d, w.shortNext), 0
	}
	w.conn.SetReadDeadline(time.Now().Add(d))
	final := w.critical && w.cmd == "."
	w.perRead = final
	r, coded, err := readReply(w.br)
	w.perRead = false
	if err != nil && coded && final && errors.Is(err, errTooLong) {
		// The final reply's code has come: it is the answer. The
		// connection is given up all the same (ioErr): never reused,
		// aborted at the end. A time-out is not this: the peer went
		// silent for timeoutremote, and the connection died.
		r.Text += "(I did not read the rest of the reply: it was too long.)\n"
		w.last, w.ioErr, w.cut = r, err, true
		return r, nil
	}
	if err != nil {
		w.last, w.ioErr = Reply{}, err
		return Reply{}, err
	}
	w.last = r
	return r, nil
}

// view is the canonical copy of r shown to the Client.
func (w *wire) view(r Reply) []byte {
	code := r.Code
	var ext []string
	switch w.cmd {
	case "EHLO":
		if code != 250 {
			rr := r
			w.refused = &rr
			if code >= 500 && code <= 599 {
				code = 502 // the Client falls back to HELO
			}
			break
		}
		rr := r
		w.ehlo = &rr
		for kw := range r.Extensions() {
			if w.show != nil && w.show(kw) {
				ext = append(ext, kw)
			}
		}
	case "DATA":
		if code < 400 {
			code = 354
		}
	}
	if code < 100 {
		// textproto refuses codes below 100; qmail takes them as below 400.
		// 199 is a code the Client never waits for.
		code = 199
	}
	text := firstLine(r.Text)
	if len(text) > 4 {
		text = text[4:]
	} else {
		text = ""
	}
	if len(text) > 512 {
		text = text[:512]
	}
	text = oneLine(text)
	c := string([]byte{byte('0' + code/100%10), byte('0' + code/10%10), byte('0' + code%10)})
	lines := append([]string{text}, ext...)
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(c)
		if i < len(lines)-1 {
			b.WriteByte('-')
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

func (w *wire) Write(p []byte) (int, error) {
	if w.ioErr != nil {
		return 0, w.ioErr
	}
	if w.inData {
		if !w.wroteData {
			// The reply to DATA (the last of a pipelined batch) has
			// been read: nothing else may be waiting.
			if err := w.inStep(); err != nil {
				return 0, err
			}
		}
		if !w.wroteData && w.emptyBody && bytes.HasPrefix(p, []byte("\r\n.\r\n")) {
			// textproto's dot writer ends an empty message with CR LF . CR LF;
			// qmail sends the dot alone.
			if _, err := w.write(p[2:]); err != nil {
				return 0, err
			}
			w.wroteData = true
			return len(p), nil
		}
		w.wroteData = true
		return w.write(p)
	}
	if w.midLine { // the rest of a long command line
		if len(p) > 0 {
			w.midLine = p[len(p)-1] != '\n'
		}
		return w.write(p)
	}
	verb, _, _ := strings.Cut(strings.TrimRight(string(p[:min(len(p), 16)]), "\r\n"), " ")
	verb = strings.ToUpper(verb)
	if len(w.expect) > 0 {
		if len(p) == 0 {
			return 0, nil
		}
		line := w.expect[0]
		if !bytes.HasPrefix(line[w.matched:], p) {
			w.ioErr = errPipeline
			return 0, w.ioErr
		}
		if w.matched == 0 { // the line's first piece names the command
			w.cmd = verb
		}
		w.matched += len(p)
		if w.matched == len(line) {
			w.expect, w.matched = w.expect[1:], 0
		}
		return len(p), nil // sent ahead with MAIL
	}
	if verb != "QUIT" {
		// Before the pipelined batch too: it goes with MAIL.
		if err := w.inStep(); err != nil {
			return 0, err
		}
	}
	w.midLine = len(p) > 0 && p[len(p)-1] != '\n'

	if verb == "*" && w.cmd != "" && w.last.Code != 334 {
		// The Client cancelling an AUTH exchange the peer has already ended.
		w.synth = "501 nothing to cancel\r\n"
		return len(p), nil
	}
	w.cmd = verb
	if verb != "MAIL" {
		return w.write(p)
	}
	q := p
	if w.want8bit != nil {
		// go-smtp writes the parameters after the address's closing
		// '>' (BODY=8BITMIME first, then SIZE=n, SMTPUTF8: none has a
		// '>'): look for it there, never inside the sender.
		const body = " BODY=8BITMIME"
		if gt := bytes.LastIndexByte(p, '>'); gt >= 0 {
			if i := bytes.Index(p[gt:], []byte(body)); i >= 0 && !w.want8bit() {
				i += gt
				q = append(append([]byte(nil), p[:i]...), p[i+len(body):]...)
			}
		}
	}
	if len(w.ahead) > 0 && !w.midLine {
		q = append([]byte(nil), q...)
		for _, l := range w.ahead {
			q = append(q, l...)
		}
		w.expect, w.ahead = w.ahead, nil
	}
	if _, err := w.write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wire) write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.conn.Write(p)
	if err != nil {
		w.ioErr = err
	}
	return n, err
}

// command writes one line and reads its reply, outside the Client.
func (w *wire) command(line string) (Reply, error) {
	if _, err := w.Write([]byte(line + "\r\n")); err != nil {
		return Reply{}, err
	}
	return w.readReply()
}

func (w *wire) Close() error                       { return nil }
func (w *wire) LocalAddr() net.Addr                { return w.conn.LocalAddr() }
func (w *wire) RemoteAddr() net.Addr               { return w.conn.RemoteAddr() }
func (w *wire) SetDeadline(t time.Time) error      { return nil }
func (w *wire) SetReadDeadline(t time.Time) error  { return nil }
func (w *wire) SetWriteDeadline(t time.Time) error { return nil }

// report is a message report: letter K, Z or D and its text.
type report struct {
	letter byte
	text   string
	// tlsPolicy marks a refusal of this host by control/tlsroutes (no
	// STARTTLS, a refused STARTTLS, a failed handshake or certificate
	// check where TLS is required): nothing was sent, so the next address
	// is tried, as other MTAs do (RFC 7672 §2.2); the report stands only
	// if no address gets further.
	tlsPolicy bool
}

// policy marks r as a TLS-policy refusal.
func policy(r *report) *report {
	r.tlsPolicy = true
	return r
}

func (r *report) Error() string { return string(r.letter) + r.text }

// tlsFallback asks the caller to try the same address again without TLS:
// an opportunistic handshake failed, for the reason why; after is set
// when the handshake worked but the session failed on its first reply
// (the server closed it, refused a client without a certificate, or said
// nothing).
type tlsFallback struct {
	why   error
	after bool
}

// note is the line the success report of the plain-text retry ends with.
func (e *tlsFallback) note() string {
	f := tlsFailure{err: e.why, after: e.after}
	return "Sent without TLS: " + f.reason() + ".\n"
}

func (e *tlsFallback) Error() string { return "opportunistic TLS failed: " + e.why.Error() }

// tlsFailure is a TLS session that could not be had, for the delivery's
// policy to judge (delivery.tlsFailed): STARTTLS refused with the reply
// refused (the session is still in plain text), or a handshake that
// failed with err; after is set when the handshake worked but the session
// failed on its first reply (the server closed it, refused a client
// without a certificate, or said nothing).
type tlsFailure struct {
	refused *Reply
	err     error
	after   bool
}

func (f *tlsFailure) Error() string { return f.reason() }

// what is the failure without its reason.
func (f *tlsFailure) what() string {
	switch {
	case f.refused != nil:
		return "STARTTLS was rejected"
	case f.after:
		return "the TLS session failed after the handshake"
	}
	return "the TLS handshake failed"
}

// reason is the failure and, in parentheses, the reply or the error.
func (f *tlsFailure) reason() string {
	why := ""
	if f.refused != nil {
		why = firstLine(f.refused.Text)
	} else if f.err != nil {
		why = f.errText()
	}
	return f.what() + " (" + oneLine(why) + ")"
}

// errText is errText of the handshake's error, followed, for an error
// that has a likely cause, by that cause (handshakeCause).
func (f *tlsFailure) errText() string {
	t := errText(f.err)
	if !f.after {
		if c := handshakeCause(f.err); c != "" {
			t += "; " + c
		}
	}
	return t
}

// handshakeCause names the likely cause of a failed handshake whose error
// says little by itself, "" when there is none to name. A server's
// handshake_failure alert (or insufficient_security) before anything was
// agreed is what a server says when it has no cipher suite (or signature
// algorithm) in common with the client: one offering only 3DES, RC4 or
// DHE key exchange, say; protocol_version, or a server answering with a
// version below 1.2, is a server that speaks only TLS 1.1 or older; a
// server that picks a suite the client did not offer (crypto/tls's
// "unconfigured cipher suite") wants one it refuses.
func handshakeCause(err error) string {
	const older = "it speaks only TLS 1.1 or older, which I refuse"
	if err == nil {
		return ""
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		switch op.Err.Error() {
		case tls.AlertError(40).Error(), tls.AlertError(71).Error(): // handshake_failure, insufficient_security
			return "probably no cipher suite or signature algorithm in common"
		case tls.AlertError(70).Error(): // protocol_version
			return older
		}
	}
	switch t := err.Error(); {
	case strings.Contains(t, "server selected unsupported protocol version"):
		return older
	case strings.Contains(t, "server chose an unconfigured cipher suite"):
		return "it chose a cipher suite I do not offer (3DES, RC4 or CBC-SHA256, say)"
	}
	return ""
}

// errText is an error of the connection in plain words, without the
// addresses and port numbers of Go's network errors ("read tcp
// 127.0.0.1:59442->192.0.2.7:25: i/o timeout" is "timed out"), so that a
// report, and the log and bounce it ends up in, says the same from one
// try to the next. Other errors (the TLS library's) are kept as they are.
func errText(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timed out"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "connection broken"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil && op.Source == nil && op.Addr == nil {
		// No address to drop: crypto/tls's "remote error: tls: ..." (the
		// server's alert) or "local error: ...", where the first words
		// say who refused.
		return op.Error()
	}
	if errors.As(err, &op) && op.Err != nil {
		var se *os.SyscallError
		if errors.As(op.Err, &se) {
			return se.Err.Error()
		}
		return op.Err.Error()
	}
	return err.Error()
}

// session is one SMTP connection.
type session struct {
	raw     net.Conn // the TCP connection
	w       *wire
	c       *smtp.Client
	ip      string
	timeout time.Duration
	tls     bool

	ext    map[string]string // the EHLO extensions in force (nil after HELO)
	key    keepKey           // what the connection was made for (keep mode)
	born   time.Time         // when the connection was made
	uses   int               // transactions begun on it
	park   func(*session) bool
	parked bool // handed to the keeper: do not close
	// stop is the delivery's stopGate (stop.go), asked before the dot.
	stop *stopGate
	// abort is set when the connection is to be aborted (see close) for a
	// reason the wire does not know: a kept connection whose local
	// address has gone.
	abort bool
	// retry is set when a transaction on a kept connection failed before
	// the peer accepted anything (connection gone, or MAIL or RCPT
	// refused): the delivery is made again over a new connection.
	retry bool
	// plain is the "Sent without TLS" note of a connection made in plain
	// text after a failed handshake, added to each report of a message
	// it carries.
	plain string
	// secrets are the forms of the login configured for this connection
	// (control/smtpauth) that a reply may quote, each with what a report
	// shows in its place (redact).
	secrets []secret
}

// secret is a form of a login that a peer's reply may quote back (a
// server that repeats the failed command, or names the password it was
// given), and the fixed words a report shows instead of it.
type secret struct{ text, mark string }

// markPassword and markUser replace a login's password (and every form
// of it that was sent) and its user name in base64 in a quoted reply.
const (
	markPassword = "(password)"
	markUser     = "(user name)"
)

// secretForms are the forms of cr that may come back in a reply: the
// password as written, and what AUTH sends: PLAIN's initial response
// (base64 of NUL user NUL password), LOGIN's base64 of the password and
// of the user name; each base64 form also without its padding, as a
// server may echo it. Base64 is matched as sent (it is case-sensitive),
// the password exactly. The longest come first, so that one form inside
// another is replaced whole.
func secretForms(cr Credentials) []secret {
	var out []secret
	add := func(text, mark string) {
		if text == "" {
			return
		}
		for _, f := range out {
			if f.text == text {
				return
			}
		}
		out = append(out, secret{text, mark})
	}
	b64 := func(v, mark string) {
		if v == "" {
			return
		}
		add(base64.StdEncoding.EncodeToString([]byte(v)), mark)
		add(base64.RawStdEncoding.EncodeToString([]byte(v)), mark)
	}
	b64("\x00"+cr.User+"\x00"+cr.Password, markPassword) // sasl.NewPlainClient("", ...)
	b64(cr.Password, markPassword)
	b64(cr.User, markUser)
	add(cr.Password, markPassword)
	slices.SortStableFunc(out, func(a, b secret) int { return len(b.text) - len(a.text) })
	return out
}

// login records that cr is this connection's login: from now on every
// reply quoted in a report is redacted.
func (s *session) login(cr Credentials) {
	if s.secrets == nil {
		s.secrets = secretForms(cr)
	}
}

// redact is text, a peer's words bound for a report (and so for
// qmail-send's log and a bounce, which may go to a remote sender), with
// every form of the connection's login in it replaced (secretForms):
// control/smtpauth promises that passwords never appear in reports or
// logs.
func (s *session) redact(text string) string {
	for _, f := range s.secrets {
		text = strings.ReplaceAll(text, f.text, f.mark)
	}
	return text
}

func newSession(c net.Conn, ip string, timeout time.Duration) *session {
	return &session{raw: c, w: newWire(c, timeout), ip: ip, timeout: timeout}
}

// client makes a new go-smtp Client over the wire.
func (s *session) client() {
	s.c = smtp.NewClient(s.w)
	s.c.CommandTimeout = s.timeout // informational: the wire keeps the time
	s.c.SubmissionTimeout = s.timeout
}

// died is the report for a connection that timed out or dropped.
func (s *session) died() *report {
	dup := ""
	if s.w.critical {
		dup = "Possible duplicate! "
	}
	if oos := (*outOfStep)(nil); errors.As(s.w.ioErr, &oos) {
		// Nothing more is written (the message is not sent): the peer
		// is out of step, and a reply read now could be any command's.
		// Redacted whole, then cut: a cut could split a login's form.
		line := s.redact(oos.line)
		if len(line) > 200 {
			line = line[:200] + "..."
		}
		return &report{letter: 'Z', text: "Connected to " + s.ip + " but it sent more than its reply (out of step). " + dup + "(#4.4.2)\n" +
			s.said() + "and then, unasked: " + oneLine(line) + "\n"}
	}
	if errors.Is(s.w.ioErr, errTooLong) {
		return &report{letter: 'Z', text: "Connected to " + s.ip + " but its SMTP reply was too long. " + dup + "(#4.4.2)\n"}
	}
	return &report{letter: 'Z', text: "Connected to " + s.ip + " but connection died. " + dup + "(#4.4.2)\n"}
}

// fail is a report in qmail's "prefix ip suffix.\nRemote host said: ..."
// form, quoting the last reply.
func (s *session) fail(letter byte, prefix, suffix string) *report {
	return &report{letter: letter, text: prefix + s.ip + suffix + ".\n" + s.said()}
}

// said is "Remote host said: <text>" of the last reply, or nothing.
func (s *session) said() string {
	if s.w.last.Text == "" {
		return ""
	}
	return "Remote host said: " + s.redact(s.w.last.Text)
}

// code is the reply code behind a Client error: the raw code of the last
// reply (the Client was shown 199 for a code below 100, see view), or -1
// for a failure of the connection or of the Client itself. A final reply
// decided on its first line (wire.cut) has its code, the connection's
// failure notwithstanding.
func (s *session) code(err error) int {
	var se *smtp.SMTPError
	if (s.w.ioErr == nil || s.w.cut) && errors.As(err, &se) {
		return s.w.last.Code
	}
	return -1
}

// close ends the connection: with the kernel's ordinary close when the
// dialogue ended in order (with QUIT, or a failed TLS handshake before any
// of the message), aborted (abort) when it was given up midway: a time-out waiting for a
// reply or a write, a local address gone (errLocalGone), a peer that
// reset or closed it, a reply out of bounds, or the message cut short
// while it was being written. Bytes written then may still be in the
// socket's send queue, the final dot among them; closed normally, the
// kernel would go on sending them after the report was made (for as long
// as the peer is there to take them, or comes back: a dial-up link that
// returns with the same address), and a peer that takes the dot only then
// accepts a message already deferred, and sent again.
func (s *session) close() {
	if s.w.ioErr != nil || s.w.inData || s.abort {
		abort(s.raw)
		return
	}
	s.w.conn.Close()
}

// abort closes c, a TCP connection or one of ours over it, with SO_LINGER
// 0: the kernel drops whatever is unsent and resets the connection (when a
// reset can still be sent), so nothing written before is delivered later.
// Under TLS c is the TCP connection below it: no close_notify is written.
func abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

// quit sends QUIT without waiting for the answer.
func (s *session) quit() {
	s.w.ahead, s.w.expect, s.w.matched = nil, nil, 0 // what was sent ahead is answered or dropped
	s.w.Write([]byte("QUIT\r\n"))
}

// hello reads the greeting (first time only) and greets with EHLO, falling
// back to HELO after a 5xx; it returns the EHLO extensions (nil after
// HELO). Any other reply but 250 to EHLO, or a 5xx after which the peer
// closes the connection (the HELO finds it gone), is reported as qmail
// reports a refused HELO, quoting the refusal.
func (s *session) hello(name string) (map[string]string, error) {
	s.w.ehlo, s.w.refused = nil, nil
	if err := s.c.Hello(name); err != nil {
		if s.w.ioErr != nil {
			if r := s.w.refused; r != nil && closed(s.w.ioErr) {
				s.w.last = *r
				return nil, s.fail('Z', "Connected to ", " but my name was rejected")
			}
			return nil, s.died()
		}
		greeting := s.w.cmd == "" // nothing written yet: the greeting failed
		s.quit()
		if greeting {
			return nil, s.fail('Z', "Connected to ", " but greeting failed")
		}
		return nil, s.fail('Z', "Connected to ", " but my name was rejected")
	}
	if s.w.ehlo != nil {
		return s.w.ehlo.Extensions(), nil
	}
	return nil, nil
}

// startTLS runs STARTTLS and the handshake. A refusal (the plain session
// is still usable) and a failed handshake give a *tlsFailure; a 421 (the
// server closing) is the report, a TLS-policy refusal when required.
func (s *session) startTLS(cfg *tls.Config, required bool) error {
	r, err := s.w.command("STARTTLS")
	if err != nil {
		return s.died()
	}
	if r.Code != 220 {
		if r.Code == 421 {
			// The server is closing the connection (RFC 5321 §3.8):
			// there is no plain-text session to go on with, and its
			// reply is the reason.
			s.quit()
			rep := s.fail('Z', "Connected to ", " but STARTTLS was rejected")
			if required {
				return policy(rep)
			}
			return rep
		}
		return &tlsFailure{refused: &r}
	}
	if err := s.handshake(cfg); err != nil {
		return err
	}
	// A new Client for the encrypted session, shown a greeting.
	s.w.synth = "220 TLS\r\n"
	s.client()
	return nil
}

// handshake makes the connection a TLS session; its failure is a
// *tlsFailure.
func (s *session) handshake(cfg *tls.Config) error {
	tc := tls.Client(s.raw, cfg)
	tc.SetDeadline(time.Now().Add(s.timeout))
	if err := tc.Handshake(); err != nil {
		return &tlsFailure{err: err}
	}
	tc.SetDeadline(time.Time{})
	s.w.conn = tc
	s.w.br = bufio.NewReaderSize(connReader{s.w}, 4096)
	s.w.pending = nil
	s.tls = true
	return nil
}

// loginClient is SASL LOGIN as servers speak it: no initial response, the
// user name first unless the challenge asks for the password. (go-sasl's
// LOGIN client sends the user name with the command and wants the
// challenge "Password:" exactly.)
type loginClient struct {
	cr   Credentials
	step int
}

func (l *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (l *loginClient) Next(ch []byte) ([]byte, error) {
	l.step++
	switch {
	case l.step > 3:
		return nil, errors.New("too many LOGIN challenges")
	case l.step == 1 && !strings.Contains(strings.ToLower(string(ch)), "pass"):
		return []byte(l.cr.User), nil
	}
	return []byte(l.cr.Password), nil
}

// auth logs in with PLAIN (preferred) or LOGIN. Failures are temporary: a
// wrong password is the admin's to fix, not a reason to bounce mail.
func (s *session) auth(ext map[string]string, cr Credentials) error {
	s.login(cr)
	mechs := strings.Fields(strings.ToUpper(ext["AUTH"]))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	var sc sasl.Client
	switch {
	case has("PLAIN"):
		sc = sasl.NewPlainClient("", cr.User, cr.Password)
	case has("LOGIN"):
		sc = &loginClient{cr: cr}
	default:
		s.quit()
		return &report{letter: 'Z', text: "Connected to " + s.ip + " but it offers neither AUTH PLAIN nor AUTH LOGIN. (#4.7.0)\n"}
	}
	if err := s.c.Auth(sc); err != nil {
		if s.w.ioErr != nil {
			return s.died()
		}
		s.quit()
		return s.fail('Z', "Connected to ", " but my login was rejected")
	}
	return nil
}

// body sends DATA, the message and the final dot, and reads the final reply.
func (s *session) body(msg io.Reader) error {
	dc, err := s.c.Data()
	if err != nil {
		c := s.code(err)
		if s.uses > 1 && (c < 0 || c >= 400) {
			// Refused (or cut) on a kept connection: a peer limiting
			// the messages of a connection may do it at DATA, which
			// comes with MAIL and RCPT under PIPELINING. Nothing was
			// accepted: a new connection decides, as at MAIL and RCPT
			// (transaction), and the recipients' reports are dropped.
			s.retry = true
			return s.died()
		}
		switch {
		case c >= 500:
			s.quit()
			return s.fail('D', "", " failed on DATA command")
		case c >= 400:
			s.quit()
			return s.fail('Z', "", " failed on DATA command")
		}
		return s.died()
	}
	s.w.inData = true
	n, err := copyData(dc, msg)
	if err != nil {
		var we writeError
		switch {
		case errors.As(err, &we):
			return s.died()
		case errors.Is(err, errPartial):
			return &report{letter: 'D', text: "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n"}
		default:
			return &report{letter: 'Z', text: "Unable to read message. (#4.3.0)\n"}
		}
	}
	s.w.emptyBody = n == 0
	if !s.stop.commit() {
		// A TERM before the dot: the message is not sent (close
		// aborts the connection, inData being set).
		return &report{letter: 'Z', text: TextStopped}
	}
	_, err = dc.CloseWithResponse()
	c := 250
	if err != nil {
		if c = s.code(err); c < 0 {
			return s.died()
		}
	}
	if c >= 400 || s.park == nil || !s.park(s) {
		s.quit()
	}
	switch {
	case c >= 500:
		return s.fail('D', "", " failed after I sent the message")
	case c >= 400:
		return s.fail('Z', "", " failed after I sent the message")
	}
	return s.fail('K', "", " accepted message")
}

// closed reports whether err is the peer's end of the connection (end of
// file, or a reset or broken pipe on a write), not a timeout or a failure
// of our own.
func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// oneLine makes an error text safe for a one-line report.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
