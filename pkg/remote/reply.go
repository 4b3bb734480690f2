package remote

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// Limits on what a peer can make qmail-remote hold.
const (
	// MaxText is how much of a reply is kept for "Remote host said:".
	MaxText = 5000
	// MaxReply is the most bytes one reply (all its lines) may take; a
	// longer one, or one that never ends, is a temporary failure.
	MaxReply = 128 * 1024
)

// CodeMalformed is the code given to a reply whose first line does not
// start with three digits: a temporary failure at whatever step it answers.
const CodeMalformed = 451

// errTooLong is a reply beyond MaxReply.
var errTooLong = errors.New("SMTP reply too long")

// Reply is one SMTP reply.
type Reply struct {
	Code int    // from the first three digits of the first line
	Text string // every line, CR removed, NUL turned into '?', at most MaxText bytes
}

// ReadReply reads one reply: lines whose fourth byte is '-' continue it.
// Only the first MaxText bytes are kept; every byte is consumed up to
// MaxReply, beyond which errTooLong is returned. I/O errors (EOF in the
// middle included) are returned as they are.
func ReadReply(br *bufio.Reader) (Reply, error) {
	var text strings.Builder
	code, total := 0, 0
	first := true
	truncated := false
	keep := func(b []byte) {
		for _, c := range b {
			if c == '\r' {
				continue
			}
			if text.Len() >= MaxText-1 {
				truncated = true
				return
			}
			if c == 0 {
				c = '?'
			}
			text.WriteByte(c)
		}
	}
	for {
		// One line: its first four bytes decide code and continuation.
		var head [4]byte
		n := 0
		for {
			chunk, err := br.ReadSlice('\n')
			total += len(chunk)
			if total > MaxReply {
				return Reply{}, errTooLong
			}
			for i := 0; i < len(chunk) && n < 4; i++ {
				head[n] = chunk[i]
				n++
			}
			keep(chunk)
			if err == nil {
				break
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		if first {
			first = false
			if n >= 3 && isDigit(head[0]) && isDigit(head[1]) && isDigit(head[2]) {
				code = int(head[0]-'0')*100 + int(head[1]-'0')*10 + int(head[2]-'0')
			} else {
				code = CodeMalformed
			}
		}
		if n < 4 || head[3] != '-' {
			break
		}
	}
	s := text.String()
	if truncated && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return Reply{Code: code, Text: s}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Extensions returns the EHLO keywords of a reply (uppercased, from the
// second line on) with their parameters.
func (r Reply) Extensions() map[string]string {
	m := map[string]string{}
	lines := strings.Split(r.Text, "\n")
	for _, l := range lines[1:] {
		if len(l) < 5 {
			continue
		}
		kw, params, _ := strings.Cut(strings.TrimSpace(l[4:]), " ")
		// "AUTH=PLAIN LOGIN" is the pre-standard form of "AUTH PLAIN LOGIN".
		if k, p, ok := strings.Cut(kw, "="); ok && strings.EqualFold(k, "AUTH") {
			kw, params = k, strings.TrimSpace(p+" "+params)
		}
		if kw != "" {
			m[strings.ToUpper(kw)] = params
		}
	}
	return m
}
