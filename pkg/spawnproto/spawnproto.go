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
// Wide slots (an hqmail extension, for concurrency above 255): the
// spawner announces a NUL byte followed by its maximum concurrency as two
// bytes, big-endian. qmail's spawners never announce 0, so a reader that
// knows both forms tells them apart by the first byte. After a wide
// announcement every slot field, in requests and in reports, is two bytes
// big-endian instead of one; nothing else changes. Neither slot byte of
// a report is ever a terminator (the NUL rule of spec/scheduler.md §9
// applies to both). A spawner with a limit of 255 or less announces the
// plain byte (Announce), so it stays usable by qmail's qmail-send.
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

// MaxReport is the most bytes of a report qmail-send keeps, counted as
// qmail counts them: the whole line before the NUL, slot field included.
// With the one-byte slot that is the slot, the letter and at most 9998
// bytes of text. The wide (two-byte) slot field counts too, leaving 9997
// bytes of text: one rule for both widths, and never more text than
// qmail keeps. Later bytes up to the NUL are dropped.
const MaxReport = 10000

// Slot field widths: Narrow is qmail's one byte, Wide the two-byte
// extension. A width of 0 means Narrow everywhere in this package.
const (
	Narrow = 1
	Wide   = 2
)

// MaxNarrow is the largest limit a one-byte announcement can carry, and
// MaxWide the largest a wide one can.
const (
	MaxNarrow = 255
	MaxWide   = 65535
)

// Announce renders a spawner's announcement of limit (1..MaxWide; values
// outside are clamped) and returns the slot width that goes with it: the
// plain byte for a limit up to MaxNarrow, the wide form above.
func Announce(limit int) ([]byte, int) {
	limit = max(1, min(limit, MaxWide))
	if limit <= MaxNarrow {
		return []byte{byte(limit)}, Narrow
	}
	return []byte{0, byte(limit >> 8), byte(limit)}, Wide
}

// ReadAnnounce reads a spawner's announcement from r, exactly as many
// bytes as it has (one, or three for the wide form), and returns the
// announced limit and the slot width to use from then on. A wide
// announcement of 0 is returned as limit 0 (qmail-send then never starts
// a delivery on that channel, as qmail does for a byte 0). EOF at any
// point is an error (io.EOF before the first byte, io.ErrUnexpectedEOF
// after it).
func ReadAnnounce(r io.Reader) (limit, width int, err error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return 0, 0, err
	}
	if b[0] != 0 {
		return int(b[0]), Narrow, nil
	}
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	return int(b[0])<<8 | int(b[1]), Wide, nil
}

// appendSlot appends slot in a field of width bytes.
func appendSlot(b []byte, slot, width int) []byte {
	if width == Wide {
		return append(b, byte(slot>>8), byte(slot))
	}
	return append(b, byte(slot))
}

// Request asks a spawner to deliver one message to one recipient.
type Request struct {
	Slot      int    // delivery slot, 0..255 (0..65535 with wide slots)
	Mess      string // "S/ID", relative to queue/mess
	Sender    string
	Recipient string
	TooLong   bool // a field exceeded MaxField and was truncated
}

// Encode renders the request as qmail-send writes it (one slot byte).
func (r *Request) Encode() []byte { return r.EncodeWidth(Narrow) }

// EncodeWidth renders the request with a slot field of width bytes.
func (r *Request) EncodeWidth(width int) []byte {
	b := make([]byte, 0, 5+len(r.Mess)+len(r.Sender)+len(r.Recipient))
	b = appendSlot(b, r.Slot, width)
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

// ReadRequest reads one request with a one-byte slot. It returns io.EOF
// when the input ends cleanly between requests and io.ErrUnexpectedEOF
// inside one.
func ReadRequest(r *bufio.Reader) (*Request, error) { return ReadRequestWidth(r, Narrow) }

// ReadRequestWidth reads one request whose slot field is width bytes.
func ReadRequestWidth(r *bufio.Reader, width int) (*Request, error) {
	slot, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	req := &Request{Slot: int(slot)}
	if width == Wide {
		lo, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		req.Slot = req.Slot<<8 | int(lo)
	}
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

// Encode renders the report as a spawner writes it (one slot byte). A NUL
// inside Text would end the report early, so the text is cut at its first
// NUL.
func (r *Report) Encode() []byte { return r.EncodeWidth(Narrow) }

// EncodeWidth renders the report with a slot field of width bytes.
func (r *Report) EncodeWidth(width int) []byte {
	text := r.Text
	for i := 0; i < len(text); i++ {
		if text[i] == 0 {
			text = text[:i]
			break
		}
	}
	b := make([]byte, 0, len(text)+4)
	b = appendSlot(b, r.Slot, width)
	b = append(b, r.Letter)
	b = append(b, text...)
	return append(b, 0)
}

// ReportDecoder assembles reports from the bytes qmail-send reads from a
// spawner, as they arrive. Width is the slot field width (0 or Narrow:
// one byte; Wide: two); set it before the first Feed.
type ReportDecoder struct {
	Width int
	buf   []byte
	slot  int
	have  int // bytes of the current report's slot field read so far
}

// Feed consumes p and calls emit for each complete report. A report whose
// text is empty has Letter 0 (qmail-send logs it as mangled).
func (d *ReportDecoder) Feed(p []byte, emit func(Report)) {
	width := Narrow
	if d.Width == Wide {
		width = Wide
	}
	for _, c := range p {
		if d.have < width {
			// The slot field, even when a byte of it is NUL.
			if d.have == 0 {
				d.slot = 0
				d.buf = d.buf[:0]
			}
			d.slot = d.slot<<8 | int(c)
			d.have++
			continue
		}
		if c != 0 {
			if width+len(d.buf) < MaxReport {
				d.buf = append(d.buf, c)
			}
			continue
		}
		rep := Report{Slot: d.slot}
		if len(d.buf) > 0 {
			rep.Letter = d.buf[0]
			rep.Text = string(d.buf[1:])
		}
		d.have = 0
		d.buf = d.buf[:0]
		emit(rep)
	}
}

// Pending reports whether a partial report has been read.
func (d *ReportDecoder) Pending() bool { return d.have > 0 }

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
