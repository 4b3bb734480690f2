package sched

import (
	"os"
	"syscall"

	"github.com/hqmail/hqmail/pkg/sigcatch"
)

// Notify starts catching TERM, ALRM and HUP for Run (Options.Signals),
// each on a channel of its own (sigcatch): a burst of HUPs from link hooks
// while qmail-send starts never crowds out a TERM.
func Notify() <-chan os.Signal {
	return sigcatch.Catch(syscall.SIGTERM, syscall.SIGALRM, syscall.SIGHUP)
}

// ReadyFd is the descriptor through which qmail-start learns that
// qmail-send catches the signals it forwards: the write end of a pipe,
// closed by SignalsReady. qmail-start holds back what it would forward
// until it reads end of file there (pkg/start).
const ReadyFd = 7

// SignalsReady tells qmail-start that Notify has run: it closes ReadyFd.
// Only a pipe is closed: a qmail-send started without one (by hand, or by
// an older qmail-start) may have anything there, such as a file the Go
// runtime keeps open, and leaves it alone.
func SignalsReady() {
	var st syscall.Stat_t
	if syscall.Fstat(ReadyFd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO {
		syscall.Close(ReadyFd)
	}
}
