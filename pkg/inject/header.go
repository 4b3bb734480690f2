package inject

import (
	"bufio"
	"bytes"
	"io"
)

// Known header fields (qmail's list; only some are acted on).
const (
	hOther = iota
	hSender
	hFrom
	hReplyTo
	hTo
	hCc
	hBcc
	hDate
	hMessageID
	hSubject
	hResentSender
	hResentFrom
	hResentReplyTo
	hResentTo
	hResentCc
	hResentBcc
	hResentDate
	hResentMessageID
	hReturnReceiptTo
	hErrorsTo
	hApparentlyTo
	hReceived
	hReturnPath
	hDeliveredTo
	hContentLength
	hContentType
	hContentTransferEncoding
	hNoticeRequestedUponDeliveryTo
	hMailFollowupTo
	hCount
)

var fieldNames = [hCount]string{
	hSender:                        "sender",
	hFrom:                          "from",
	hReplyTo:                       "reply-to",
	hTo:                            "to",
	hCc:                            "cc",
	hBcc:                           "bcc",
	hDate:                          "date",
	hMessageID:                     "message-id",
	hSubject:                       "subject",
	hResentSender:                  "resent-sender",
	hResentFrom:                    "resent-from",
	hResentReplyTo:                 "resent-reply-to",
	hResentTo:                      "resent-to",
	hResentCc:                      "resent-cc",
	hResentBcc:                     "resent-bcc",
	hResentDate:                    "resent-date",
	hResentMessageID:               "resent-message-id",
	hReturnReceiptTo:               "return-receipt-to",
	hErrorsTo:                      "errors-to",
	hApparentlyTo:                  "apparently-to",
	hReceived:                      "received",
	hReturnPath:                    "return-path",
	hDeliveredTo:                   "delivered-to",
	hContentLength:                 "content-length",
	hContentType:                   "content-type",
	hContentTransferEncoding:       "content-transfer-encoding",
	hNoticeRequestedUponDeliveryTo: "notice-requested-upon-delivery-to",
	hMailFollowupTo:                "mail-followup-to",
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 32
	}
	return c
}

// fieldType returns the known type of a header field: its name matches
// case-insensitively and is followed by optional spaces or tabs and ':'.
func fieldType(h []byte) int {
	for k := 1; k < hCount; k++ {
		name := fieldNames[k]
		if len(h) <= len(name) {
			continue
		}
		i := 0
		for ; i < len(name); i++ {
			if lower(h[i]) != name[i] {
				break
			}
		}
		if i < len(name) {
			continue
		}
		for ; i < len(h); i++ {
			if h[i] == ':' {
				return k
			}
			if h[i] != ' ' && h[i] != '\t' {
				break
			}
		}
	}
	return hOther
}

// validField reports whether a line can be a header field: it has a ':',
// and the name before it (trailing spaces and tabs allowed) is not empty
// and consists of bytes 33..126.
func validField(h []byte) bool {
	j := bytes.IndexByte(h, ':')
	if j < 0 {
		return false
	}
	for j > 0 && (h[j-1] == ' ' || h[j-1] == '\t') {
		j--
	}
	if j == 0 {
		return false
	}
	for _, c := range h[:j] {
		if c <= 32 || c >= 127 {
			return false
		}
	}
	return true
}

// readHeader reads a message's header from r the way qmail-inject reads
// it. Each field keeps its continuation lines and ends in a newline; a
// line starting with "From " becomes "MBOX-Line: From ...". The header
// ends at an empty line (which starts the body), at the end of input (no
// body), or at a line that is not a valid field: then the body is an
// empty line followed by that line. The body reads the rest of r as it
// comes, so that a message is never held whole (only its header is).
//
// The fields go to sink as they are read: begin is given each field's
// first line and says whether it wants the field whole; if so, field gets
// it once its last line is read, else cont gets each continuation line as
// it comes. The bytes handed over are in buffers used again: the sink
// copies what it keeps. Lines are read where bufio holds them, so a header
// of many short fields costs no allocation per line, and one huge field
// not wanted whole is not gathered at all.
func readHeader(r *bufio.Reader, sink headerSink) (body *bodyReader, err error) {
	var cur []byte // the field being gathered, or the line at hand
	inField, whole := false, false
	for {
		if inField {
			if b, err := r.Peek(1); err == nil && (b[0] == ' ' || b[0] == '\t') {
				start := 0
				if whole {
					start = len(cur) // onto the field
				}
				cur, err = readLine(r, cur[:start])
				switch {
				case err == io.EOF:
					cur = append(cur, '\n') // a final partial line
				case err != nil:
					return nil, err
				}
				if !whole {
					sink.cont(cur)
				}
				continue
			}
			if whole {
				sink.field(cur)
			}
			inField = false
		}
		cur, err = readLine(r, cur[:0])
		switch {
		case err == io.EOF && len(cur) > 0:
			cur = append(cur, '\n') // a final partial line
		case err == io.EOF:
			return &bodyReader{r: r}, nil
		case err != nil:
			return nil, err
		}
		switch {
		case len(cur) == 1:
			return &bodyReader{head: []byte{'\n'}, r: r}, nil
		case bytes.HasPrefix(cur, []byte("From ")):
			cur = append([]byte("MBOX-Line: "), cur...)
		case !validField(cur):
			return &bodyReader{head: append([]byte("\n"), cur...), r: r}, nil
		}
		inField, whole = true, sink.begin(cur)
	}
}

// headerSink takes the fields readHeader reads (see there).
type headerSink interface {
	begin(first []byte) (whole bool)
	cont(line []byte)
	field(whole []byte)
}

// readLine appends to buf the next line of r, its newline included (none
// at the end of input, with io.EOF).
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		frag, err := r.ReadSlice('\n')
		buf = append(buf, frag...)
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}

// bodyReader reads a message's body: the lines readHeader read past the
// header, then the rest of the input, with a newline added when the input
// ends without one. It keeps the input's read error, so that a message
// that could not be read whole is known not to have been queued.
type bodyReader struct {
	head []byte
	r    io.Reader
	eof  bool
	seen bool // a byte was handed out
	last byte // the last one
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		var n int
		switch {
		case len(b.head) > 0:
			n = copy(p, b.head)
			b.head = b.head[n:]
		case b.err != nil:
			return 0, b.err
		case b.eof:
			if !b.seen || b.last == '\n' {
				return 0, io.EOF
			}
			p[0], n = '\n', 1
		default:
			var err error
			n, err = b.r.Read(p)
			if err == io.EOF {
				b.eof = true
			} else if err != nil {
				b.err = err
			}
		}
		if n > 0 {
			b.seen, b.last = true, p[n-1]
			return n, nil
		}
	}
}

// chunks holds the kept header: bytes copied into blocks that double from
// 4 KB up to 256 KB, so that it costs its size and no more (no copy as it
// grows, nothing per field), and a small header no big block (its pages
// cost more to fault in than the whole of a small message's work).
type chunks struct{ bufs [][]byte }

const (
	chunkFirst = 4 << 10
	chunkMax   = 256 << 10
)

func (c *chunks) write(p []byte) {
	for len(p) > 0 {
		n := len(c.bufs)
		if n == 0 || len(c.bufs[n-1]) == cap(c.bufs[n-1]) {
			size := chunkFirst
			if n > 0 {
				size = min(2*cap(c.bufs[n-1]), chunkMax)
			}
			c.bufs = append(c.bufs, make([]byte, 0, size))
			n++
		}
		last := &c.bufs[n-1]
		k := min(len(p), cap(*last)-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
}

// reader reads the bytes written, once.
func (c *chunks) reader() io.Reader { return c }

// Read hands out the bytes written, consuming them.
func (c *chunks) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(c.bufs) > 0 {
		k := copy(p[n:], c.bufs[0])
		n += k
		if c.bufs[0] = c.bufs[0][k:]; len(c.bufs[0]) == 0 {
			c.bufs = c.bufs[1:]
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}
