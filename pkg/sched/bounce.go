package sched

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/qdate"
)

// A bounce is written as a stream, never held whole: bounce/ID grows by a
// paragraph per failed recipient, and recipients per message have no
// limit, so any local user can make it as large as the disk allows.
// qmail-send reads it through fixed buffers: in the qmail format once,
// copied as it is; in the DSN format first for what the head must say
// before the report (ASCII or UTF-8, a recipient address that is no
// ASCII, a boundary that no line of it starts with), then again for the
// text part and once more for the recipients' fields, each paragraph's
// fields written as it is read. The file does not change meanwhile:
// qmail-send appends to it (qmailctl only while qmail-send is stopped),
// and not while it bounces the message.

// bounceBufSize is the size of each buffer a bounce is read and written
// through.
const bounceBufSize = 64 << 10

// maxParagraph is the most bytes of one paragraph of bounce/ID held in
// memory for its DSN fields: of a longer paragraph only the first
// maxParagraph bytes make the fields (the text part still quotes it
// whole). The scheduler never writes one that long: an address has at
// most qq.MaxAddr bytes and a report at most spawnproto.MaxReport.
const maxParagraph = 64 << 10

// maxTextLine is the longest line of a DSN's text part: RFC 5322's 998
// bytes. pickBoundary scans the report broken as the text part is.
const maxTextLine = 998

// bounce holds what a bounce message is made of.
type bounce struct {
	date   time.Time
	from   string // bouncefrom
	host   string // bouncehost
	sender string // original sender, "-@[]" removed; "" = double bounce
	dbto   string // doublebounceto@doublebouncehost
	// report is bounce/ID, read through ReadAt in passes, never whole.
	report     *io.SectionReader
	dsn        bool
	id         uint64
	reportHost string
	// orig is the original message (mess/ID), read (ReadAt: the copy's
	// offset stays) only to find what a DSN's last part is labelled
	// (8-bit bytes, binary lines); nil: taken as 7-bit.
	orig io.ReaderAt
	// nonce, when set, goes into a DSN's boundary after the id and date
	// (qmail-send sets it from the clock's nanoseconds; see pickBoundary).
	nonce string
	// bufSize, when not 0, replaces bounceBufSize (tests make it small
	// to cross buffer ends everywhere).
	bufSize int

	// What prepare learns about the report and the original (DSN only).
	prepared             bool
	boundary             string
	reportASCII          bool // no byte of the report is 8-bit
	reportUTF8           bool // the report is valid UTF-8
	global               bool // a recipient's address is not ASCII
	origHead8, origBody8 bool
	origBinary           bool // the last part is binary (RFC 2045 §2.9)
}

// prepare makes the first pass over the report that a DSN's head needs
// (nothing for qmail's format). It must come before writeHead and tail;
// its error is one of reading the report.
func (b *bounce) prepare() error {
	b.prepared = true
	if !b.dsn {
		return nil
	}
	var err error
	b.reportASCII, b.reportUTF8, err = scanText(b.reportReader(), b.bufLen())
	if err != nil {
		return err
	}
	b.global = false
	err = eachParagraph(b.reportReader(), b.bufLen(), func(para []byte) error {
		if recip, _, ok := splitParagraph(para); ok && !isASCII(recip) {
			b.global = true // RFC 6533: an address only utf-8 can name
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.origHead8, b.origBody8, b.origBinary = scanOrig(b.orig)
	if !isASCII([]byte(b.sender)) {
		b.origHead8 = true // the Return-Path line
	}
	if len("Return-Path: <"+headerAddress(b.sender)+">") > maxTextLine {
		b.origBinary = true // a sender of up to qq.MaxAddr bytes
	}
	base := "hqmail-dsn-" + utoa(b.id) + "-" + strings.ReplaceAll(qdate.Header(b.date), " ", ".")
	if b.nonce != "" {
		base += "-" + b.nonce
	}
	b.boundary = pickBoundary(strings.ReplaceAll(base, ":", "."), b.report, b.orig)
	return nil
}

func (b *bounce) bufLen() int {
	if b.bufSize > 0 {
		return b.bufSize
	}
	return bounceBufSize
}

// reportReader reads the report from its start (a reader of its own: the
// passes do not share an offset).
func (b *bounce) reportReader() io.Reader {
	return io.NewSectionReader(b.report, 0, b.report.Size())
}

// tail returns the bytes after the copied message.
func (b *bounce) tail() []byte {
	if !b.dsn {
		return nil
	}
	return []byte("\n--" + b.boundary + "--\n")
}

// writeHead writes the bounce up to the copied message (which follows
// its Return-Path line), reading the report through fixed buffers.
func (b *bounce) writeHead(out io.Writer) error {
	if !b.prepared {
		if err := b.prepare(); err != nil {
			return err
		}
	}
	w := bufio.NewWriterSize(out, b.bufLen())
	double := b.sender == ""
	to := b.sender
	if double {
		to = b.dbto
	}
	w.WriteString("Date: " + qdate.Header(b.date) + "\n")
	w.WriteString("From: " + address.QuoteLocal(noLineBreak(b.from)) + "@" + noLineBreak(b.host) + "\n")
	w.WriteString("To: " + headerAddress(to) + "\n")
	w.WriteString("Subject: failure notice\n")
	if b.dsn {
		reportType := "delivery-status"
		if b.global {
			reportType = "global-delivery-status" // the second part's subtype (RFC 6522)
		}
		w.WriteString("MIME-Version: 1.0\n")
		w.WriteString("Content-Type: multipart/report; report-type=" + reportType + ";\n\tboundary=\"" + b.boundary + "\"\n")
		// A multipart is 8bit when a part is, binary when a part is
		// (RFC 2045 §6.4, RFC 2046 §5.1).
		switch {
		case b.origBinary:
			w.WriteString("Content-Transfer-Encoding: binary\n")
		case b.global || b.origHead8 || b.origBody8 || !b.reportASCII:
			w.WriteString("Content-Transfer-Encoding: 8bit\n")
		}
		w.WriteString("\nThis is a MIME-formatted message.\n\n--" + b.boundary + "\n")
		// The report quotes remote replies as they came: any bytes.
		switch {
		case b.reportASCII:
			w.WriteString("Content-Type: text/plain; charset=us-ascii\n")
		case b.reportUTF8:
			// UTF-8 addresses, UTF-8 replies (RFC 6532, RFC 6533).
			w.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n")
		default:
			// RFC 1428; without the encoding it would be read as 7bit
			// (RFC 2045 §6.1).
			w.WriteString("Content-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: 8bit\n")
		}
	}
	w.WriteString("\nHi. This is the qmail-send program at " + noLineBreak(b.host) + ".\n")
	if double {
		w.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
	} else {
		w.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\n")
		w.WriteString("This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
	}
	if b.dsn {
		// A MIME part keeps RFC 5322's 998-byte lines: a long remote
		// reply is broken (qmail's own format keeps it as it came).
		lb := &lineBreaker{w: w, max: maxTextLine}
		if _, err := io.CopyBuffer(lb, b.reportReader(), make([]byte, b.bufLen())); err != nil {
			return err
		}
		if err := lb.Close(); err != nil {
			return err
		}
	} else if _, err := io.Copy(w, b.reportReader()); err != nil {
		return err
	}
	if b.dsn {
		w.WriteString("\n--" + b.boundary + "\n")
		if b.global {
			// RFC 6533: the utf-8 address type needs this part, 8-bit.
			w.WriteString("Content-Type: message/global-delivery-status\nContent-Transfer-Encoding: 8bit\n\n")
		} else {
			w.WriteString("Content-Type: message/delivery-status\n\n")
		}
		w.WriteString("Reporting-MTA: dns; " + noLineBreak(b.reportHost) + "\n")
		err := eachParagraph(b.reportReader(), b.bufLen(), func(para []byte) error {
			p, ok := parseParagraph(para)
			if !ok {
				return nil
			}
			w.WriteString("\nFinal-Recipient: " + recipientField(p.recip) + "\n")
			w.WriteString("Action: failed\n")
			w.WriteString("Status: " + p.status + "\n")
			_, err := w.WriteString(diagnosticField(p.diag))
			return err // the reader may be gone: stop reading for nothing
		})
		if err != nil {
			return err
		}
		w.WriteString("\n--" + b.boundary + "\n")
		if b.origHead8 {
			// 8-bit header fields are RFC 6532's message/global.
			w.WriteString("Content-Type: message/global\n")
		} else {
			w.WriteString("Content-Type: message/rfc822\n")
		}
		// A NUL or a line over 998 bytes is not 8bit data but binary
		// (RFC 2045 §2.8, §2.9); without a label it would be read as
		// 7bit (§6.1).
		switch {
		case b.origBinary:
			w.WriteString("Content-Transfer-Encoding: binary\n\n")
		case b.origHead8 || b.origBody8:
			w.WriteString("Content-Transfer-Encoding: 8bit\n\n")
		default:
			w.WriteString("\n")
		}
	} else if double {
		w.WriteString("--- Below this line is the original bounce.\n\n")
	} else {
		w.WriteString("--- Below this line is a copy of the message.\n\n")
	}
	w.WriteString("Return-Path: <" + headerAddress(b.sender) + ">\n")
	return w.Flush() // the first error of any write above
}

// headerAddress is addr as a header line of the bounce shows it: its
// local part quoted as qmail quotes it, after every CR, LF and NUL has
// become '_'. qmail writes a line break after a backslash, but the
// backslash does not keep the header line from ending there: a sender
// such as "a\nBcc: victim@x" (qmail-inject -f, qmail-queue) would add
// header fields to the bounce sent to it. The bounce still goes to the
// address as it is; only the lines shown change. qmail-local shows a
// newline of the sender as '_' in its Return-Path line too (after the
// quoting, so behind a backslash there).
func headerAddress(addr string) string {
	return address.Quote(noLineBreak(addr))
}

// noLineBreak returns s with every CR, LF and NUL made '_': a text that
// cannot end the header line it is written into (a line break of
// either kind ends it for some reader). s without them comes back as
// it is.
func noLineBreak(s string) string {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' || c == 0 {
			b[i] = '_'
		}
	}
	return string(b)
}

// failure is one recipient's paragraph of bounce/ID.
type failure struct{ recip, status, diag string }

var (
	statusRe = regexp.MustCompile(`#([245]\.[0-9]{1,3}\.[0-9]{1,3})`)
	// A remote reply's own enhanced code (RFC 3463) after its 5xx code.
	remoteStatusRe = regexp.MustCompile(`Remote host said: 5[0-9][0-9][ -](5\.[0-9]{1,3}\.[0-9]{1,3})\b`)
)

// eachParagraph calls fn with each paragraph of the report read from r,
// split at every "\n\n" from left to right, as strings.Split would split
// the whole, each cut to its first maxParagraph bytes. fn's argument is
// only valid during the call. An error of fn stops the walk and is
// returned, as is one of reading r.
func eachParagraph(r io.Reader, bufSize int, fn func(para []byte) error) error {
	br := bufio.NewReaderSize(r, bufSize)
	held := make([]byte, 0, min(maxParagraph, bufSize))
	var n int64     // the paragraph's length so far (held is its start)
	lastNL := false // the paragraph's last byte so far is '\n'
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if lastNL && chunk[0] == '\n' {
				// "\n\n" ends the paragraph before them. ReadSlice
				// stopped at this '\n': chunk holds nothing else.
				if ferr := fn(held[:min(int64(len(held)), n-1)]); ferr != nil {
					return ferr
				}
				held, n, lastNL = held[:0], 0, false
			} else {
				held = append(held, chunk[:min(len(chunk), maxParagraph-len(held))]...)
				n += int64(len(chunk))
				lastNL = chunk[len(chunk)-1] == '\n'
			}
		}
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			return fn(held)
		default:
			return err
		}
	}
}

// splitParagraph finds a failure paragraph's recipient and text; ok is
// false for a paragraph that names none.
func splitParagraph(para []byte) (recip, text []byte, ok bool) {
	// A report text that ends in an empty line keeps it (the rule
	// looks at a paragraph without its last byte), and the next
	// paragraph then starts after one more newline.
	para = bytes.TrimLeft(para, "\n")
	if len(para) == 0 || para[0] != '<' {
		return nil, nil, false
	}
	i := bytes.Index(para, []byte(">:\n"))
	if i < 0 {
		if !bytes.HasSuffix(para, []byte(">:")) {
			return nil, nil, false
		}
		return para[1 : len(para)-2], nil, true
	}
	return para[1:i], para[i+3:], true
}

// parseParagraph reads one recipient's failure from a paragraph of
// bounce/ID for the DSN part.
func parseParagraph(para []byte) (failure, bool) {
	r, t, ok := splitParagraph(para)
	if !ok {
		return failure{}, false
	}
	text := string(t)
	f := failure{recip: string(r), status: "5.0.0"}
	if m := statusRe.FindStringSubmatch(text); m != nil && m[1][0] == '5' {
		f.status = m[1]
	} else if m := remoteStatusRe.FindStringSubmatch(text); m != nil {
		f.status = m[1]
	}
	// Header fields are ASCII (RFC 3464): every other byte becomes
	// '?'. Bytes, not characters: a remote reply's charset is
	// unknown, and "M\xfcller" and "M\xc3\xbcller" are the same
	// name in two charsets (qmail-send(8) says so).
	diag := []byte(strings.Join(strings.Fields(text), " "))
	for j, c := range diag {
		if c < 0x20 || c > 0x7e {
			diag[j] = '?'
		}
	}
	f.diag = string(diag)
	f.recip = strings.ReplaceAll(f.recip, "\n", "_")
	return f, true
}

// lineBreaker passes text on to w with every line longer than max bytes
// broken into lines of at most max bytes, never inside a UTF-8
// character. It holds at most max+utf8.UTFMax bytes of a line; Close
// passes on the last line when the text does not end in a newline.
type lineBreaker struct {
	w    io.Writer
	max  int
	line []byte // the current line's bytes not passed on yet
}

func (lb *lineBreaker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		seg, rest, nl := bytes.Cut(p, []byte{'\n'})
		p = rest
		for len(seg) > 0 {
			k := min(len(seg), lb.max+utf8.UTFMax-len(lb.line))
			lb.line = append(lb.line, seg[:k]...)
			seg = seg[k:]
			// The cut looks at most UTFMax-1 bytes past max: with
			// max+UTFMax bytes it is where the whole line's would be.
			if len(lb.line) == lb.max+utf8.UTFMax {
				if err := lb.cut(); err != nil {
					return 0, err
				}
			}
		}
		if nl {
			if err := lb.endLine("\n"); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// cut passes on the line's first piece.
func (lb *lineBreaker) cut() error {
	c := charStart(lb.line, lb.max)
	if _, err := lb.w.Write(lb.line[:c]); err != nil {
		return err
	}
	if _, err := lb.w.Write([]byte{'\n'}); err != nil {
		return err
	}
	lb.line = lb.line[:copy(lb.line, lb.line[c:])]
	return nil
}

// endLine passes on the rest of a line that ends (with nl after it).
func (lb *lineBreaker) endLine(nl string) error {
	for len(lb.line) > lb.max {
		if err := lb.cut(); err != nil {
			return err
		}
	}
	if _, err := lb.w.Write(lb.line); err != nil {
		return err
	}
	lb.line = lb.line[:0]
	if nl == "" {
		return nil
	}
	_, err := io.WriteString(lb.w, nl)
	return err
}

// Close passes on a last line that has no newline.
func (lb *lineBreaker) Close() error { return lb.endLine("") }

// charStart returns i, or the start of the UTF-8 character that s[i]
// is inside of (at most 3 bytes back): where s may be cut before i.
func charStart(s []byte, i int) int {
	for j := i; j > 0 && j > i-utf8.UTFMax; j-- {
		if !utf8.RuneStart(s[j]) {
			continue
		}
		if j == i {
			return i
		}
		if r, n := utf8.DecodeRune(s[j:]); (r != utf8.RuneError || n > 1) && j+n > i {
			return j
		}
		return i // no character across i: not UTF-8 there
	}
	return i
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// scanText reports whether the text read from r is ASCII and whether it
// is valid UTF-8, reading it through a buffer of bufSize bytes.
func scanText(r io.Reader, bufSize int) (ascii, valid bool, err error) {
	ascii, valid = true, true
	buf := make([]byte, max(bufSize, 2*utf8.UTFMax))
	kept := 0 // bytes at buf's start: a character the last read cut short
	for {
		n, err := r.Read(buf[kept:])
		data := buf[:kept+n]
		ascii = ascii && isASCII(data[kept:])
		// Hold back a character the read may have cut: from the last
		// byte that starts one, when fewer bytes than it needs follow.
		end := len(data)
		for j := len(data) - 1; j >= 0 && j > len(data)-utf8.UTFMax; j-- {
			if utf8.RuneStart(data[j]) {
				if !utf8.FullRune(data[j:]) {
					end = j
				}
				break
			}
		}
		if err == io.EOF {
			return ascii, valid && utf8.Valid(data), nil
		}
		if err != nil {
			return false, false, err
		}
		valid = valid && utf8.Valid(data[:end])
		kept = copy(buf, data[end:])
	}
}

// diagnosticField is a recipient's Diagnostic-Code field for failure
// report text diag, folded (foldField). An empty report leaves the field
// at its type ("x-qmail;", as RFC 3464's grammar allows), with no blank
// at the end of the line.
func diagnosticField(diag string) string {
	if diag == "" {
		return foldField("Diagnostic-Code: x-qmail;")
	}
	return foldField("Diagnostic-Code: x-qmail; " + diag)
}

// foldField renders a header field folded at spaces into lines of at most
// 78 bytes where the words allow, and never over 998 (RFC 5322 2.1.1): a
// longer word is cut there.
func foldField(f string) string {
	const soft, hard = 78, 998
	var b strings.Builder
	line := 0
	for i, w := range strings.Split(f, " ") {
		if len(w) > hard-1 {
			w = w[:hard-1]
		}
		switch {
		case i == 0:
		case line+1+len(w) > soft && line > 1:
			b.WriteString("\n ")
			line = 1
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteByte('\n')
	return b.String()
}

// pickBoundary returns base, or base with a suffix, such that no line of
// the failure report (quoted in the first part) or of the original
// message orig (copied whole into the last part) starts with "--" and
// it: RFC 2046 5.1.1 forbids a boundary inside an encapsulated part. The id and time in base are not enough alone: a
// bounce forwarded back (a .qmail forward, a list) and bounced again in
// the same second can carry an earlier DSN of the same id, as ids are
// inode numbers and come back quickly. The nonce makes that an unlikely
// coincidence, and the scan rules it out. The report is scanned as the
// text part will show it, its long lines broken at 998 bytes: a break
// starts a line too.
func pickBoundary(base string, report, orig io.ReaderAt) string {
	b := base
	for n := 1; n <= 100 && (containsDelimiter(report, "--"+b, maxTextLine) || containsDelimiter(orig, "--"+b, 0)); n++ {
		b = base + "." + strconv.Itoa(n)
	}
	return b
}

// containsDelimiter reports whether a line of r starts with delim, its
// lines broken by a lineBreaker of max breakAt first when breakAt > 0.
// A CR starts a line as LF does: some MIME readers take a bare CR for a
// line break. A read error ends the scan.
func containsDelimiter(r io.ReaderAt, delim string, breakAt int) bool {
	if r == nil {
		return false
	}
	d := &delimScan{delim: delim, lineStart: true}
	var w io.Writer = d
	var lb *lineBreaker
	if breakAt > 0 {
		lb = &lineBreaker{w: d, max: breakAt}
		w = lb
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		off += int64(n)
		if _, werr := w.Write(buf[:n]); werr != nil {
			return d.found
		}
		if err != nil || n == 0 {
			break
		}
	}
	if lb != nil {
		lb.Close()
	}
	return d.found
}

// errDelimFound stops a scan at the first delimiter.
var errDelimFound = errors.New("delimiter found")

// delimScan is a writer that looks for delim at the start of every line
// written to it.
type delimScan struct {
	delim     string
	lineStart bool // no byte but delim's first matched bytes since a line break
	matched   int  // bytes of delim matched at this line's start
	found     bool
}

func (d *delimScan) Write(p []byte) (int, error) {
	for _, c := range p {
		switch {
		case c == '\n' || c == '\r':
			d.lineStart, d.matched = true, 0
		case d.lineStart && c == d.delim[d.matched]:
			d.matched++
			if d.matched == len(d.delim) {
				d.found = true
				return 0, errDelimFound
			}
		default:
			d.lineStart = false
		}
	}
	return len(p), nil
}

// scan8bit is scanOrig without the binary answer (what the bounce
// before streaming, kept by the tests as their reference, asks).
func scan8bit(r io.ReaderAt) (head8, body8 bool) {
	head8, body8, _ = scanOrig(r)
	return head8, body8
}

// scanOrig reports whether the original message has bytes >= 0x80 in
// its header (up to the first empty line) and in its body, and whether
// it is binary data (RFC 2045 §2.9): a NUL anywhere, or a line of more
// than maxTextLine bytes, its LF not counted nor a CR just before it
// (the LF goes out as CR LF, and a CR LF as one CR LF). A bare CR counts
// as a byte of its line. The last line, unterminated, is counted too:
// the bounce's closing boundary ends it. The scan reads the message at
// most once through (the copy reads it all anyway), and stops when
// nothing more is to be learnt. A read error counts as all three (a
// harmless label; the copy will fail the same way).
func scanOrig(r io.ReaderAt) (head8, body8, binary bool) {
	if r == nil {
		return false, false, false
	}
	buf := make([]byte, 64<<10)
	inHead, lineStart := true, true // the Return-Path line comes before
	lineLen, prevCR := 0, false     // bytes of this line so far; its last was CR
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		off += int64(n)
		for _, c := range buf[:n] {
			if !binary {
				switch {
				case c == 0:
					binary = true
				case c == '\n':
					if prevCR {
						lineLen--
					}
					if lineLen > maxTextLine {
						binary = true
					}
					lineLen = -1 // the LF, counted below
				}
				lineLen++
				prevCR = c == '\r'
			}
			switch {
			case !inHead:
				if c >= 0x80 {
					body8 = true
				}
			case c == '\n':
				inHead = !lineStart
				lineStart = true
			case c == '\r' && lineStart:
			default:
				lineStart = false
				if c >= 0x80 {
					head8 = true
				}
			}
			if binary && body8 {
				return head8, body8, binary
			}
		}
		if err == io.EOF {
			if prevCR {
				lineLen--
			}
			if lineLen > maxTextLine {
				binary = true
			}
			return head8, body8, binary
		}
		if err != nil {
			return true, true, true
		}
	}
}

// maxRecipField is the most bytes of an address a Final-Recipient field
// shows (see recipientField).
const maxRecipField = 400

// recipientField is a Final-Recipient value: the rfc822 address type for
// an ASCII address, RFC 6533's utf-8 type for another (its characters
// as they are, a local part quoted only where RFC 6531 needs it; bytes
// that are no UTF-8 become U+FFFD).
func recipientField(addr string) string {
	// A control character (a CR, say, which qmail-inject lets into a
	// quoted local part) has no place in a header field, quoted or not:
	// it is shown as '_', as parseReport shows a newline.
	addr = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '_'
		}
		return r
	}, addr)
	// A header line stays under 998 bytes (RFC 5322) whatever the
	// address (far beyond SMTP's 256-byte path; bytes that are no UTF-8
	// have become three-byte U+FFFD, and quoting may double the rest): a
	// longer one is cut, on a character boundary, and marked.
	if len(addr) > maxRecipField {
		cut := maxRecipField
		for cut > 0 && !utf8.RuneStart(addr[cut]) {
			cut--
		}
		addr = addr[:cut] + "..."
	}
	if isASCII([]byte(addr)) {
		return "rfc822; " + address.Quote(addr)
	}
	addr = strings.ToValidUTF8(addr, "\uFFFD")
	local, domain, ok := address.Split(addr)
	// Non-ASCII characters are atext in RFC 6531: only the ASCII bytes
	// decide the quoting.
	ascii := []byte(local)
	for i, c := range ascii {
		if c >= 0x80 {
			ascii[i] = 'x'
		}
	}
	if address.NeedsQuote(string(ascii)) {
		local = address.QuoteLocal(local)
	}
	if !ok {
		return "utf-8; " + local
	}
	return "utf-8; " + local + "@" + domain
}
