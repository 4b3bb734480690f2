package sched

import (
	"io"
	"strconv"
)

// safe applies qmail-send's log transformation to untrusted text: '\n'
// becomes '/', and bytes below 33, above 126 and '%' become '_'.
func safe(s string) string { return logSafe(s, 33) }

// safeWords is safe for a reason made of words ("not a regular file"):
// the spaces stay, the rest is replaced as safe replaces it.
func safeWords(s string) string { return logSafe(s, 32) }

// logSafe is safe with low as the lowest byte kept.
func logSafe(s string, low byte) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '\n':
			b[i] = '/'
		case c < low || c > 126 || c == '%':
			b[i] = '_'
		}
	}
	return string(b)
}

// logger writes one line per call to fd 0 (the logger pipe). Write errors
// are ignored, as qmail ignores them.
type logger struct {
	w   io.Writer
	buf []byte
}

func (l *logger) line(parts ...string) {
	l.buf = l.buf[:0]
	for _, p := range parts {
		l.buf = append(l.buf, p...)
	}
	l.buf = append(l.buf, '\n')
	_, _ = l.w.Write(l.buf)
}

func itoa(n int) string { return strconv.Itoa(n) }

func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
