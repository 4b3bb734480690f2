// Package spawnproto is the pipe protocol between qmail-send and its two
// spawners (qmail-lspawn, qmail-rspawn), spec/scheduler.md §9, and between
// qmail-send and qmail-clean, §10. Both sides of each protocol live here.
//
// Spawner protocol:
//
//	spawner -> send, once:  one byte, the spawner's maximum concurrency
//	send -> spawner:        <slot byte> <S>/<ID> NUL <sender> NUL <recipient> NUL
//	spawner -> send:        <slot byte> <K|Z|D> <text> NUL
//
// qmail-clean protocol:
//
//	send -> clean:  "foop/<ID>" NUL  or  "todo/<ID>" NUL
//	clean -> send:  one byte: '+' done, '!' an unlink failed, 'x' malformed
package spawnproto

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// MaxField bounds each NUL-terminated field of a request read by a
// spawner. A longer field is consumed to its NUL and flagged TooLong.
const MaxField = 1 << 20

// MaxReport is the longest report text qmail-send keeps (bytes after the
// slot byte, letter included); later bytes up to the NUL are dropped.
const MaxReport = 10000

// Request asks a spawner to deliver one message to one recipient.
type Request struct {
	Slot      int    // delivery slot, 0..255
	Mess      string // "S/ID", relative to queue/mess
	Sender    string
	Recipient string
	TooLong   bool // a field exceeded MaxField and was truncated
}

// Encode renders the request as qmail-send writes it.
func (r *Request) Encode() []byte {
	b := make([]byte, 0, 4+len(r.Mess)+len(r.Sender)+len(r.Recipient))
	b = append(b, byte(r.Slot))
	b = append(b, r.Mess...)
	b = append(b, 0)
	b = append(b, r.Sender...)
	b = append(b, 0)
	b = append(b, r.Recipient...)
	return append(b, 0)
}

// readField reads up to and including a NUL; it reports whether the field
// was cut at MaxField. EOF inside a field is io.ErrUnexpectedEOF.
func readField(r *bufio.Reader) (string, bool, error) {
	var buf []byte
	cut := false
	for {
		chunk, err := r.ReadSlice(0)
		if len(buf)+len(chunk) > MaxField {
			cut = true
			if room := MaxField - len(buf); room > 0 {
				buf = append(buf, chunk[:room]...)
			}
		} else {
			buf = append(buf, chunk...)
		}
		switch err {
		case nil:
			if n := len(buf); n > 0 && buf[n-1] == 0 {
				buf = buf[:n-1]
			}
			return string(buf), cut, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			return "", cut, io.ErrUnexpectedEOF
		default:
			return "", cut, err
		}
	}
}

// ReadRequest reads one request. It returns io.EOF when the input ends
// cleanly between requests and io.ErrUnexpectedEOF inside one.
func ReadRequest(r *bufio.Reader) (*Request, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	req := &Request{Slot: int(slot)}
	fields := []*string{&req.Mess, &req.Sender, &req.Recipient}
	for _, f := range fields {
		s, cut, err := readField(r)
		if err != nil {
			return nil, err
		}
		*f = s
		req.TooLong = req.TooLong || cut
	}
	return req, nil
}

// Report is a spawner's answer for one delivery.
type Report struct {
	Slot   int
	Letter byte // 'K' success, 'Z' temporary failure, 'D' permanent failure
	Text   string
}

// Encode renders the report as a spawner writes it. A NUL inside Text would
// end the report early, so the text is cut at its first NUL.
func (r *Report) Encode() []byte {
	text := r.Text
	for i := 0; i < len(text); i++ {
		if text[i] == 0 {
			text = text[:i]
			break
		}
	}
	b := make([]byte, 0, len(text)+3)
	b = append(b, byte(r.Slot), r.Letter)
	b = append(b, text...)
	return append(b, 0)
}

// ReportDecoder assembles reports from the bytes qmail-send reads from a
// spawner, as they arrive.
type ReportDecoder struct {
	buf  []byte
	have bool // the slot byte of the current report has been read
}

// Feed consumes p and calls emit for each complete report. A report whose
// text is empty has Letter 0 (qmail-send logs it as mangled).
func (d *ReportDecoder) Feed(p []byte, emit func(Report)) {
	for _, c := range p {
		if !d.have {
			// The first byte is the slot, even when it is NUL.
			d.buf = append(d.buf[:0], c)
			d.have = true
			continue
		}
		if c != 0 {
			if len(d.buf) < 1+MaxReport {
				d.buf = append(d.buf, c)
			}
			continue
		}
		rep := Report{Slot: int(d.buf[0])}
		if len(d.buf) > 1 {
			rep.Letter = d.buf[1]
			rep.Text = string(d.buf[2:])
		}
		d.have = false
		d.buf = d.buf[:0]
		emit(rep)
	}
}

// Pending reports whether a partial report has been read.
func (d *ReportDecoder) Pending() bool { return d.have }

// Clean request kinds.
const (
	CleanFoop = "foop" // remove intd/ID and mess/S/ID
	CleanTodo = "todo" // remove intd/ID and todo/ID
)

// Clean replies.
const (
	CleanDone = '+'
	CleanFail = '!'
	CleanBad  = 'x'
)

// CleanRequest renders a qmail-clean request.
func CleanRequest(kind string, id uint64) []byte {
	b := []byte(kind + "/" + strconv.FormatUint(id, 10))
	return append(b, 0)
}

// ErrCleanRequest is a malformed qmail-clean request.
var ErrCleanRequest = errors.New("malformed qmail-clean request")

// ReadCleanRequest reads one request (up to its NUL) and parses it. It
// returns io.EOF at a clean end of input. A malformed request (length with
// NUL < 7 or > 100, bad prefix, non-digit id) is consumed and reported as
// ErrCleanRequest.
func ReadCleanRequest(r *bufio.Reader) (kind string, id uint64, err error) {
	var buf []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(buf) == 0 {
				return "", 0, io.EOF
			}
			if err == io.EOF {
				return "", 0, io.ErrUnexpectedEOF
			}
			return "", 0, err
		}
		if c == 0 {
			break
		}
		if len(buf) <= 100 {
			buf = append(buf, c)
		}
	}
	n := len(buf) + 1
	if n < 7 || n > 100 {
		return "", 0, ErrCleanRequest
	}
	kind = string(buf[:4])
	if (kind != CleanFoop && kind != CleanTodo) || buf[4] != '/' {
		return "", 0, ErrCleanRequest
	}
	digits := buf[5:]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, ErrCleanRequest
		}
	}
	id, perr := strconv.ParseUint(string(digits), 10, 64)
	if perr != nil {
		return "", 0, ErrCleanRequest
	}
	return kind, id, nil
}
