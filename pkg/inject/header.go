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
// Each field is handed to field as soon as its last line is read, and not
// kept: what the caller keeps of it is the caller's affair.
func readHeader(r *bufio.Reader, field func([]byte)) (body *bodyReader, err error) {
	var cur []byte
	for {
		line, err := r.ReadBytes('\n')
		switch {
		case err == io.EOF && len(line) > 0:
			line = append(line, '\n') // a final partial line
		case err == io.EOF:
			if cur != nil {
				field(cur)
			}
			return &bodyReader{r: r}, nil
		case err != nil:
			return nil, err
		}
		if cur != nil {
			if line[0] == ' ' || line[0] == '\t' {
				cur = append(cur, line...)
				continue
			}
			field(cur)
			cur = nil
		}
		if len(line) == 1 {
			return &bodyReader{head: line, r: r}, nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("From ")):
			cur = append([]byte("MBOX-Line: "), line...)
		case validField(line):
			cur = line
		default:
			return &bodyReader{head: append([]byte("\n"), line...), r: r}, nil
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
