package qq

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzReadEnvelope feeds arbitrary bytes to the parser qmail-queue (a
// setuid program) runs on its fd 1. It must never panic, must end with
// exactly one of its three errors or success, must never hand over an
// address longer than MaxAddr or containing NUL, and a successful parse
// must re-encode to the bytes consumed.
func FuzzReadEnvelope(f *testing.F) {
	for _, s := range []string{
		"Fa@b\x00Tc@d\x00\x00", "F\x00\x00", "", "\x00", "Tx\x00\x00", "Fa\x00Tb\x00",
		"F#@[]\x00Tx@y\x00Tz@w\x00\x00", "Fa@b\x00X\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b) // an io.ByteReader that tells how much was consumed
		e := &Envelope{}
		first := true
		err := ReadEnvelope(r, func(kind byte, addr []byte) error {
			if len(addr) > MaxAddr || bytes.IndexByte(addr, 0) >= 0 {
				t.Fatalf("bad address handed over: %q", addr)
			}
			if first != (kind == 'F') || (kind != 'F' && kind != 'T') {
				t.Fatalf("record kind %q (first %v)", kind, first)
			}
			if first {
				e.Sender = string(addr)
			} else {
				e.Recipients = append(e.Recipients, string(addr))
			}
			first = false
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTruncate) && !errors.Is(err, ErrTooLong) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		consumed := len(b) - r.Len()
		if enc := e.Encode(); !bytes.Equal(enc, b[:consumed]) {
			t.Fatalf("re-encoding %q gives %q", b[:consumed], enc)
		}
		again, err := ParseEnvelope(e.Encode())
		if err != nil || again.Sender != e.Sender || !reflect.DeepEqual(again.Recipients, e.Recipients) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
