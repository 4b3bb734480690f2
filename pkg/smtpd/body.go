package smtpd

import (
	"errors"
	"io"
)

// MaxHops is qmail's loop limit: this many Received/Delivered header lines
// or more and the message is refused.
const MaxHops = 100

// errBareLF ends a DATA transfer that contains a LF without CR before it.
var errBareLF = errors.New("bare LF in DATA")

// body turns the message as go-smtp delivers it into what qmail-queue is
// given, with qmail-smtpd's rules: CRLF becomes LF, a CR not followed by
// LF is kept, a bare LF is fatal (DATA only), the message is refused when
// hops (Received/Delivered header lines, counted by front on the bytes as
// they came over the wire) reached MaxHops, and the decoded size is held
// against databytes.
//
// front's bodyReader has already removed dot-stuffing and the final ".",
// but it keeps CR LF pairs. It hands out only what the client has sent so
// far, so body may ask it for a block: a bare LF is still answered at
// once, as qmail does, even when the client then waits.
//
// After databytes is exceeded, MaxHops reached or a line longer than
// maxLine seen, nothing more is passed on but input is still consumed to
// the end, and Read then fails with the reply (hops take precedence, then
// databytes, as in qmail). A Read error always means "do not queue". The
// long line is answered after the end of the message, as databytes is: a
// reply sent (and the connection closed) while the client was still
// sending reached almost no client, who saw a reset connection and tried
// again later.
type body struct {
	src     io.Reader
	limit   int64  // databytes, 0 = none
	maxLine int    // longest line, CR and LF included; 0 = none
	refresh func() // extends the read deadline; may be nil. Called after
	// every read that brought input, so that timeoutsmtpd bounds each
	// wait for the client, as qmail's per-read timeout does, never the
	// transfer as a whole (a slow but steady client is not cut off).

	scratch [4096]byte
	small   [2]byte
	pending []byte // decoded bytes not yet handed out (reads of 1 byte)
	srcEOF  bool
	fin     error // set once the body is finished (io.EOF or a reply)

	hops *hopCount // the message's hop count; nil: not counted

	cr      bool // a CR is pending
	size    int64
	over    bool
	rawLine int // bytes of the current input line, before its LF
	long    bool
	readErr error // error of the source (client gone, timeout, long line)
}

func newBody(src io.Reader, limit int64, refresh func()) *body {
	return &body{src: src, limit: limit, refresh: refresh}
}

// looping reports whether the hop count has reached MaxHops.
func (b *body) looping() bool { return b.hops != nil && b.hops.n >= MaxHops }

// hopCount counts the Received and Delivered lines of a message's header
// the way qmail-smtpd does: on the lines as the client sent them, before
// the dot-stuffing is undone. A line that starts with "received" or
// "delivered", in any mix of case, counts (so does "Received-SPF:"); a
// continuation line does not (it starts with a blank), nor does a line sent
// as ".Received: x", although "Received: x" is what it becomes; the header
// ends with the first empty line, CR LF alone.
type hopCount struct {
	n      int     // lines counted
	line   [9]byte // the start of the current line
	pos    int     // bytes of the current line so far (LF excluded)
	inBody bool    // the empty line ending the header has gone by
}

// add takes the next byte of the message as it came over the wire.
func (h *hopCount) add(c byte) {
	if h.inBody {
		return
	}
	if c == '\n' {
		if h.pos == 1 && h.line[0] == '\r' {
			h.inBody = true
		}
		h.pos = 0
		return
	}
	if h.pos < len(h.line) {
		h.line[h.pos] = c
	}
	h.pos++
	if (h.pos == 8 && foldEq(h.line[:8], "received")) ||
		(h.pos == 9 && foldEq(h.line[:9], "delivered")) {
		h.n++
	}
}

func (b *body) Read(p []byte) (int, error) {
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		if len(b.pending) > 0 {
			return n, nil
		}
		return n, b.fin
	}
	if b.fin != nil {
		return 0, b.fin
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) < 2 {
		// Decoding needs room for two bytes (a held-back CR and the
		// byte after it); hand out the second one on the next call.
		n, err := b.Read(b.small[:])
		c := copy(p, b.small[:n])
		b.pending = b.small[c:n]
		if len(b.pending) > 0 {
			return c, nil
		}
		return c, err
	}
	n := 0
	for {
		if b.srcEOF {
			if b.cr {
				if n == len(p) {
					return n, nil
				}
				b.cr = false
				n = b.emit('\r', p, n)
			}
			b.fin = b.finish()
			return n, b.fin
		}
		if n+2 > len(p) {
			return n, nil
		}
		// Each input byte makes at most one output byte, plus a CR
		// held back before it: leave room for that one.
		in := b.scratch[:min(len(b.scratch), len(p)-n-1)]
		k, err := b.src.Read(in)
		for _, c := range in[:k] {
			n = b.decode(c, p, n)
			if b.fin != nil {
				return n, b.fin
			}
		}
		if k > 0 && b.refresh != nil {
			b.refresh()
		}
		if err == io.EOF {
			b.srcEOF = true
		} else if err != nil {
			b.readErr = err
			b.fin = err
			return n, err
		}
	}
}

func (b *body) decode(c byte, p []byte, n int) int {
	if c == '\n' {
		b.rawLine = 0
	} else if b.rawLine++; b.maxLine > 0 && b.rawLine >= b.maxLine {
		b.long = true
	}
	if b.cr {
		b.cr = false
		if c == '\n' {
			return b.emit('\n', p, n)
		}
		n = b.emit('\r', p, n)
	}
	switch c {
	case '\r':
		b.cr = true
		return n
	case '\n':
		b.fin = errBareLF
		return n
	}
	return b.emit(c, p, n)
}

func (b *body) emit(c byte, p []byte, n int) int {
	b.size++
	if b.limit > 0 && b.size > b.limit {
		b.over = true
	}
	if b.over || b.looping() || b.long {
		return n
	}
	p[n] = c
	return n + 1
}

// finish is the result at the end of the message.
func (b *body) finish() error {
	switch {
	case b.looping():
		return replyTooManyHops
	case b.over:
		return replyDatabytes
	case b.long:
		return replyLongLine
	}
	return io.EOF
}

// foldEq compares ASCII letters ignoring case.
func foldEq(b []byte, s string) bool {
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
