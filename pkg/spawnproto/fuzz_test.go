package spawnproto

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzReportDecoder: any byte stream, split anywhere, decodes to the same
// reports, each bounded, and re-encoding a decoded report that has a
// letter decodes to itself.
func FuzzReportDecoder(f *testing.F) {
	f.Add([]byte("\x00Kok\x00\x01Zlater\x00"), 3)
	f.Add([]byte{0, 0, 5, 'D'}, 1)
	f.Add([]byte("\x07Dfail\nline two\x00\x07"), 0)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		var whole, split []Report
		var d1, d2 ReportDecoder
		d1.Feed(b, func(r Report) { whole = append(whole, r) })
		if cut < 0 {
			cut = -cut
		}
		if len(b) > 0 {
			cut %= len(b) + 1
		} else {
			cut = 0
		}
		d2.Feed(b[:cut], func(r Report) { split = append(split, r) })
		d2.Feed(b[cut:], func(r Report) { split = append(split, r) })
		if len(whole) != len(split) {
			t.Fatalf("whole %d reports, split %d", len(whole), len(split))
		}
		for i, r := range whole {
			if r != split[i] {
				t.Fatalf("report %d differs: %+v %+v", i, r, split[i])
			}
			if 1+1+len(r.Text) > MaxReport || r.Slot < 0 || r.Slot > 255 {
				t.Fatalf("unbounded report %+v", r)
			}
			if r.Letter != 0 && bytes.IndexByte([]byte(r.Text), 0) < 0 {
				var d ReportDecoder
				var again []Report
				d.Feed(r.Encode(), func(x Report) { again = append(again, x) })
				if len(again) != 1 || again[0] != r {
					t.Fatalf("round trip %+v -> %+v", r, again)
				}
			}
		}
	})
}

// FuzzReadRequest: the spawner's request reader never panics, always makes
// progress, and a request it returns re-encodes to what it consumed when
// no field was cut.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("\x001/2\x00a@b\x00c@d\x00"))
	f.Add([]byte("\x05\x00\x00\x00\x06x"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := bytes.NewReader(b)
		r := bufio.NewReader(src)
		consumedBefore := 0
		for i := 0; i < len(b)+1; i++ {
			req, err := ReadRequest(r)
			consumed := len(b) - src.Len() - r.Buffered()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("error %v", err)
				}
				return
			}
			if !req.TooLong && !bytes.Equal(req.Encode(), b[consumedBefore:consumed]) {
				t.Fatalf("re-encode %q != consumed %q", req.Encode(), b[consumedBefore:consumed])
			}
			if consumed <= consumedBefore {
				t.Fatal("no progress")
			}
			consumedBefore = consumed
		}
	})
}

// FuzzReadCleanRequest: qmail-clean's reader never panics and accepts only
// well-formed requests.
func FuzzReadCleanRequest(f *testing.F) {
	f.Add([]byte("foop/123\x00todo/4\x00"))
	f.Add([]byte("x\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < len(b)+1; i++ {
			kind, id, err := ReadCleanRequest(r)
			if err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return
				}
				if err != ErrCleanRequest {
					t.Fatalf("error %v", err)
				}
				continue
			}
			if kind != CleanFoop && kind != CleanTodo {
				t.Fatalf("kind %q", kind)
			}
			_ = id
		}
	})
}

// FuzzWideReportDecoder: the same properties for the wide form, plus: the
// slot of every report is in 0..65535, and the stream decodes the same
// whether fed whole or split inside a slot field.
func FuzzWideReportDecoder(f *testing.F) {
	f.Add([]byte("\x00\x00Kok\x00\x01\xf4Zlater\x00"), 1)
	f.Add([]byte{0, 0, 0, 1, 0, 'D', 0}, 4)
	f.Add([]byte("\x01\x00"), 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		var whole, split []Report
		d1 := ReportDecoder{Width: Wide}
		d2 := ReportDecoder{Width: Wide}
		d1.Feed(b, func(r Report) { whole = append(whole, r) })
		if cut < 0 {
			cut = -cut
		}
		if cut < 0 || len(b) == 0 {
			cut = 0
		} else {
			cut %= len(b) + 1
		}
		d2.Feed(b[:cut], func(r Report) { split = append(split, r) })
		d2.Feed(b[cut:], func(r Report) { split = append(split, r) })
		if len(whole) != len(split) || d1.Pending() != d2.Pending() {
			t.Fatalf("whole %d reports, split %d", len(whole), len(split))
		}
		for i, r := range whole {
			if r != split[i] {
				t.Fatalf("report %d differs: %+v %+v", i, r, split[i])
			}
			if len(r.Text) >= MaxReport || r.Slot < 0 || r.Slot > MaxWide {
				t.Fatalf("unbounded report %+v", r)
			}
			if r.Letter != 0 && bytes.IndexByte([]byte(r.Text), 0) < 0 {
				d := ReportDecoder{Width: Wide}
				var again []Report
				d.Feed(r.EncodeWidth(Wide), func(x Report) { again = append(again, x) })
				if len(again) != 1 || again[0] != r {
					t.Fatalf("round trip %+v -> %+v", r, again)
				}
			}
		}
	})
}

// FuzzWideReadRequest: the wide request reader never panics, always makes
// progress, and re-encodes what it consumed when no field was cut.
func FuzzWideReadRequest(f *testing.F) {
	f.Add([]byte("\x01\xf31/2\x00a@b\x00c@d\x00"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x06"))
	f.Add([]byte("\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := bytes.NewReader(b)
		r := bufio.NewReader(src)
		consumedBefore := 0
		for i := 0; i < len(b)+1; i++ {
			req, err := ReadRequestWidth(r, Wide)
			consumed := len(b) - src.Len() - r.Buffered()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("error %v", err)
				}
				return
			}
			if req.Slot < 0 || req.Slot > MaxWide {
				t.Fatalf("slot %d", req.Slot)
			}
			if !req.TooLong && !bytes.Equal(req.EncodeWidth(Wide), b[consumedBefore:consumed]) {
				t.Fatalf("re-encode %q != consumed %q", req.EncodeWidth(Wide), b[consumedBefore:consumed])
			}
			if consumed <= consumedBefore {
				t.Fatal("no progress")
			}
			consumedBefore = consumed
		}
	})
}

// FuzzReadAnnounce: any start of a spawner's output reads as at most
// three bytes, and a valid announcement re-encodes to what was consumed
// (wide zero and small wide limits excepted: Announce uses the plain byte
// there).
func FuzzReadAnnounce(f *testing.F) {
	f.Add([]byte("\x78"))
	f.Add([]byte("\x00\x01\xf4\x00"))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		limit, width, err := ReadAnnounce(r)
		used := len(b) - r.Len()
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("error %v", err)
			}
			return
		}
		if (width == Narrow) != (used == 1) || (width == Wide) != (used == 3) || limit < 0 || limit > MaxWide {
			t.Fatalf("limit %d width %d used %d", limit, width, used)
		}
		if limit > MaxNarrow || width == Narrow {
			if a, w := Announce(limit); w != width || !bytes.Equal(a, b[:used]) {
				t.Fatalf("Announce(%d) = %q %d, read %q", limit, a, w, b[:used])
			}
		}
	})
}
