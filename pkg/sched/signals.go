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
