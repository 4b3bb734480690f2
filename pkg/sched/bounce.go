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
		h.WriteString("Content-Type: text/plain; charset=us-ascii\n")
	}
	h.WriteString("\nHi. This is the qmail-send program at " + b.host + ".\n")
	if double {
		h.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
	} else {
		h.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\n")
		h.WriteString("This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
	}
	h.Write(b.report)
	if b.dsn {
		h.WriteString("\n--" + boundary + "\n")
		h.WriteString("Content-Type: message/delivery-status\n\n")
		h.WriteString("Reporting-MTA: dns; " + b.reportHost + "\n")
		for _, p := range parseReport(b.report) {
			h.WriteString("\nFinal-Recipient: rfc822; " + p.recip + "\n")
			h.WriteString("Action: failed\n")
			h.WriteString("Status: " + p.status + "\n")
			h.WriteString("Diagnostic-Code: x-qmail; " + p.diag + "\n")
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

var statusRe = regexp.MustCompile(`#([245]\.[0-9]{1,3}\.[0-9]{1,3})`)

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
		}
		f.diag = strings.Join(strings.Fields(text), " ")
		f.recip = strings.ReplaceAll(f.recip, "\n", "_")
		out = append(out, f)
	}
	return out
}
