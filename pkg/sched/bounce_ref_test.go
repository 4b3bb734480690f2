package sched

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/qdate"
)

// This file keeps how bounces were made before they were streamed (the
// whole of bounce/ID in memory), as the oracle the streamed bounce is
// compared with byte for byte (bounce_stream_test.go).

// refRender returns the bytes before and after the copied message, the
// report held whole.
func refRender(b *bounce, report []byte) (head, tail []byte) {
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
		fails = refParseReport(report)
		for _, f := range fails {
			if !isASCII([]byte(f.recip)) {
				global = true
			}
		}
		origHead8, origBody8 = scan8bit(b.orig)
		if !isASCII([]byte(b.sender)) {
			origHead8 = true
		}
		base := "hqmail-dsn-" + utoa(b.id) + "-" + strings.ReplaceAll(qdate.Header(b.date), " ", ".")
		if b.nonce != "" {
			base += "-" + b.nonce
		}
		boundary = pickBoundary(strings.ReplaceAll(base, ":", "."), bytes.NewReader(report), b.orig)
		reportType := "delivery-status"
		if global {
			reportType = "global-delivery-status"
		}
		h.WriteString("MIME-Version: 1.0\n")
		h.WriteString("Content-Type: multipart/report; report-type=" + reportType + ";\n\tboundary=\"" + boundary + "\"\n")
		if global || origHead8 || origBody8 || !isASCII(report) {
			h.WriteString("Content-Transfer-Encoding: 8bit\n")
		}
		h.WriteString("\nThis is a MIME-formatted message.\n\n--" + boundary + "\n")
		switch {
		case isASCII(report):
			h.WriteString("Content-Type: text/plain; charset=us-ascii\n")
		case utf8.Valid(report):
			h.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n")
		default:
			h.WriteString("Content-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: 8bit\n")
		}
	}
	h.WriteString("\nHi. This is the qmail-send program at " + noLineBreak(b.host) + ".\n")
	if double {
		h.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
	} else {
		h.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\n")
		h.WriteString("This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
	}
	if b.dsn {
		h.WriteString(refBreakLines(string(report), 998))
	} else {
		h.Write(report)
	}
	if b.dsn {
		h.WriteString("\n--" + boundary + "\n")
		if global {
			h.WriteString("Content-Type: message/global-delivery-status\nContent-Transfer-Encoding: 8bit\n\n")
		} else {
			h.WriteString("Content-Type: message/delivery-status\n\n")
		}
		h.WriteString("Reporting-MTA: dns; " + b.reportHost + "\n")
		for _, p := range fails {
			h.WriteString("\nFinal-Recipient: " + recipientField(p.recip) + "\n")
			h.WriteString("Action: failed\n")
			h.WriteString("Status: " + p.status + "\n")
			if p.diag == "" {
				h.WriteString("Diagnostic-Code: x-qmail;\n")
			} else {
				h.WriteString(foldField("Diagnostic-Code: x-qmail; " + p.diag))
			}
		}
		h.WriteString("\n--" + boundary + "\n")
		switch {
		case origHead8:
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

// refParseReport splits the whole report into its paragraphs.
func refParseReport(rep []byte) []failure {
	var out []failure
	for _, para := range strings.Split(string(rep), "\n\n") {
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

// refBreakLines breaks every line of s longer than max bytes, s whole.
func refBreakLines(s string, max int) string {
	var b strings.Builder
	for s != "" {
		line, rest, nl := strings.Cut(s, "\n")
		for len(line) > max {
			cut := charStart([]byte(line), max)
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

// reportOf is a report held in memory, for a bounce in tests.
func reportOf(b []byte) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

// render returns the streamed bounce's bytes before and after the copied
// message.
func (b *bounce) render() (head, tail []byte) {
	var h bytes.Buffer
	if err := b.writeHead(&h); err != nil {
		panic(err) // a report in memory cannot fail to be read
	}
	return h.Bytes(), b.tail()
}

// parseReport reads the recipients' failures of a report as the DSN part
// does.
func parseReport(rep []byte) []failure {
	var out []failure
	eachParagraph(bytes.NewReader(rep), 16, func(para []byte) error {
		if f, ok := parseParagraph(para); ok {
			out = append(out, f)
		}
		return nil
	})
	return out
}

// breakLines is s through a lineBreaker.
func breakLines(s string, max int) string {
	var b strings.Builder
	lb := &lineBreaker{w: &b, max: max}
	lb.Write([]byte(s))
	lb.Close()
	return b.String()
}
