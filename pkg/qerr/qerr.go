// Package qerr classifies failures the way qmail does: every error is either
// temporary (exit 111, report letter Z, SMTP 4xx) or permanent (exit 100,
// letter D, SMTP 5xx). Anything not classified is treated as temporary,
// qmail's bias: a deferral can be retried, a bounce cannot be taken back.
package qerr

import (
	"errors"
	"fmt"
)

// Exit codes shared by qmail's programs.
const (
	ExitOK   = 0
	ExitPerm = 100
	ExitTemp = 111
)

// Error is a failure with a class and the exact text qmail would report.
type Error struct {
	Perm bool   // permanent failure
	Text string // report text, as sent to the peer or printed
	Err  error  // underlying cause, if any (never shown to peers)
}

func (e *Error) Error() string {
	if e.Err != nil && e.Text == "" {
		return e.Err.Error()
	}
	return e.Text
}

func (e *Error) Unwrap() error { return e.Err }

// Temp returns a temporary error with the given text.
func Temp(format string, a ...any) *Error {
	return &Error{Text: fmt.Sprintf(format, a...)}
}

// Perm returns a permanent error with the given text.
func Perm(format string, a ...any) *Error {
	return &Error{Perm: true, Text: fmt.Sprintf(format, a...)}
}

// Wrap attaches a class and text to an underlying error.
func Wrap(err error, perm bool, text string) *Error {
	return &Error{Perm: perm, Text: text, Err: err}
}

// IsPerm reports whether err is classified as permanent. Unclassified
// errors and nil are not permanent.
func IsPerm(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Perm
}

// ExitCode maps err to qmail's exit status: 0 for nil, 100 for permanent,
// 111 for everything else.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case IsPerm(err):
		return ExitPerm
	default:
		return ExitTemp
	}
}

// Letter maps err to a report letter: K for nil, D for permanent, Z otherwise.
func Letter(err error) byte {
	switch {
	case err == nil:
		return 'K'
	case IsPerm(err):
		return 'D'
	default:
		return 'Z'
	}
}
