package sched

import (
	"os"
	"os/signal"
	"syscall"
)

// Notify starts catching TERM, ALRM and HUP for Run (Options.Signals).
//
// Each signal has a channel of its own with room for one pending, and a
// goroutine passes it on: a burst of one signal (link hooks sending HUP
// after HUP while qmail-send starts, before Run reads) then never crowds
// out another. With one shared buffer, the runtime drops a signal that
// finds it full, and a TERM lost that way would leave qmail-send
// running; a HUP or an ALRM repeated means no more than one.
func Notify() <-chan os.Signal {
	out := make(chan os.Signal, 3)
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGALRM, syscall.SIGHUP} {
		c := make(chan os.Signal, 1)
		signal.Notify(c, sig)
		go func() {
			for s := range c {
				out <- s
			}
		}()
	}
	return out
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
