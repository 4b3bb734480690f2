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
	// A huge report keeps MaxReport bytes after the slot.
	got = nil
	d.Feed(append(append([]byte{2, 'K'}, bytes.Repeat([]byte("z"), 2*MaxReport)...), 0), emit)
	if len(got) != 1 || len(got[0].Text) != MaxReport-1 || got[0].Letter != 'K' {
		t.Errorf("huge: %d reports, text %d", len(got), len(got[0].Text))
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
