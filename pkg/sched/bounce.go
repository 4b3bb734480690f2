package sched

import (
	"regexp"
	"strings"
	"time"

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
	if b.dsn {
		boundary = "hqmail-dsn-" + utoa(b.id) + "-" + strings.ReplaceAll(qdate.Header(b.date), " ", ".")
		boundary = strings.ReplaceAll(boundary, ":", ".")
		h.WriteString("MIME-Version: 1.0\n")
		h.WriteString("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"" + boundary + "\"\n")
		h.WriteString("\nThis is a MIME-formatted message.\n\n--" + boundary + "\n")
		// The report quotes remote replies as they came: any bytes.
		if isASCII(b.report) {
			h.WriteString("Content-Type: text/plain; charset=us-ascii\n")
		} else {
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
		h.WriteString("Content-Type: message/delivery-status\n\n")
		h.WriteString("Reporting-MTA: dns; " + b.reportHost + "\n")
		for _, p := range parseReport(b.report) {
			h.WriteString("\nFinal-Recipient: rfc822; " + p.recip + "\n")
			h.WriteString("Action: failed\n")
			h.WriteString("Status: " + p.status + "\n")
			h.WriteString(foldField("Diagnostic-Code: x-qmail; " + p.diag))
		}
		h.WriteString("\n--" + boundary + "\n")
		h.WriteString("Content-Type: message/rfc822\n\n")
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
		// Header fields are ASCII (RFC 3464): other bytes become '?'.
		f.diag = strings.Map(func(r rune) rune {
			if r < 0x20 || r > 0x7e {
				return '?'
			}
			return r
		}, strings.Join(strings.Fields(text), " "))
		f.recip = strings.ReplaceAll(f.recip, "\n", "_")
		out = append(out, f)
	}
	return out
}

// breakLines breaks every line of s longer than max bytes into lines of
// at most max bytes.
func breakLines(s string, max int) string {
	var b strings.Builder
	for s != "" {
		line, rest, nl := strings.Cut(s, "\n")
		for len(line) > max {
			b.WriteString(line[:max] + "\n")
			line = line[max:]
		}
		b.WriteString(line)
		if nl {
			b.WriteString("\n")
		}
		s = rest
	}
	return b.String()
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
