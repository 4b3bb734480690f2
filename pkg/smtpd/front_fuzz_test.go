package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// addrReference is the spec's rule for a MAIL or RCPT argument
// (spec/injection.md, "Address parsing") written as a state machine, to
// check parseAddr against: the address starts after the first '<' (and
// then ends at an unquoted '>'), or else after the first ':' and its
// spaces (and ends at an unquoted space), or there is none; a source
// route, from a leading '@' through the next ':', is skipped; double
// quotes are dropped and a backslash keeps the byte after it. rest is
// what follows the terminator, empty when there is none.
func addrReference(arg string) (addr, rest string) {
	const (
		plain = iota
		quoted
		escaped       // after a backslash outside quotes
		escapedQuoted // after a backslash inside quotes
	)
	start, term := len(arg), byte(' ')
	if i := strings.Index(arg, "<"); i != -1 {
		start, term = i+1, '>'
	} else if i := strings.Index(arg, ":"); i != -1 {
		start = i + 1
		for start < len(arg) && arg[start] == ' ' {
			start++
		}
	}
	if start < len(arg) && arg[start] == '@' {
		if j := strings.Index(arg[start:], ":"); j != -1 {
			start += j + 1
		} else {
			start = len(arg)
		}
	}
	var out []byte
	state := plain
	for i := start; i < len(arg); i++ {
		c := arg[i]
		switch state {
		case escaped:
			out, state = append(out, c), plain
		case escapedQuoted:
			out, state = append(out, c), quoted
		case quoted:
			switch c {
			case '\\':
				state = escapedQuoted
			case '"':
				state = plain
			default:
				out = append(out, c)
			}
		case plain:
			switch c {
			case term:
				return string(out), arg[i+1:]
			case '\\':
				state = escaped
			case '"':
				state = quoted
			default:
				out = append(out, c)
			}
		}
	}
	return string(out), ""
}

// FuzzParseAddr: qmail's MAIL/RCPT argument parser agrees with the
// spec's rule (addrReference) on every input, ESMTP parameters included,
// and sizeParam takes any rest without panicking.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"FROM:<a@b>", "TO:<@r,@s:u@d> SIZE=1", `TO:<"a>b"@c>`, `x\`, "FROM: a@b c", "<", "@", `TO:<\`,
		"FROM:  @r:a@b SIZE=9", `TO:<"a\"b"@c> X`, "TO:<@r>", `TO:a\ b c`, `FROM:<a@b> <c@d>`, "TO:", `TO:<"a b>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		addr, rest := parseAddr(arg)
		wantAddr, wantRest := addrReference(arg)
		if addr != wantAddr || rest != wantRest {
			t.Fatalf("parseAddr(%q) = %q, %q; the spec's rule gives %q, %q", arg, addr, rest, wantAddr, wantRest)
		}
		sizeParam(rest)
	})
}

// dataReference is qmail's DATA rule written differently: the message
// ends at the first ".\r\n" at the start of a line (the input's start or
// after "\r\n"), and a '.' at the start of a line is removed unless a CR
// follows it (".\r" not followed by LF is kept whole, as qmail's blast()
// gives it back). ok is false when there is no end.
func dataReference(in []byte) (msg, rest []byte, ok bool) {
	lineStart := func(i int) bool { return i == 0 || (i >= 2 && in[i-2] == '\r' && in[i-1] == '\n') }
	end := -1
	for i := 0; i+3 <= len(in); i++ {
		if lineStart(i) && in[i] == '.' && in[i+1] == '\r' && in[i+2] == '\n' {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, nil, false
	}
	for i := 0; i < end; i++ {
		if in[i] == '.' && lineStart(i) && in[i+1] != '\r' {
			continue
		}
		msg = append(msg, in[i])
	}
	return msg, in[end+3:], true
}

// FuzzBodyReader: front's DATA reader agrees with the reference, whatever
// the read sizes, and never reads past the end of the message.
func FuzzBodyReader(f *testing.F) {
	for _, s := range []string{".\r\n", "a\r\n.\r\nQUIT\r\n", "..\r\n.\r\n", "a\r\r\n.\r\nx", ".\rX\r\n.\r\n", ".\r\r\n.\r\n", "a\nb", "\r\n.\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		fr := &front{cs: &connState{cfg: &Config{MaxLine: 1 << 20}}, br: bufio.NewReaderSize(bytes.NewReader(in), 16), data: dataBody}
		r := bodyReader{fr}
		var out []byte
		buf := make([]byte, 300)
		var err error
		for i := 0; i < 10*len(in)+10; i++ {
			var n int
			n, err = r.Read(buf[:1+int(step)%len(buf)])
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		want, rest, ok := dataReference(in)
		if !ok {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("no end in %q, but %v", in, err)
			}
			return
		}
		if err != io.EOF || fr.data != dataDrain {
			t.Fatalf("%q: ended with %v, mode %d", in, err, fr.data)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("%q: got %q, want %q", in, out, want)
		}
		left, _ := io.ReadAll(fr.br)
		if !bytes.Equal(left, rest) {
			t.Fatalf("%q: left %q, want %q", in, left, rest)
		}
	})
}
