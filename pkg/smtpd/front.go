package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
)

// front is the net.Conn go-smtp is given. It makes the dialogue qmail's
// while go-smtp stays the engine for the transaction state (MAIL, RCPT,
// DATA, RSET ordering and resets), the session hooks and reply writing.
//
// Read side: front reads the client's command lines itself, with
// qmail-smtpd's grammar (a line ends in LF, a CR before it is dropped, the
// verb is the text before the first space, case-insensitive). Commands
// whose qmail reply needs no transaction state (NOOP, VRFY, HELP, unknown
// verbs, BDAT, AUTH, STARTTLS, a RCPT or DATA out of order, a MAIL or
// RCPT address that is a syntax error) are answered by front at once.
// The others are handed to go-smtp as canonical lines ("HELO x", "RSET",
// "MAIL FROM:<>", "RCPT TO:<x@x>", "DATA", "QUIT"); the address as qmail
// parses it travels beside them in connState. Each Read returns at most
// one such line, so go-smtp (whose bufio.Reader reads only when empty)
// has answered every earlier line before front reads the client again;
// replies therefore never change order.
//
// Write side: go-smtp's replies are collected up to their last line and
// the one reply that answers the line handed over last is passed through
// that line's action, which replaces go-smtp's text by qmail's (or drops
// the reply of a line front added itself). Replies with no action, or a
// code the action does not expect (the qmail texts of the session hooks,
// the result of DATA), pass unchanged.
//
// DATA: after go-smtp's 354 the session reads the message from front's
// bodyReader (qmail's dot and end-of-data rules), not from go-smtp's data
// reader; at the end go-smtp's reader is handed a lone "." line so that
// it finishes too, and front reads the commands after the message again.
// qmail-queue is started before DATA is handed over (session.startQueue),
// so that "451 qqt failure" replaces the 354 as in qmail.
//
// STARTTLS is done by front: TLS sits between front and the socket, so
// both sides of front always see clear text, and go-smtp never knows.
type front struct {
	cs    *connState
	plain net.Conn // the client connection as Serve got it
	raw   net.Conn // plain, or the TLS connection over it after STARTTLS
	br    *bufio.Reader
	tls   bool

	greeted bool       // go-smtp has had a HELO (it wants one before MAIL)
	queue   []handover // lines still to hand to go-smtp
	cur     []byte     // rest of the line being handed over
	act     replyAction
	data    int      // dataNone, dataBody, dataDrain
	qstate  int      // DATA state (qBegin...)
	dpend   []byte   // decoded DATA bytes not yet handed out
	hops    hopCount // the message's hop count, on the bytes as sent
	closed  bool

	wbuf []byte // go-smtp's reply being collected
}

// handover is a line for go-smtp and what to do with its reply.
type handover struct {
	line string
	act  replyAction
}

// replyAction turns go-smtp's reply (complete, CRLF line ends) into the
// bytes to send; an empty result drops it.
type replyAction func(reply []byte) []byte

// maxReply bounds the reply bytes collected from go-smtp; a longer reply
// (go-smtp never writes one, as front only hands it short lines) is passed
// on as it is.
const maxReply = 64 << 10

// qmail's texts of the replies front gives or substitutes.
const (
	textNoop        = "250 ok"
	textFlushed     = "250 flushed"
	textVrfy        = "252 send some mail, i'll try my best"
	textHelp        = "214 notqmail home page: https://notqmail.org"
	textUnimpl      = "502 unimplemented (#5.5.1)"
	textMailFirst   = "503 MAIL first (#5.5.1)"
	textRcptFirst   = "503 RCPT first (#5.5.1)"
	textGoAhead     = "354 go ahead"
	textSyntax      = "555 syntax error (#5.5.4)"
	textQQT         = "451 qqt failure (#4.3.0)"
	textTLSReady    = "220 ready for tls"
	textTLSFailed   = "454 TLS not available due to temporary reason (#4.3.0)"
	textTLSParams   = "501 Syntax error (no parameters allowed) (#5.5.4)"
	placeholderHelo = "HELO x"
)

func newFront(cs *connState, conn net.Conn) *front {
	f := &front{cs: cs, plain: conn, raw: conn, br: bufio.NewReaderSize(conn, 4096)}
	// The first reply is go-smtp's greeting.
	f.act = expect(220, "220 "+cs.cfg.Greeting+" ESMTP")
	return f
}

// expect returns an action replacing a reply of the given code by text
// (CRLF added to each line); other replies pass.
func expect(code int, text string) replyAction {
	return func(r []byte) []byte {
		if replyCode(r) != code {
			return r
		}
		return []byte(strings.ReplaceAll(text, "\n", "\r\n") + "\r\n")
	}
}

// drop discards the reply to a line front added (HELO or RSET) when it is
// the expected success; anything else is passed on.
func drop(code int) replyAction {
	return func(r []byte) []byte {
		if replyCode(r) != code {
			return r
		}
		return nil
	}
}

func replyCode(r []byte) int {
	if len(r) < 3 {
		return -1
	}
	n, err := strconv.Atoi(string(r[:3]))
	if err != nil {
		return -1
	}
	return n
}

// errPanic ends a session whose front panicked.
var errPanic = errors.New("smtpd: internal error")

// contain turns a panic in front into the end of this session only: Read
// and Write run on go-smtp's connection goroutine outside its own
// recover, and with -listen a panic would end every session.
func (f *front) contain(err *error) {
	if r := recover(); r != nil {
		f.cs.log.Printf("panic: %v\n%s", r, debug.Stack())
		f.cs.failed.Store(true)
		f.closed = true
		f.raw.Close()
		*err = errPanic
	}
}

// Read hands go-smtp its next line, or DATA bytes.
func (f *front) Read(p []byte) (n int, err error) {
	defer f.contain(&err)
	for {
		if len(p) == 0 {
			return 0, nil
		}
		switch f.data {
		case dataBody:
			// The session gave up before the end of the message:
			// the client went away, timed out or sent an over-long
			// line. The session is over.
			f.data, f.closed = dataNone, true
			return 0, io.EOF
		case dataDrain:
			// The message was read through bodyReader; go-smtp's
			// data reader, which has seen nothing of it, is given
			// just its end.
			f.data, f.cur = dataNone, []byte(".\r\n")
			continue
		}
		if len(f.cur) > 0 {
			n := copy(p, f.cur)
			f.cur = f.cur[n:]
			return n, nil
		}
		if f.closed {
			return 0, io.EOF
		}
		if len(f.queue) > 0 {
			h := f.queue[0]
			f.queue = f.queue[1:]
			f.act = h.act
			f.cur = []byte(h.line + "\r\n")
			continue
		}
		line, err := f.readCommand()
		if err != nil {
			f.readFailed(err)
			return 0, io.EOF
		}
		f.dispatch(line)
	}
}

// readCommand reads one command line, without its LF and a CR before it.
// A session whose listener stops ends here, at a command boundary
// (errStopping): before the command, even one pipelined and read already,
// or while it is awaited or half read.
func (f *front) readCommand() (string, error) {
	if f.cs.stop.stopped() {
		return "", errStopping
	}
	var line []byte
	for {
		if f.br.Buffered() == 0 {
			// timeoutsmtpd bounds each read, as qmail's timeoutread:
			// a client typing a command slowly is not cut off.
			if !f.cs.stop.await(f.raw, time.Now().Add(f.cs.cfg.Timeout)) {
				return "", errStopping
			}
			_, err := f.br.Peek(1)
			if f.cs.stop.woke() && err != nil && isDeadline(err) {
				return "", errStopping // the deadline was moved by stop
			}
			if err != nil {
				return "", err
			}
		}
		buf, _ := f.br.Peek(f.br.Buffered())
		end := bytes.IndexByte(buf, '\n')
		if end >= 0 {
			buf = buf[:end+1]
		}
		line = append(line, buf...)
		f.br.Discard(len(buf))
		if len(line) > f.cs.cfg.MaxLine {
			return "", errLongCommand
		}
		if end < 0 {
			continue
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return string(line), nil
	}
}

var errLongCommand = errors.New("command line too long")

// isDeadline reports whether err is a read or write that timed out.
func isDeadline(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// readFailed ends the session after a failed command read: a timeout or
// an over-long line get their reply; EOF and read errors end silently.
// All of them make qmail-smtpd exit 1.
func (f *front) readFailed(err error) {
	if f.closed {
		return // go-smtp closed the connection (QUIT)
	}
	switch {
	case errors.Is(err, errStopping):
		f.cs.fatal(textStopping(f.cs.cfg.Greeting))
	case errors.Is(err, errLongCommand):
		f.cs.fatal(textLongCommand)
	case isDeadline(err):
		f.cs.fatal(textTimeout)
	default:
		f.cs.failed.Store(true)
	}
}

// say sends a reply of front's own straight to the client.
func (f *front) say(text string) {
	f.raw.SetWriteDeadline(time.Now().Add(f.cs.cfg.Timeout))
	f.send([]byte(text + "\r\n"))
}

// hand queues a line for go-smtp.
func (f *front) hand(line string, act replyAction) {
	f.queue = append(f.queue, handover{line, act})
}

// dispatch answers or translates one client command.
func (f *front) dispatch(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimLeft(arg, " ")
	// qmail reads the verb and the HELO name as C strings: a NUL ends
	// them ("NOOP\x00x" is NOOP). A NUL in the verb, before the first
	// space, ends the whole line there: qmail looks for that space in
	// the C string, finds none, and takes an empty argument
	// ("MAIL\x00 FROM:<a@b>" is MAIL with no address: the null
	// sender). Addresses with a NUL further on are refused instead
	// (checkAddr).
	if i := strings.IndexByte(verb, 0); i >= 0 {
		verb, arg = verb[:i], ""
	}
	cs := f.cs
	// Verbs fold their ASCII letters only, as qmail's case_equals:
	// strings.ToLower took "MA\u0130L" for MAIL.
	switch address.LowerASCII(verb) {
	case "helo", "ehlo":
		cs.helo = cString(arg)
		f.greeted = true
		text := "250 " + cs.cfg.Greeting
		if address.EqualFoldASCII(verb, "ehlo") {
			text = f.ehloText()
		}
		f.hand(placeholderHelo, expect(250, text))
	case "mail":
		addr, rest := parseAddr(arg)
		addr, ok := f.checkAddr(addr)
		if !ok {
			return
		}
		// A SIZE= over databytes is refused here, before the reset
		// below, so that it leaves the current transaction alone, as
		// a MAIL refused with 555 does.
		if d := cs.cfg.Databytes; d > 0 && minDecoded(sizeParam(rest)) > d {
			f.say(strconv.Itoa(replyDatabytes.Code) + " " + replyDatabytes.Message) // the 552 DATA gives
			return
		}
		cs.nextAddr = addr
		// A new MAIL starts a new transaction: go-smtp is reset first
		// (and greeted, if the client did not; qmail does not ask).
		if f.greeted {
			f.hand("RSET", drop(250))
		} else {
			f.greeted = true
			f.hand(placeholderHelo, drop(250))
		}
		f.hand("MAIL FROM:<>", expect(250, textNoop))
	case "rcpt":
		if !cs.mailed() {
			f.say(textMailFirst)
			return
		}
		addr, _ := parseAddr(arg)
		addr, ok := f.checkAddr(addr)
		if !ok {
			return
		}
		cs.nextAddr = addr
		f.hand("RCPT TO:<x@x>", expect(250, textNoop))
	case "data":
		switch {
		case !cs.mailed():
			f.say(textMailFirst)
		case len(cs.sess.rcpts) == 0:
			f.say(textRcptFirst)
		case !cs.sess.startQueue():
			// As qmail-smtpd: qmail-queue is started before the
			// 354; when it cannot be, the transaction ends.
			f.say(textQQT)
			f.hand("RSET", drop(250))
		default:
			f.hand("DATA", func(r []byte) []byte {
				if replyCode(r) != 354 {
					return r
				}
				f.data, f.qstate, f.dpend = dataBody, qBegin, f.dpend[:0]
				f.hops = hopCount{}
				return []byte(textGoAhead + "\r\n")
			})
		}
	case "rset":
		f.hand("RSET", expect(250, textFlushed))
	case "quit":
		f.hand("QUIT", expect(221, "221 "+cs.cfg.Greeting))
	case "noop":
		f.say(textNoop)
	case "vrfy":
		f.say(textVrfy)
	case "help":
		f.say(textHelp)
	case "starttls":
		f.startTLS(arg)
	default:
		f.say(textUnimpl)
	}
}

// checkAddr applies qmail's checks to a parsed MAIL/RCPT address and
// answers the failures itself.
func (f *front) checkAddr(addr string) (string, bool) {
	addr, res := fixAddr(addr, f.cs.cfg.LocalIPHost, !f.cs.cfg.NoLocalIPHost)
	switch res {
	case addrSyntax:
		f.say(textSyntax)
		return "", false
	case addrNoIPs:
		f.cs.fatal(textNoIPs)
		return "", false
	}
	return addr, true
}

// ehloText is the EHLO reply: the greeting, STARTTLS when a certificate
// is configured and TLS is not yet on (where qmail's TLS patch puts it),
// qmail's PIPELINING and 8BITMIME, then SIZE.
func (f *front) ehloText() string {
	lines := []string{f.cs.cfg.Greeting}
	if f.cs.cfg.TLS != nil && !f.tls {
		lines = append(lines, "STARTTLS")
	}
	lines = append(lines, "PIPELINING", "8BITMIME")
	if d := f.cs.cfg.Databytes; d > 0 {
		lines = append(lines, "SIZE "+strconv.FormatInt(d, 10))
	} else {
		lines = append(lines, "SIZE")
	}
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == len(lines)-1 {
			b.WriteString("250 ")
		} else {
			b.WriteString("250-")
		}
		b.WriteString(l)
	}
	return b.String()
}

// startTLS answers STARTTLS: the handshake is done here, under front, and
// the session starts afresh (RFC 3207).
func (f *front) startTLS(arg string) {
	if f.cs.cfg.TLS == nil || f.tls {
		f.say(textUnimpl)
		return
	}
	if strings.TrimSpace(arg) != "" {
		f.say(textTLSParams) // RFC 3207 §4: STARTTLS takes none
		return
	}
	// Whatever the client pipelined after STARTTLS was sent in clear
	// text: drop it rather than take it as said under TLS.
	f.br.Discard(f.br.Buffered())
	f.say(textTLSReady)
	tc := tls.Server(f.plain, f.cs.cfg.TLS)
	tc.SetDeadline(time.Now().Add(f.cs.cfg.Timeout))
	if err := tc.Handshake(); err != nil {
		f.cs.log.Printf("TLS handshake with %s: %s", f.cs.peer.RemoteIP, tlsReason(err))
		f.cs.failed.Store(true)
		f.closed = true
		f.plain.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	f.raw, f.br, f.tls = tc, bufio.NewReaderSize(tc, 4096), true
	f.cs.helo = f.cs.peer.RemoteHost
	if f.greeted {
		f.hand("RSET", drop(250))
	}
}

// The DATA states of front's message reader: qmail-smtpd's rules over
// the bytes as they arrive.
const (
	qBegin = iota // beginning of a line (also the start of the message)
	qText         // inside a line
	qCR           // after a CR
	qDot          // after a '.' at the beginning of a line (removed)
	qDotCR        // after "." CR at the beginning of a line
)

// The DATA modes of front.
const (
	dataNone  = iota
	dataBody  // the session reads the message through bodyReader
	dataDrain // the message ended: go-smtp's own reader is given "." CRLF
)

// bodyReader is the message of a DATA command as the session reads it:
// the client's bytes with qmail-smtpd's DATA rules applied by front
// itself, so that they are qmail's and not go-smtp's: a '.' at the
// beginning of a line is removed, CR LF "." CR LF ends the message (the
// start counting as a beginning of a line, and a CR before CR LF being
// an ordinary byte), and everything else is passed on, CRs and bare LFs
// included, for body to decode (CR LF to LF, bare LF fatal, lines longer
// than MaxLine refused at the end). Every byte read is also given to
// front's hopCount, which body consults. Read returns io.EOF at the end of
// the message, and never reads past it.
type bodyReader struct{ f *front }

func (r bodyReader) Read(p []byte) (int, error) {
	f := r.f
	n := 0
	for n < len(p) {
		if len(f.dpend) > 0 {
			p[n] = f.dpend[0]
			f.dpend = f.dpend[1:]
			n++
			continue
		}
		if f.data != dataBody {
			return n, io.EOF
		}
		if n > 0 && f.br.Buffered() == 0 {
			return n, nil // hand out what there is, as it arrives
		}
		c, err := f.br.ReadByte()
		if err == io.EOF {
			// The client went away: io.EOF would mean the end of
			// the message, and it would be queued.
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return n, err
		}
		// Hops are counted before the dot-stuffing is undone, as qmail
		// counts them: a line sent as ".Received: x" is no hop.
		f.hops.add(c)
		f.decode(c)
	}
	return n, nil
}

// decode runs one input byte through the DATA state machine, queueing
// the output bytes in dpend.
func (f *front) decode(c byte) {
	switch f.qstate {
	case qBegin:
		if c == '.' {
			f.qstate = qDot
			return
		}
	case qCR:
		f.dpend = append(f.dpend, c)
		switch c {
		case '\n':
			f.qstate = qBegin
		case '\r':
		default:
			f.qstate = qText
		}
		return
	case qDot:
		if c == '\r' {
			f.qstate = qDotCR
			return
		}
	case qDotCR:
		if c == '\n' {
			f.data = dataDrain
			return
		}
		// "." CR was not the end: qmail's blast() gives back both the
		// dot and the CR (only a dot before anything else but CR is
		// dot-stuffing).
		f.dpend = append(f.dpend, '.', '\r')
		f.qstate = qCR
		f.decode(c)
		return
	}
	f.dpend = append(f.dpend, c)
	if c == '\r' {
		f.qstate = qCR
	} else {
		f.qstate = qText
	}
}

// Write collects go-smtp's replies and sends each, through the action of
// the line it answers.
func (f *front) Write(p []byte) (n int, err error) {
	defer f.contain(&err)
	f.wbuf = append(f.wbuf, p...)
	for {
		end := replyEnd(f.wbuf)
		if end < 0 {
			if len(f.wbuf) > maxReply {
				err := f.send(f.wbuf)
				f.wbuf = f.wbuf[:0]
				if err != nil {
					return 0, err
				}
			}
			return len(p), nil
		}
		r := f.wbuf[:end]
		if f.act != nil {
			r = f.act(r)
			f.act = nil
		}
		err := f.send(r)
		f.wbuf = append(f.wbuf[:0], f.wbuf[end:]...)
		if err != nil {
			return 0, err
		}
	}
}

// send writes b to the client. A write that fails or times out ends the
// session (qmail: exit silently).
// go-smtp ignores its reply writes' errors and would go on reading, so a
// client that sends and never reads would keep the session, a reply's
// timeout at a time, for as long as it likes.
func (f *front) send(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := f.raw.Write(b)
	if err != nil && !f.closed {
		f.cs.failed.Store(true)
		f.closed = true
		f.raw.Close()
	}
	return err
}

// replyEnd returns the length of the first complete reply in b (through
// the LF of its last line, the one without '-' after the code), or -1.
func replyEnd(b []byte) int {
	start := 0
	for {
		i := bytes.IndexByte(b[start:], '\n')
		if i < 0 {
			return -1
		}
		line := b[start : start+i+1]
		start += i + 1
		if len(line) < 4 || line[3] != '-' {
			return start
		}
	}
}

func (f *front) Close() error {
	f.closed = true
	return f.raw.Close()
}

func (f *front) LocalAddr() net.Addr  { return f.plain.LocalAddr() }
func (f *front) RemoteAddr() net.Addr { return f.plain.RemoteAddr() }

func (f *front) SetDeadline(t time.Time) error      { return f.raw.SetDeadline(t) }
func (f *front) SetReadDeadline(t time.Time) error  { return f.raw.SetReadDeadline(t) }
func (f *front) SetWriteDeadline(t time.Time) error { return f.raw.SetWriteDeadline(t) }

// parseAddr is qmail-smtpd's MAIL/RCPT argument parser: with a '<', the
// address is what follows it up to an unquoted '>'; without, what follows
// the first ':' (spaces skipped) up to a space. A leading source route
// "@a,@b:" is dropped, double quotes are removed and a backslash takes
// the next byte literally. rest is what follows the address (the ESMTP
// parameters).
func parseAddr(arg string) (addr, rest string) {
	term := byte('>')
	if i := strings.IndexByte(arg, '<'); i >= 0 {
		arg = arg[i+1:]
	} else {
		term = ' '
		if i := strings.IndexByte(arg, ':'); i >= 0 {
			arg = arg[i+1:]
		} else {
			arg = ""
		}
		arg = strings.TrimLeft(arg, " ")
	}
	if strings.HasPrefix(arg, "@") {
		if i := strings.IndexByte(arg, ':'); i >= 0 {
			arg = arg[i+1:]
		} else {
			arg = ""
		}
	}
	var b strings.Builder
	esc, quoted := false, false
	i := 0
	for ; i < len(arg); i++ {
		c := arg[i]
		if esc {
			b.WriteByte(c)
			esc = false
			continue
		}
		if !quoted && c == term {
			i++
			break
		}
		switch c {
		case '\\':
			esc = true
		case '"':
			quoted = !quoted
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), arg[i:]
}

// sizeParam returns the value of a SIZE= parameter (RFC 1870) among the
// ESMTP parameters, 0 when there is none or it is not a number. A number
// too large for an int64 is larger than any databytes: MaxInt64.
func sizeParam(rest string) int64 {
	for _, p := range strings.Fields(rest) {
		if len(p) > 5 && strings.EqualFold(p[:5], "SIZE=") {
			n, err := strconv.ParseInt(p[5:], 10, 64)
			if errors.Is(err, strconv.ErrRange) && n > 0 {
				return math.MaxInt64
			}
			if err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// cString is s up to its first NUL byte.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// maxTLSReason bounds the reason logged for a failed TLS handshake.
const maxTLSReason = 200

// tlsReason is a failed handshake's reason for the log, cut to
// maxTLSReason bytes: crypto/tls puts what the client offered into some
// of its errors ("client offered: [...]", every cipher suite of a
// ClientHello of 64 KB), and the client would decide the size of the line.
func tlsReason(err error) string {
	r := err.Error()
	if len(r) <= maxTLSReason {
		return r
	}
	return strings.ToValidUTF8(r[:maxTLSReason], "") + "..."
}
