package qdate

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		t                  time.Time
		header, qread, fro string
	}{
		{time.Date(1995, 9, 26, 4, 46, 54, 0, time.UTC),
			"26 Sep 1995 04:46:54 -0000", "26 Sep 1995 04:46:54 GMT", "Tue Sep 26 04:46:54 1995"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC),
			"2 Jan 2026 03:04:05 -0000", "2 Jan 2026 03:04:05 GMT", "Fri Jan 02 03:04:05 2026"},
		// Local zones are converted to UTC.
		{time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("X", 3600)),
			"31 Dec 2025 23:30:00 -0000", "31 Dec 2025 23:30:00 GMT", "Wed Dec 31 23:30:00 2025"},
	} {
		if got := Header(tc.t); got != tc.header {
			t.Errorf("Header = %q, want %q", got, tc.header)
		}
		if got := Qread(tc.t); got != tc.qread {
			t.Errorf("Qread = %q, want %q", got, tc.qread)
		}
		if got := FromLine(tc.t); got != tc.fro {
			t.Errorf("FromLine = %q, want %q", got, tc.fro)
		}
	}
}
