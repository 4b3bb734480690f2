package sendmail

import (
	"bufio"
	"io"
)

// crlfReader turns each CR LF of its input into LF, as Postfix's and
// sendmail's sendmail do with a message given on standard input: PHP's
// mail() and some Windows-born scripts end every line with CR LF, which
// qmail-inject (like qmail's) keeps, leaving a CR at the end of each
// header field and a line holding only a CR at the top of the body. A
// CR not followed by LF is left alone, except the last byte of the input:
// a final line ending in CR without LF ends in LF, as with Postfix, not
// in CR and the LF qmail-inject adds.
type crlfReader struct{ r *bufio.Reader }

func newCRLFReader(r io.Reader) io.Reader { return &crlfReader{bufio.NewReader(r)} }

func (c *crlfReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	j := 0
	for i := 0; i < n; i++ {
		if p[i] == '\r' {
			if i+1 < n && p[i+1] == '\n' {
				continue
			}
			if i+1 == n {
				next, perr := c.r.Peek(1)
				if perr == nil && next[0] == '\n' {
					continue
				}
				if len(next) == 0 && perr == io.EOF {
					p[j] = '\n'
					j++
					continue
				}
			}
		}
		p[j] = p[i]
		j++
	}
	return j, err
}

// fromLineReader drops the first line of its input when it starts with
// "From " (exactly so: a capital F and a space), as sendmail and
// Postfix's sendmail do: it is the mbox separator of stored mail handed
// back to sendmail (formail, procmail, a saved message piped on), no
// header field, and qmail-inject would keep it as an "MBOX-Line:" field.
// Only the very first line: any later one is qmail-inject's to keep. A
// read error met on the way is returned by the first Read.
type fromLineReader struct {
	r       *bufio.Reader
	checked bool
}

func newFromLineReader(r io.Reader) io.Reader { return &fromLineReader{r: bufio.NewReader(r)} }

func (f *fromLineReader) Read(p []byte) (int, error) {
	if !f.checked {
		f.checked = true
		// A Peek that fails leaves its error for the Read below.
		if b, _ := f.r.Peek(len(fromLine)); string(b) == fromLine {
			for {
				_, err := f.r.ReadSlice('\n')
				if err == bufio.ErrBufferFull {
					continue
				}
				if err != nil && err != io.EOF {
					return 0, err
				}
				break
			}
		}
	}
	return f.r.Read(p)
}

// fromLine starts an mbox separator line.
const fromLine = "From "
