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
//
// Drop catches signals and does nothing with them: the way to outlive a
// signal without passing SIG_IGN on to the programs the process execs.
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

// Drop catches sigs and drops them. Unlike signal.Ignore, which sets
// SIG_IGN and so passes it on through exec, the programs this process
// starts get the default action back: a spawner that outlives TERM must
// not make every delivery and .qmail program immune to it, and one that
// outlives SIGPIPE (a write to a reader gone fails with EPIPE instead)
// must not make them ignore it.
func Drop(sigs ...os.Signal) {
	signal.Notify(make(chan os.Signal, 1), sigs...)
}
