package remote

import (
	"bytes"
	"errors"
	"io"
)

// Errors of WriteData.
var (
	errPartial = errors.New("partial final line")
	errRead    = errors.New("unable to read message")
)

// writeError wraps a failure of the destination (the connection).
type writeError struct{ err error }

func (e writeError) Error() string { return "write: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// WriteData copies a message from r to w in SMTP DATA form and ends it with
// ".\r\n": LF becomes CRLF, CRLF stays, a CR followed by any other byte
// becomes CRLF (that byte starts the next line), a final CR ends the last
// line, and a '.' at the start of any line is doubled. A message whose last
// line has no end gives errPartial (the terminating dot is not written); a
// read failure gives errRead; a failure of w comes back as a writeError.
//
// notqmail does not dot-double the byte after a bare CR; doing so would let
// a message carrying "\r.\r\n" end the DATA phase early and have its remaining
// bytes read as SMTP commands, so this implementation doubles it.
func WriteData(w io.Writer, r io.Reader) error {
	buf := make([]byte, 64*1024)
	out := make([]byte, 0, 2*len(buf)+8)
	bol := true    // at the beginning of a line
	cr := false    // the previous byte was a CR not yet written
	var rerr error // read error to report once the buffer is written
	for rerr == nil {
		n, err := r.Read(buf)
		if err != nil {
			if err != io.EOF {
				rerr = errRead
			} else {
				rerr = io.EOF
			}
		}
		p := buf[:n]
		out = out[:0]
		for len(p) > 0 {
			if cr {
				cr = false
				out = append(out, '\r', '\n')
				bol = true
				if p[0] == '\n' {
					p = p[1:]
					continue
				}
			}
			if bol && p[0] == '.' {
				out = append(out, '.')
			}
			i := bytes.IndexAny(p, "\r\n")
			if i < 0 {
				out = append(out, p...)
				bol = false
				break
			}
			out = append(out, p[:i]...)
			if p[i] == '\n' {
				out = append(out, '\r', '\n')
				bol = true
			} else {
				cr = true
				bol = false
			}
			p = p[i+1:]
		}
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				return writeError{err}
			}
		}
	}
	if rerr != io.EOF {
		return rerr
	}
	tail := []byte(".\r\n")
	if cr {
		tail = []byte("\r\n.\r\n")
	} else if !bol {
		return errPartial
	}
	if _, err := w.Write(tail); err != nil {
		return writeError{err}
	}
	return nil
}
