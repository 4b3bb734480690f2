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
