package sched

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/qdate"
)

// bounce holds what a bounce message is made of.
type bounce struct {
	date       time.Time
	from       string // bouncefrom
	host       string // bouncehost
	sender     string // original sender, "-@[]" removed; "" = double bounce
	dbto       string // doublebounceto@doublebouncehost
	report     []byte // contents of bounce/ID
	dsn        bool
	id         uint64
	reportHost string
	// orig is the original message (mess/ID), read (ReadAt: the copy's
	// offset stays) only to find the 8-bit bytes of a DSN's last part;
	// nil: taken as 7-bit.
	orig io.ReaderAt
	// nonce, when set, goes into a DSN's boundary after the id and date
	// (qmail-send sets it from the clock's nanoseconds; see pickBoundary).
	nonce string
}

// render returns the bytes before and after the copied message.
func (b *bounce) render() (head, tail []byte) {
	double := b.sender == ""
	to := b.sender
	if double {
		to = b.dbto
	}
	var h strings.Builder
	h.WriteString("Date: " + qdate.Header(b.date) + "\n")
	h.WriteString("From: " + address.QuoteLocal(b.from) + "@" + b.host + "\n")
	h.WriteString("To: " + address.Quote(to) + "\n")
	h.WriteString("Subject: failure notice\n")
	boundary := ""
	var fails []failure
	var origHead8, origBody8, global bool
	if b.dsn {
		fails = parseReport(b.report)
		for _, f := range fails {
			if !isASCII([]byte(f.recip)) {
				global = true // RFC 6533: an address only utf-8 can name
			}
		}
		origHead8, origBody8 = scan8bit(b.orig)
		if !isASCII([]byte(b.sender)) {
			origHead8 = true // the Return-Path line
		}
		base := "hqmail-dsn-" + utoa(b.id) + "-" + strings.ReplaceAll(qdate.Header(b.date), " ", ".")
		if b.nonce != "" {
			base += "-" + b.nonce
		}
		boundary = pickBoundary(strings.ReplaceAll(base, ":", "."), b.report, b.orig)
		reportType := "delivery-status"
		if global {
			reportType = "global-delivery-status" // the second part's subtype (RFC 6522)
		}
		h.WriteString("MIME-Version: 1.0\n")
		h.WriteString("Content-Type: multipart/report; report-type=" + reportType + ";\n\tboundary=\"" + boundary + "\"\n")
		if global || origHead8 || origBody8 || !isASCII(b.report) {
			// A multipart is 8bit when a part is (RFC 2045 §6.4).
			h.WriteString("Content-Transfer-Encoding: 8bit\n")
		}
		h.WriteString("\nThis is a MIME-formatted message.\n\n--" + boundary + "\n")
		// The report quotes remote replies as they came: any bytes.
		switch {
		case isASCII(b.report):
			h.WriteString("Content-Type: text/plain; charset=us-ascii\n")
		case utf8.Valid(b.report):
			// UTF-8 addresses, UTF-8 replies (RFC 6532, RFC 6533).
			h.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n")
		default:
			// RFC 1428; without the encoding it would be read as 7bit
			// (RFC 2045 §6.1).
			h.WriteString("Content-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: 8bit\n")
		}
	}
	h.WriteString("\nHi. This is the qmail-send program at " + b.host + ".\n")
	if double {
		h.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
	} else {
		h.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\n")
		h.WriteString("This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
	}
	if b.dsn {
		// A MIME part keeps RFC 5322's 998-byte lines: a long remote
		// reply is broken (qmail's own format keeps it as it came).
		h.WriteString(breakLines(string(b.report), 998))
	} else {
		h.Write(b.report)
	}
	if b.dsn {
		h.WriteString("\n--" + boundary + "\n")
		if global {
			// RFC 6533: the utf-8 address type needs this part, 8-bit.
			h.WriteString("Content-Type: message/global-delivery-status\nContent-Transfer-Encoding: 8bit\n\n")
		} else {
			h.WriteString("Content-Type: message/delivery-status\n\n")
		}
		h.WriteString("Reporting-MTA: dns; " + b.reportHost + "\n")
		for _, p := range fails {
			h.WriteString("\nFinal-Recipient: " + recipientField(p.recip) + "\n")
			h.WriteString("Action: failed\n")
			h.WriteString("Status: " + p.status + "\n")
			h.WriteString(foldField("Diagnostic-Code: x-qmail; " + p.diag))
		}
		h.WriteString("\n--" + boundary + "\n")
		switch {
		case origHead8:
			// 8-bit header fields are RFC 6532's message/global.
			h.WriteString("Content-Type: message/global\nContent-Transfer-Encoding: 8bit\n\n")
		case origBody8:
			h.WriteString("Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n")
		default:
			h.WriteString("Content-Type: message/rfc822\n\n")
		}
		tail = []byte("\n--" + boundary + "--\n")
	} else if double {
		h.WriteString("--- Below this line is the original bounce.\n\n")
	} else {
		h.WriteString("--- Below this line is a copy of the message.\n\n")
	}
	h.WriteString("Return-Path: <" + address.Quote(b.sender) + ">\n")
	return []byte(h.String()), tail
}

// failure is one recipient's paragraph of bounce/ID.
type failure struct{ recip, status, diag string }

var (
	statusRe = regexp.MustCompile(`#([245]\.[0-9]{1,3}\.[0-9]{1,3})`)
	// A remote reply's own enhanced code (RFC 3463) after its 5xx code.
	remoteStatusRe = regexp.MustCompile(`Remote host said: 5[0-9][0-9][ -](5\.[0-9]{1,3}\.[0-9]{1,3})\b`)
)

// parseReport splits bounce/ID into its paragraphs for the DSN part.
func parseReport(rep []byte) []failure {
	var out []failure
	for _, para := range strings.Split(string(rep), "\n\n") {
		// A report text that ends in an empty line keeps it (the rule
		// looks at a paragraph without its last byte), and the next
		// paragraph then starts after one more newline.
		para = strings.TrimLeft(para, "\n")
		if !strings.HasPrefix(para, "<") {
			continue
		}
		i := strings.Index(para, ">:\n")
		if i < 0 {
			if !strings.HasSuffix(para, ">:") {
				continue
			}
			i = len(para) - 2
		}
		f := failure{recip: para[1:i], status: "5.0.0"}
		text := ""
		if i+3 <= len(para) {
			text = para[i+3:]
		}
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
		out = append(out, f)
	}
	return out
}

// breakLines breaks every line of s longer than max bytes into lines of
// at most max bytes, never inside a UTF-8 character.
func breakLines(s string, max int) string {
	var b strings.Builder
	for s != "" {
		line, rest, nl := strings.Cut(s, "\n")
		for len(line) > max {
			cut := charStart(line, max)
			b.WriteString(line[:cut] + "\n")
			line = line[cut:]
		}
		b.WriteString(line)
		if nl {
			b.WriteString("\n")
		}
		s = rest
	}
	return b.String()
}

// charStart returns i, or the start of the UTF-8 character that s[i]
// is inside of (at most 3 bytes back): where s may be cut before i.
func charStart(s string, i int) int {
	for j := i; j > 0 && j > i-utf8.UTFMax; j-- {
		if !utf8.RuneStart(s[j]) {
			continue
		}
		if j == i {
			return i
		}
		if r, n := utf8.DecodeRuneInString(s[j:]); (r != utf8.RuneError || n > 1) && j+n > i {
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
// coincidence, and the scan rules it out.
func pickBoundary(base string, report []byte, orig io.ReaderAt) string {
	b := base
	for n := 1; n <= 100 && (containsDelimiter(bytes.NewReader(report), "--"+b) || containsDelimiter(orig, "--"+b)); n++ {
		b = base + "." + strconv.Itoa(n)
	}
	return b
}

// containsDelimiter reports whether a line of r starts with delim.
func containsDelimiter(r io.ReaderAt, delim string) bool {
	if r == nil {
		return false
	}
	buf := make([]byte, 64<<10)
	lineStart, matched := true, 0 // bytes of delim matched at this line's start
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		off += int64(n)
		for _, c := range buf[:n] {
			switch {
			case c == '\n':
				lineStart, matched = true, 0
			case lineStart && c == delim[matched]:
				matched++
				if matched == len(delim) {
					return true
				}
			default:
				lineStart = false
			}
		}
		if err != nil || n == 0 {
			return false
		}
	}
}

// scan8bit reports whether the original message has bytes >= 0x80 in
// its header (up to the first empty line) and in its body. A read error
// counts as both (a harmless label; the copy will fail the same way).
func scan8bit(r io.ReaderAt) (head8, body8 bool) {
	if r == nil {
		return false, false
	}
	buf := make([]byte, 64<<10)
	inHead, lineStart := true, true // the Return-Path line comes before
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		off += int64(n)
		for _, c := range buf[:n] {
			switch {
			case !inHead:
				if c >= 0x80 {
					return head8, true
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
		}
		if err == io.EOF {
			return head8, false
		}
		if err != nil {
			return true, true
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
