// Package threads keeps a reserve of idle OS threads in a long-running
// daemon, so that a full process table does not kill it.
//
// The Go runtime runs goroutines on OS threads it makes as it needs them:
// one for each goroutine blocked in a system call (a fork, until the child
// has called exec), one for each P, and a few of its own. When it cannot
// make one (clone(2) fails with EAGAIN: the tasks of the cgroup are at
// pids.max, or of the user at RLIMIT_NPROC) it does not fail the call that
// needed it: the whole process dies ("fatal error: newosproc"). qmail's C
// daemons are single-threaded; for them a full process table only makes a
// fork fail, and the delivery is deferred. For a spawner it is the
// children, each a Go program of eight or nine threads, that fill the
// table, and the spawner that needs its ninth thread a moment later dies
// with every delivery it runs: qmail-send loses its spawner and exits, and
// the deliveries in flight are made again at the next start.
//
// The runtime never ends an idle thread: one that has run out of work
// waits for more, and is the first to be given it. Reserve therefore makes
// n threads at once, at start while the process table has room, and lets
// them go idle. Later bursts (a burst of forks when a hold is released)
// run on those, and only a need beyond them asks the kernel for more. An
// idle thread costs a few pages of kernel memory and its small stack.
package threads

import (
	"runtime"
	"sync"
)

// Daemon is the reserve of the daemons that start processes: qmail-send,
// qmail-lspawn, qmail-rspawn and qmail-smtpd -listen. Each of them peaks at
// nine to thirteen threads in the integration tests' hold releases (200
// deliveries at concurrency 10 and 20); 16 covers that with room to spare,
// and costs about 40 tasks more for an idle system.
const Daemon = 16

// Reserve makes sure the process has at least n OS threads besides the
// one it runs on, leaving them idle for the runtime to use. It returns
// when they exist. A thread the kernel refuses ends the process, as it
// would have later; so call Reserve first thing in main.
//
// How: n goroutines each lock themselves to a thread and wait until all n
// are running. A goroutine locked to a thread owns it while it waits, so
// the n of them are on n distinct threads; once all are there they unlock
// and return, and the threads go idle.
func Reserve(n int) {
	if n <= 0 {
		return
	}
	var running, done sync.WaitGroup
	release := make(chan struct{})
	running.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			running.Done()
			<-release
			runtime.UnlockOSThread() // back to the runtime, idle, not ended
		}()
	}
	running.Wait()
	close(release)
	done.Wait()
}
