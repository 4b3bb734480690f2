package queue

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sort"
	"strconv"
	"testing"
	"testing/iotest"
)

// encodeFrames renders msgs as qmail-queue -m reads them: each message as
// netstring chunks, sized in turn by the bytes of sizes (1 to 256 bytes;
// the whole message when sizes is empty), ended by "0:,".
func encodeFrames(msgs [][]byte, sizes []byte) []byte {
	var b []byte
	k := 0
	for _, m := range msgs {
		for len(m) > 0 {
			n := len(m)
			if len(sizes) > 0 {
				n = min(n, 1+int(sizes[k%len(sizes)]))
				k++
			}
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, ':')
			b = append(b, m[:n]...)
			b = append(b, ',')
			m = m[n:]
		}
		b = append(b, "0:,"...)
	}
	return b
}

// decodeFrames reads in as RunMulti does: a frameReader per message until
// EOF where a message would start. On an error it returns the messages so
// far, the partial one last, and the error.
func decodeFrames(in []byte) ([][]byte, error) {
	// The smallest buffer bufio allows, over a reader giving one byte at
	// a time: every frame straddles buffer refills.
	br := bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(in)), 16)
	var out [][]byte
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out, nil
		}
		m, err := io.ReadAll(&frameReader{r: br})
		out = append(out, m)
		if err != nil {
			return out, err
		}
	}
}

// refDecode is the framing of docs (multi.go), written independently:
// a chunk is "<len>:<len bytes>,", len in decimal with no sign, no leading
// zero and at most 9 digits; "0:," ends a message; EOF where a message
// would start ends the input. A malformed frame is errFrame (reported at
// the first byte that makes it so), input ending inside a message
// io.ErrUnexpectedEOF. Data before the error is delivered.
func refDecode(s []byte) ([][]byte, error) {
	var out [][]byte
	for len(s) > 0 {
		var m []byte
		for {
			d := 0
			for d < len(s) && '0' <= s[d] && s[d] <= '9' {
				d++
			}
			bad := d > 9 || d > 1 && s[0] == '0'
			switch {
			case bad:
				return append(out, m), errFrame
			case d == len(s):
				return append(out, m), io.ErrUnexpectedEOF
			case s[d] != ':' || d == 0:
				return append(out, m), errFrame
			}
			n, _ := strconv.Atoi(string(s[:d]))
			s = s[d+1:]
			if n > len(s) {
				return append(out, append(m, s...)), io.ErrUnexpectedEOF
			}
			m = append(m, s[:n]...)
			s = s[n:]
			if len(s) == 0 {
				return append(out, m), io.ErrUnexpectedEOF
			}
			if s[0] != ',' {
				return append(out, m), errFrame
			}
			s = s[1:]
			if n == 0 {
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errFrame):
		return "frame"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return err.Error()
}

// FuzzFrameRoundTrip: messages framed as qmail-queue -m's callers frame
// them (any chunking, several messages, empty ones) read back byte for
// byte, and the input ends exactly after the last "0:,". The same stream
// with one byte changed reads as refDecode reads it: the same bytes, and
// the same error class (91 malformed, 54 cut short) or none.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add([]byte("Subject: x\n\nbody\n"), []byte{}, []byte{}, uint16(0), byte('x'))
	f.Add([]byte("a\nb\nc\n"), []byte{0}, []byte{2, 4}, uint16(3), byte(','))
	f.Add([]byte("0123456789,:"), []byte{9, 0, 200}, []byte{0, 12}, uint16(5), byte('0'))
	f.Add([]byte{}, []byte{}, []byte{0, 0, 0}, uint16(1), byte(':'))
	f.Add(bytes.Repeat([]byte("x"), 300), []byte{255}, []byte{100}, uint16(4), byte('9'))
	f.Add([]byte("fifteen bytes!!"), []byte{}, []byte{}, uint16(0), byte('0')) // "05:"
	f.Add([]byte("abc"), []byte{}, []byte{}, uint16(5), byte(';'))             // "3:abc;"
	f.Fuzz(func(t *testing.T, payload, sizes, cuts []byte, at uint16, b byte) {
		// cuts splits payload into messages (at most 8).
		var pos []int
		for i, c := range cuts {
			if i == 8 {
				break
			}
			pos = append(pos, int(c)*len(payload)/256)
		}
		sort.Ints(pos)
		var msgs [][]byte
		prev := 0
		for _, p := range pos {
			msgs = append(msgs, payload[prev:p])
			prev = p
		}
		msgs = append(msgs, payload[prev:])

		enc := encodeFrames(msgs, sizes)
		got, err := decodeFrames(enc)
		if err != nil || len(got) != len(msgs) {
			t.Fatalf("%q: %d messages, %v; want %d", enc, len(got), err, len(msgs))
		}
		for i := range msgs {
			if !bytes.Equal(got[i], msgs[i]) {
				t.Fatalf("%q: message %d is %q, want %q", enc, i, got[i], msgs[i])
			}
		}

		bad := append([]byte(nil), enc...)
		bad[int(at)%len(bad)] = b
		got, err = decodeFrames(bad)
		want, werr := refDecode(bad)
		if errClass(err) != errClass(werr) || len(got) != len(want) {
			t.Fatalf("%q: %d messages, %s; reference %d, %s", bad, len(got), errClass(err), len(want), errClass(werr))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%q: message %d is %q, reference %q", bad, i, got[i], want[i])
			}
		}
	})
}
