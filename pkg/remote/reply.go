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
	r, _, err := readReply(br)
	if err != nil {
		return Reply{}, err
	}
	return r, nil
}

// readReply is ReadReply that on an error also returns what it had read:
// the text so far (ended with a LF) and, when coded is set, the code of
// the first line, of which the three digits and the space or dash after
// them had arrived (the line itself may be cut short).
func readReply(br *bufio.Reader) (r Reply, coded bool, err error) {
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
	done := func() Reply {
		s := text.String()
		if (truncated || err != nil) && s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return Reply{Code: code, Text: s}
	}
	for {
		// One line: its first four bytes decide code and continuation.
		var head [4]byte
		n := 0
		for {
			chunk, rerr := br.ReadSlice('\n')
			total += len(chunk)
			if total > MaxReply {
				err = errTooLong
				return done(), coded, err
			}
			for i := 0; i < len(chunk) && n < 4; i++ {
				head[n] = chunk[i]
				n++
			}
			if first && !coded && n == 4 && isCode(head[:3]) && (head[3] == ' ' || head[3] == '-') {
				code, coded = atoi3(head[:3]), true
			}
			keep(chunk)
			if rerr == nil {
				break
			}
			if rerr == bufio.ErrBufferFull {
				continue
			}
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			err = rerr
			return done(), coded, err
		}
		if first {
			first = false
			switch {
			case coded:
			case n >= 3 && isCode(head[:3]):
				code = atoi3(head[:3])
			default:
				code = CodeMalformed
			}
		}
		if n < 4 || head[3] != '-' {
			break
		}
	}
	return done(), coded, nil
}

func isCode(b []byte) bool { return isDigit(b[0]) && isDigit(b[1]) && isDigit(b[2]) }

func atoi3(b []byte) int { return int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0') }

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
