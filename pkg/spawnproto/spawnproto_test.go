package spawnproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	reqs := []Request{
		{Slot: 0, Mess: "7/12345", Sender: "a@b", Recipient: "c@d"},
		{Slot: 119, Mess: "22/99", Sender: "", Recipient: "x@y"},
		{Slot: 255, Mess: "", Sender: "#@[]", Recipient: ""},
		{Slot: 5, Mess: "1/1", Sender: "8bit\xff", Recipient: "new\nline@x"},
	}
	var stream []byte
	for i := range reqs {
		stream = append(stream, reqs[i].Encode()...)
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	for i := range reqs {
		got, err := ReadRequest(r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !reflect.DeepEqual(*got, reqs[i]) {
			t.Errorf("request %d: %+v, want %+v", i, *got, reqs[i])
		}
	}
	if _, err := ReadRequest(r); err != io.EOF {
		t.Errorf("after the last request: %v, want EOF", err)
	}
}

func TestReadRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err error
	}{
		{"", io.EOF},
		{"\x01", io.ErrUnexpectedEOF},
		{"\x011/2\x00a@b", io.ErrUnexpectedEOF},
		{"\x011/2\x00a@b\x00c@d", io.ErrUnexpectedEOF},
	} {
		_, err := ReadRequest(bufio.NewReader(strings.NewReader(tc.in)))
		if err != tc.err {
			t.Errorf("%q: %v, want %v", tc.in, err, tc.err)
		}
	}
	// An overlong field is cut at MaxField, flagged, and the stream stays
	// in step.
	long := strings.Repeat("x", MaxField+10)
	in := "\x03" + "1/2\x00" + long + "\x00c@d\x00" + "\x04" + "3/4\x00a\x00b\x00"
	r := bufio.NewReader(strings.NewReader(in))
	got, err := ReadRequest(r)
	if err != nil || !got.TooLong || len(got.Sender) != MaxField || got.Recipient != "c@d" || got.Slot != 3 {
		t.Fatalf("long: %v %v %d %q", err, got.TooLong, len(got.Sender), got.Recipient)
	}
	next, err := ReadRequest(r)
	if err != nil || next.Slot != 4 || next.Mess != "3/4" || next.TooLong {
		t.Errorf("after long: %+v %v", next, err)
	}
}

func TestReportRoundTrip(t *testing.T) {
	reps := []Report{
		{Slot: 0, Letter: 'K', Text: "did 0+1+0/"},
		{Slot: 7, Letter: 'Z', Text: "temporary\nmulti line\n"},
		{Slot: 119, Letter: 'D', Text: ""},
		{Slot: 255, Letter: 'K', Text: strings.Repeat("y", 500)},
	}
	var stream []byte
	for i := range reps {
		stream = append(stream, reps[i].Encode()...)
	}
	// Feed in every possible split to check reassembly.
	for cut := 0; cut <= len(stream); cut += 37 {
		var d ReportDecoder
		var got []Report
		d.Feed(stream[:cut], func(r Report) { got = append(got, r) })
		d.Feed(stream[cut:], func(r Report) { got = append(got, r) })
		if d.Pending() {
			t.Errorf("cut %d: pending after the full stream", cut)
		}
		// The empty-text D report decodes with its letter.
		if !reflect.DeepEqual(got, reps) {
			t.Fatalf("cut %d: %+v", cut, got)
		}
	}
}

func TestReportEdgeCases(t *testing.T) {
	// Text with a NUL is cut at it when encoded.
	r := Report{Slot: 1, Letter: 'D', Text: "a\x00b"}
	if got := r.Encode(); string(got) != "\x01Da\x00" {
		t.Errorf("Encode = %q", got)
	}
	var d ReportDecoder
	var got []Report
	emit := func(r Report) { got = append(got, r) }
	// Slot byte NUL, then an immediate NUL: a mangled report (Letter 0).
	d.Feed([]byte{0, 0}, emit)
	if len(got) != 1 || got[0].Slot != 0 || got[0].Letter != 0 {
		t.Errorf("mangled: %+v", got)
	}
	// A huge report keeps MaxReport bytes, slot byte and letter included,
	// as qmail does: 9998 bytes of text.
	got = nil
	d.Feed(append(append([]byte{2, 'K'}, bytes.Repeat([]byte("z"), 2*MaxReport)...), 0), emit)
	if len(got) != 1 || len(got[0].Text) != 9998 || got[0].Letter != 'K' {
		t.Errorf("huge: %d reports, text %d", len(got), len(got[0].Text))
	}
	// At the edge: 9998 bytes of text are kept whole, 9999 lose one.
	for _, n := range []int{9997, 9998, 9999} {
		got = nil
		text := bytes.Repeat([]byte("y"), n-1)
		text = append(text, 'e')
		d.Feed(append(append([]byte{4, 'Z'}, text...), 0), emit)
		want := string(text[:min(n, 9998)])
		if len(got) != 1 || got[0].Slot != 4 || got[0].Letter != 'Z' || got[0].Text != want {
			t.Errorf("text of %d: got %d reports, text %d bytes", n, len(got), len(got[0].Text))
		}
	}
	// A partial report is pending.
	d.Feed([]byte{3, 'Z', 'x'}, emit)
	if !d.Pending() {
		t.Error("partial report not pending")
	}
}

func TestCleanRequests(t *testing.T) {
	if got := CleanRequest(CleanFoop, 12345); string(got) != "foop/12345\x00" {
		t.Errorf("CleanRequest = %q", got)
	}
	in := string(CleanRequest(CleanTodo, 7)) + string(CleanRequest(CleanFoop, 18446744073709551615)) +
		"junk/1\x00" + "todo/\x00" + "todo/12a\x00" + "foop-1234\x00" + "todo/" + strings.Repeat("9", 200) + "\x00" +
		"todo/99999999999999999999999\x00" + "foop/42\x00"
	r := bufio.NewReader(strings.NewReader(in))
	type res struct {
		kind string
		id   uint64
		bad  bool
	}
	want := []res{
		{"todo", 7, false}, {"foop", 18446744073709551615, false},
		{bad: true}, {bad: true}, {bad: true}, {bad: true}, {bad: true}, {bad: true},
		{"foop", 42, false},
	}
	for i, w := range want {
		kind, id, err := ReadCleanRequest(r)
		if w.bad {
			if !errors.Is(err, ErrCleanRequest) {
				t.Errorf("%d: %v, want ErrCleanRequest", i, err)
			}
			continue
		}
		if err != nil || kind != w.kind || id != w.id {
			t.Errorf("%d: %s %d %v", i, kind, id, err)
		}
	}
	if _, _, err := ReadCleanRequest(r); err != io.EOF {
		t.Errorf("end: %v", err)
	}
	if _, _, err := ReadCleanRequest(bufio.NewReader(strings.NewReader("todo/1"))); err != io.ErrUnexpectedEOF {
		t.Errorf("unterminated: %v", err)
	}
}

func TestAnnounce(t *testing.T) {
	for _, tc := range []struct {
		limit int
		wire  string
		got   int // limit read back
		width int
	}{
		{1, "\x01", 1, Narrow},
		{120, "\x78", 120, Narrow},
		{255, "\xff", 255, Narrow},
		{256, "\x00\x01\x00", 256, Wide},
		{500, "\x00\x01\xf4", 500, Wide},
		{65535, "\x00\xff\xff", 65535, Wide},
		{70000, "\x00\xff\xff", 65535, Wide}, // clamped
		{0, "\x01", 1, Narrow},               // clamped
	} {
		b, w := Announce(tc.limit)
		if string(b) != tc.wire || w != tc.width {
			t.Errorf("Announce(%d) = %q %d, want %q %d", tc.limit, b, w, tc.wire, tc.width)
		}
		// The reader takes exactly the announcement and nothing after it.
		r := strings.NewReader(string(b) + "rest")
		limit, width, err := ReadAnnounce(r)
		if err != nil || limit != tc.got || width != tc.width || r.Len() != 4 {
			t.Errorf("ReadAnnounce(%q) = %d %d %v, left %d", b, limit, width, err, r.Len())
		}
	}
	for _, tc := range []struct {
		in    string
		limit int
		width int
		err   error
	}{
		{"", 0, 0, io.EOF},
		{"\x00", 0, 0, io.ErrUnexpectedEOF},
		{"\x00\x01", 0, 0, io.ErrUnexpectedEOF},
		{"\x00\x00\x00", 0, Wide, nil}, // a wide zero: no deliveries
		{"\x00\x00\x05", 5, Wide, nil}, // small limits may be wide too
	} {
		limit, width, err := ReadAnnounce(strings.NewReader(tc.in))
		if limit != tc.limit || width != tc.width || err != tc.err {
			t.Errorf("ReadAnnounce(%q) = %d %d %v, want %d %d %v", tc.in, limit, width, err, tc.limit, tc.width, tc.err)
		}
	}
}

func TestWideRequestRoundTrip(t *testing.T) {
	reqs := []Request{
		{Slot: 0, Mess: "7/12345", Sender: "a@b", Recipient: "c@d"},
		{Slot: 255, Mess: "22/99", Sender: "", Recipient: "x@y"},
		{Slot: 256, Mess: "1/1", Sender: "s@t", Recipient: "u@v"},
		{Slot: 499, Mess: "", Sender: "", Recipient: ""},
		{Slot: 65535, Mess: "3/3", Sender: "#@[]", Recipient: "r@s"},
	}
	var stream []byte
	for i := range reqs {
		stream = append(stream, reqs[i].EncodeWidth(Wide)...)
	}
	if got := (&Request{Slot: 0x1f4, Mess: "1/2", Sender: "a", Recipient: "b@c"}).EncodeWidth(Wide); string(got) != "\x01\xf41/2\x00a\x00b@c\x00" {
		t.Errorf("wire form %q", got)
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	for i := range reqs {
		got, err := ReadRequestWidth(r, Wide)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !reflect.DeepEqual(*got, reqs[i]) {
			t.Errorf("request %d: %+v, want %+v", i, *got, reqs[i])
		}
	}
	if _, err := ReadRequestWidth(r, Wide); err != io.EOF {
		t.Errorf("after the last request: %v, want EOF", err)
	}
	for _, in := range []string{"\x01", "\x01\xf4", "\x01\xf41/2\x00"} {
		if _, err := ReadRequestWidth(bufio.NewReader(strings.NewReader(in)), Wide); err != io.ErrUnexpectedEOF {
			t.Errorf("%q: %v, want unexpected EOF", in, err)
		}
	}
}

func TestWideReportRoundTrip(t *testing.T) {
	reps := []Report{
		{Slot: 0, Letter: 'K', Text: "did 0+1+0/"},  // both slot bytes NUL
		{Slot: 0x100, Letter: 'Z', Text: "later\n"}, // low byte NUL
		{Slot: 0x0ff, Letter: 'D', Text: ""},        // high byte NUL
		{Slot: 499, Letter: 'K', Text: "x"},
		{Slot: 65535, Letter: 'K', Text: strings.Repeat("y", 300)},
	}
	var stream []byte
	for i := range reps {
		stream = append(stream, reps[i].EncodeWidth(Wide)...)
	}
	if got := reps[1].EncodeWidth(Wide); string(got) != "\x01\x00Zlater\n\x00" {
		t.Errorf("wire form %q", got)
	}
	for cut := 0; cut <= len(stream); cut++ {
		d := ReportDecoder{Width: Wide}
		var got []Report
		d.Feed(stream[:cut], func(r Report) { got = append(got, r) })
		d.Feed(stream[cut:], func(r Report) { got = append(got, r) })
		if d.Pending() {
			t.Errorf("cut %d: pending after the full stream", cut)
		}
		if !reflect.DeepEqual(got, reps) {
			t.Fatalf("cut %d: %+v", cut, got)
		}
	}
	// Wide edge cases: slot bytes NUL then an immediate NUL is a mangled
	// report of slot 0; a lone first slot byte is pending; a huge report
	// keeps MaxReport bytes, the two slot bytes included: 9997 of text.
	d := ReportDecoder{Width: Wide}
	var got []Report
	emit := func(r Report) { got = append(got, r) }
	d.Feed([]byte{0, 0, 0}, emit)
	if len(got) != 1 || got[0].Slot != 0 || got[0].Letter != 0 {
		t.Errorf("mangled: %+v", got)
	}
	got = nil
	d.Feed(append(append([]byte{1, 2, 'K'}, bytes.Repeat([]byte("z"), 2*MaxReport)...), 0), emit)
	if len(got) != 1 || got[0].Slot != 258 || len(got[0].Text) != 9997 {
		t.Errorf("huge: %d reports, text %d", len(got), len(got[0].Text))
	}
	d.Feed([]byte{1}, emit)
	if !d.Pending() {
		t.Error("half a slot field not pending")
	}
}
