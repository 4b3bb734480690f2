package remote

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWriteData(t *testing.T) {
	tests := []struct {
		name, in, out string
		err           error
	}{
		{"empty", "", ".\r\n", nil},
		{"lf", "a\nb\n", "a\r\nb\r\n.\r\n", nil},
		{"crlf kept", "a\r\nb\r\n", "a\r\nb\r\n.\r\n", nil},
		{"bare cr", "a\rb\n", "a\r\nb\r\n.\r\n", nil},
		{"final cr", "a\r", "a\r\n.\r\n", nil},
		{"cr cr lf", "a\r\r\n", "a\r\n\r\n.\r\n", nil},
		{"dots", ".a\n..b\nc.\n.\n", "..a\r\n...b\r\nc.\r\n..\r\n.\r\n", nil},
		{"dot after crlf", "x\r\n.\r\n", "x\r\n..\r\n.\r\n", nil},
		{"dot after bare cr doubled", "a\r.\r\n", "a\r\n..\r\n.\r\n", nil},
		{"partial", "a\nb", "a\r\nb", errPartial},
		{"only partial", "x", "x", errPartial},
		{"8bit", "\xff\x00\n", "\xff\x00\r\n.\r\n", nil},
	}
	for _, tt := range tests {
		for _, reader := range []func(string) io.Reader{
			func(s string) io.Reader { return strings.NewReader(s) },
			func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		} {
			var b bytes.Buffer
			err := WriteData(&b, reader(tt.in))
			if !errors.Is(err, tt.err) || b.String() != tt.out {
				t.Errorf("%s: got %q, %v; want %q, %v", tt.name, b.String(), err, tt.out, tt.err)
			}
		}
	}
}

func TestWriteDataReadError(t *testing.T) {
	var b bytes.Buffer
	err := WriteData(&b, iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("ab\n"))))
	if !errors.Is(err, errRead) {
		t.Fatalf("got %v", err)
	}
}

func TestWriteDataBig(t *testing.T) {
	// Line boundaries falling on read-buffer boundaries.
	in := strings.Repeat(strings.Repeat("x", 65535)+"\r", 3) + "\n.\n"
	var b bytes.Buffer
	if err := WriteData(&b, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat(strings.Repeat("x", 65535)+"\r\n", 3) + "..\r\n.\r\n"
	if b.String() != want {
		t.Fatalf("mismatch: len %d want %d", b.Len(), len(want))
	}
}

// FuzzWriteData checks the invariants of the DATA encoding: no bare CR or
// LF in the output, and no line that is a lone dot before the end.
func FuzzWriteData(f *testing.F) {
	for _, s := range []string{"", "a\n", ".\r\n", "a\r.\r\n", "\r\r\n.", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var b bytes.Buffer
		err := WriteData(&b, bytes.NewReader(in))
		if err != nil {
			if errors.Is(err, errPartial) {
				return
			}
			t.Fatal(err)
		}
		out := b.Bytes()
		if !bytes.HasSuffix(out, []byte(".\r\n")) {
			t.Fatalf("no terminator: %q", out)
		}
		body := out[:len(out)-3]
		for i, c := range body {
			if c == '\n' && (i == 0 || body[i-1] != '\r') {
				t.Fatalf("bare LF in %q", out)
			}
			if c == '\r' && (i+1 >= len(body) || body[i+1] != '\n') {
				t.Fatalf("bare CR in %q", out)
			}
		}
		for _, line := range bytes.Split(body, []byte("\r\n")) {
			if len(line) > 0 && line[0] == '.' && (len(line) == 1 || line[1] != '.') {
				t.Fatalf("unstuffed dot line %q in %q", line, out)
			}
		}
	})
}
