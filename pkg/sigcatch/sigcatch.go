// Package sigcatch catches signals so that a burst of one cannot crowd
// out another.
//
// os/signal drops a signal that finds its channel full. With one channel
// shared by several signals, a burst of HUPs (link hooks sending one after
// another while a daemon starts, before it reads) can fill it and make the
// runtime drop a TERM, leaving the daemon running. Catch gives each signal
// a channel of its own with room for one pending, and a goroutine passes
// it on to the channel returned: a signal repeated while one is pending
// means no more than one, and every kind caught is delivered.
package sigcatch

import (
	"os"
	"os/signal"
)

// Catch starts catching sigs and returns the channel they arrive on.
func Catch(sigs ...os.Signal) <-chan os.Signal {
	out := make(chan os.Signal, len(sigs))
	for _, sig := range sigs {
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
