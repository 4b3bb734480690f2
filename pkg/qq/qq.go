// Package qq is the qmail-queue protocol: the envelope format written to
// qmail-queue's fd 1, its parser (used by qmail-queue itself), the meaning of
// qmail-queue's exit codes, and the caller side that runs qmail-queue (or
// $QMAILQUEUE) and turns its exit status into a temporary or permanent
// result. qmail-inject, sendmail, qmail-smtpd, qmail-local (forwards) and
// qmail-send (bounces) all queue mail through Queue.
package qq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// MaxAddr is the longest address qmail-queue accepts (without its NUL).
const MaxAddr = 1002

// Exit codes of qmail-queue (spec/queue.md §4).
const (
	ExitOK          = 0
	ExitAddrTooLong = 11
	ExitPermRefused = 31
	ExitNoMem       = 51
	ExitTimeout     = 52
	ExitWrite       = 53
	ExitRead        = 54
	ExitConfig      = 55
	ExitNetwork     = 56
	ExitHome        = 61
	ExitQueueDir    = 62
	ExitPid         = 63
	ExitMess        = 64
	ExitIntd        = 65
	ExitTodo        = 66
	ExitTempRefused = 71
	ExitConnTimeout = 72
	ExitConnRefused = 73
	ExitComm        = 74
	ExitBug         = 81
	ExitCustom      = 82
	ExitEnvelope    = 91
	ExitExec        = 120
)

// Envelope is a sender and its recipients.
type Envelope struct {
	Sender     string
	Recipients []string
}

// Encode renders the envelope as qmail-queue reads it from fd 1:
// "F" sender NUL, "T" recipient NUL for each, then one extra NUL.
func (e *Envelope) Encode() []byte {
	n := len(e.Sender) + 3
	for _, r := range e.Recipients {
		n += len(r) + 2
	}
	b := make([]byte, 0, n)
	b = append(b, 'F')
	b = append(b, e.Sender...)
	b = append(b, 0)
	for _, r := range e.Recipients {
		b = append(b, 'T')
		b = append(b, r...)
		b = append(b, 0)
	}
	return append(b, 0)
}

// Envelope parse errors, each tied to the exit code qmail-queue uses.
var (
	ErrFormat   = errors.New("envelope format error")          // exit 91
	ErrTruncate = errors.New("envelope ends before final NUL") // exit 54
	ErrTooLong  = errors.New("envelope address too long")      // exit 11
)

// ParseExit maps an envelope parse error to qmail-queue's exit code.
func ParseExit(err error) int {
	switch {
	case errors.Is(err, ErrFormat):
		return ExitEnvelope
	case errors.Is(err, ErrTooLong):
		return ExitAddrTooLong
	default:
		return ExitRead
	}
}

// ReadEnvelope parses an envelope from r, calling rec for each record as it
// is read ('F' once, then 'T' for each recipient) so that a caller can
// stream the records to disk. It stops after the terminating NUL and never
// reads past it.
func ReadEnvelope(r io.ByteReader, rec func(kind byte, addr []byte) error) error {
	buf := make([]byte, 0, 256)
	first := true
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return ErrTruncate
			}
			return err
		}
		switch {
		case first && c != 'F':
			return ErrFormat
		case !first && c == 0:
			return nil
		case !first && c != 'T':
			return ErrFormat
		}
		buf = buf[:0]
		for {
			b, err := r.ReadByte()
			if err != nil {
				if err == io.EOF {
					return ErrTruncate
				}
				return err
			}
			if b == 0 {
				break
			}
			if len(buf) >= MaxAddr {
				return ErrTooLong
			}
			buf = append(buf, b)
		}
		if err := rec(c, buf); err != nil {
			return err
		}
		first = false
	}
}

// ParseEnvelope parses a complete envelope held in memory.
func ParseEnvelope(data []byte) (*Envelope, error) {
	e := &Envelope{}
	err := ReadEnvelope(bufio.NewReader(bytes.NewReader(data)), func(kind byte, addr []byte) error {
		if kind == 'F' {
			e.Sender = string(addr)
		} else {
			e.Recipients = append(e.Recipients, string(addr))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ExitError maps a qmail-queue exit status to the caller's result: nil for
// 0, else a qerr.Error whose Text is qmail's caller text without the
// leading D/Z letter.
func ExitError(code int) error {
	t := func(s string) error { return qerr.Temp("%s", s) }
	p := func(s string) error { return qerr.Perm("%s", s) }
	switch {
	case code == 0:
		return nil
	case code == 11 || code == 115:
		return p("envelope address too long for qq (#5.1.3)")
	case code == 31:
		return p("mail server permanently rejected message (#5.3.0)")
	case code == 51:
		return t("qq out of memory (#4.3.0)")
	case code == 52:
		return t("qq timeout (#4.3.0)")
	case code == 53:
		return t("qq write error or disk full (#4.3.0)")
	case code == 54:
		return t("qq read error (#4.3.0)")
	case code == 55:
		return t("qq unable to read configuration (#4.3.0)")
	case code == 56:
		return t("qq trouble making network connection (#4.3.0)")
	case code == 61:
		return t("qq trouble in home directory (#4.3.0)")
	case code >= 62 && code <= 66:
		return t("qq trouble creating files in queue (#4.3.0)")
	case code == 71:
		return t("mail server temporarily rejected message (#4.3.0)")
	case code == 72:
		return t("connection to mail server timed out (#4.4.1)")
	case code == 73:
		return t("connection to mail server rejected (#4.4.1)")
	case code == 74:
		return t("communication with mail server failed (#4.4.2)")
	case code == 81 || code == 91:
		return t("qq internal bug (#4.3.0)")
	case code == 120:
		return t("unable to exec qq (#4.3.0)")
	case code >= 11 && code <= 40:
		return p("qq permanent problem (#5.3.0)")
	default:
		return t("qq temporary problem (#4.3.0)")
	}
}

// StartFailure says, for an operator, why a qmail-queue could not be
// started: err is what Queue or a Session returned with no pid. Every such
// failure has qmail's caller text, "unable to exec qq", also when exec was
// never reached (no descriptor left for a pipe); the system error it wraps
// is what the operator needs: "unable to start qmail-queue: too many open
// files", "unable to start /var/qmail/bin/qmail-queue: permission denied".
func StartFailure(err error) string {
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Err == nil {
		return "qmail-queue: " + err.Error()
	}
	var pe *fs.PathError
	if errors.As(qe.Err, &pe) && pe.Path != "" {
		// os.StartProcess names the program; the error may still be
		// the fork's (EMFILE for exec's own pipe, EAGAIN, ENOMEM).
		return fmt.Sprintf("unable to start %s: %v", pe.Path, qerr.Bare(qe.Err))
	}
	return fmt.Sprintf("unable to start qmail-queue: %v", qerr.Bare(qe.Err))
}
