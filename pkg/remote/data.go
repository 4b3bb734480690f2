package remote

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/textproto"
	"sync"
)

// Errors of WriteData and copyData.
var (
	errPartial = errors.New("partial final line")
	errRead    = errors.New("unable to read message")
)

// writeError wraps a failure of the destination (the connection).
type writeError struct{ err error }

func (e writeError) Error() string { return "write: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// dataBufs are copyData's buffers, kept between the deliveries of a kept
// qmail-remote (keep mode) instead of 192 KB allocated per message.
type dataBufs struct {
	in  [64 << 10]byte
	out [2*(64<<10) + 8]byte
}

var copyBufs = sync.Pool{New: func() any { return new(dataBufs) }}

// copyData copies a message from r to w as CRLF-ended lines, the form
// textproto's dot writer (go-smtp's DATA writer) takes: LF becomes CRLF,
// CRLF stays, a CR followed by any other byte becomes CRLF (that byte starts
// the next line) and a final CR ends the last line. The dot writer then
// doubles every leading '.' and adds the final ".\r\n". It returns the
// number of bytes written. A message whose last line has no end gives
// errPartial (the caller must not let the dot be written); a read failure
// gives errRead; a failure of w comes back as a writeError.
//
// notqmail does not dot-double the byte after a bare CR; doing so would let
// a message carrying "\r.\r\n" end the DATA phase early and have its remaining
// bytes read as SMTP commands. Here that byte starts a line of its own, so the
// dot writer doubles it.
func copyData(w io.Writer, r io.Reader) (int64, error) {
	bufs := copyBufs.Get().(*dataBufs)
	defer copyBufs.Put(bufs)
	buf, out := bufs.in[:], bufs.out[:0]
	bol := true    // at the beginning of a line
	cr := false    // the previous byte was a CR not yet written
	var rerr error // read error to report once the buffer is written
	var total int64
	put := func(b []byte) error {
		if len(b) == 0 {
			return nil
		}
		total += int64(len(b))
		if _, err := w.Write(b); err != nil {
			return writeError{err}
		}
		return nil
	}
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
		if err := put(out); err != nil {
			return total, err
		}
	}
	if rerr != io.EOF {
		return total, rerr
	}
	if cr {
		return total, put([]byte("\r\n"))
	}
	if !bol {
		return total, errPartial
	}
	return total, nil
}

// WriteData writes a message from r to w in SMTP DATA form, ending it with
// ".\r\n", exactly as a session does through go-smtp's DATA writer: copyData
// into textproto's dot writer. An empty message is the dot alone (the dot
// writer would put an empty line before it; the session's wire drops that
// too). Errors are those of copyData.
func WriteData(w io.Writer, r io.Reader) error {
	bw := bufio.NewWriter(w)
	dw := textproto.NewWriter(bw).DotWriter()
	n, err := copyData(dw, r)
	if err != nil {
		if ferr := bw.Flush(); ferr != nil && !errors.As(err, new(writeError)) {
			return writeError{ferr}
		}
		return err
	}
	if n == 0 {
		bw.WriteString(".\r\n")
		err = bw.Flush()
	} else {
		err = dw.Close()
	}
	if err != nil {
		return writeError{err}
	}
	return nil
}
