// Package qdate formats times the way qmail writes them in headers and logs.
package qdate

import "time"

// Header formats t in UTC as qmail's Received:/Date: lines do:
// "26 Sep 1995 04:46:54 -0000" (day of month unpadded).
func Header(t time.Time) string {
	return t.UTC().Format("2 Jan 2006 15:04:05") + " -0000"
}

// Qread formats t as qmail-qread does: "26 Sep 1995 04:46:54 GMT".
func Qread(t time.Time) string {
	return t.UTC().Format("2 Jan 2006 15:04:05") + " GMT"
}

// FromLine formats t for an mbox "From " line: "Thu Nov 26 03:22:00 2026"
// (UTC, day of month zero-padded).
func FromLine(t time.Time) string {
	return t.UTC().Format("Mon Jan 02 15:04:05 2006")
}
