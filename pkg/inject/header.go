package inject

import "bytes"

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

// splitHeader splits a message into header fields and body the way
// qmail-inject reads it. Each field keeps its continuation lines and ends in
// a newline; a line starting with "From " becomes "MBOX-Line: From ...". The
// header ends at an empty line (which starts the body), at the end of input
// (no body), or at a line that is not a valid field: then the body is an
// empty line followed by that line. A final partial line gets a newline.
func splitHeader(msg []byte) (fields [][]byte, body []byte) {
	pos := 0
	next := func() []byte {
		if pos >= len(msg) {
			return nil
		}
		i := bytes.IndexByte(msg[pos:], '\n')
		var l []byte
		if i < 0 {
			l = append(append([]byte(nil), msg[pos:]...), '\n')
			pos = len(msg)
		} else {
			l = msg[pos : pos+i+1]
			pos += i + 1
		}
		return l
	}
	rest := func(first ...[]byte) []byte {
		n := len(msg) - pos
		for _, f := range first {
			n += len(f)
		}
		b := make([]byte, 0, n+1)
		for _, f := range first {
			b = append(b, f...)
		}
		b = append(b, msg[pos:]...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		return b
	}
	var cur []byte
	for {
		line := next()
		if line == nil {
			if cur != nil {
				fields = append(fields, cur)
			}
			return fields, nil
		}
		if cur != nil {
			if line[0] == ' ' || line[0] == '\t' {
				cur = append(cur, line...)
				continue
			}
			fields = append(fields, cur)
			cur = nil
		}
		if len(line) == 1 {
			return fields, rest(line)
		}
		switch {
		case bytes.HasPrefix(line, []byte("From ")):
			cur = append([]byte("MBOX-Line: "), line...)
		case validField(line):
			cur = append([]byte(nil), line...)
		default:
			return fields, rest([]byte("\n"), line)
		}
	}
}
