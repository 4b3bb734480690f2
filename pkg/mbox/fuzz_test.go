package mbox

import (
	"bytes"
	"io"
	"testing"
)

// reference is the obvious whole-message version of copyQuoted.
func reference(msg []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if NeedsQuote(line) {
			out = append(out, '>')
		}
		out = append(out, line...)
	}
	if len(msg) > 0 && msg[len(msg)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, '\n')
}

// FuzzCopyQuoted checks the streaming quoter against the reference for
// any message cut into reads of any size.
func FuzzCopyQuoted(f *testing.F) {
	for _, s := range []string{"", "From x\n", ">>From y", "a\nFrom", "From \n>From \nFrom:\n", "\n\n>\n"} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint8) {
		n := int(chunk%16) + 1
		var out bytes.Buffer
		w := newWriter(&out)
		if err := copyQuoted(w, &chunkReader{msg, n}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if want := reference(msg); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("copyQuoted(%q) = %q, want %q", msg, out.Bytes(), want)
		}
	})
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	k := copy(p, c.b)
	c.b = c.b[k:]
	return k, nil
}
