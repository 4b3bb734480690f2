package qread

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// FuzzChannelRoundTrip: recipient records encoded as qmail-send writes a
// local/ or remote/ file (queuetest.Channel: 'T' or 'D', the address,
// NUL) parse back equal; so do they when written all 'T' and then marked
// done one byte at a time, as qmail-send marks a finished delivery; and a
// file cut anywhere (a crash mid-write) parses to the records whose NUL
// it holds, nothing more.
func FuzzChannelRoundTrip(f *testing.F) {
	f.Add([]byte("a@b.example\x00c@d.example\x00"), []byte{1}, uint16(5))
	f.Add([]byte("x\x00\x00y"), []byte{0, 1, 1}, uint16(0))
	f.Add([]byte("T\x00D\x00\xff\xfe"), []byte{2}, uint16(9))
	f.Fuzz(func(t *testing.T, addrs, done []byte, cut uint16) {
		var rs []queuetest.Rcpt
		var want []Record
		for i, a := range bytes.Split(addrs, []byte{0}) {
			d := len(done) > 0 && done[i%len(done)]&(1<<(i/len(done)%8)) != 0
			rs = append(rs, queuetest.Rcpt{Addr: string(a), Done: d})
			want = append(want, Record{Addr: string(a), Done: d})
		}
		enc := queuetest.Channel(rs)
		if got := ParseChannel(enc); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %+v, want %+v", enc, got, want)
		}

		// All 'T', then each done record's letter overwritten with 'D'.
		todo := make([]queuetest.Rcpt, len(rs))
		for i, r := range rs {
			todo[i] = queuetest.Rcpt{Addr: r.Addr}
		}
		marked := queuetest.Channel(todo)
		pos := 0
		for _, r := range rs {
			if r.Done {
				marked[pos] = 'D'
			}
			pos += 1 + len(r.Addr) + 1
		}
		if got := ParseChannel(marked); !reflect.DeepEqual(got, want) {
			t.Fatalf("marked %q: %+v, want %+v", marked, got, want)
		}

		k := int(cut) % (len(enc) + 1)
		n := bytes.Count(enc[:k], []byte{0})
		got := ParseChannel(enc[:k])
		if n == 0 && got != nil || n > 0 && !reflect.DeepEqual(got, want[:n]) {
			t.Fatalf("%q cut at %d: %+v, want %+v", enc, k, got, want[:n])
		}
	})
}
