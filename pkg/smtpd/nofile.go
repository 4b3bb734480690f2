package smtpd

import "github.com/hqmail/hqmail/pkg/nofile"

// In -listen mode every session lives in one process and so shares one
// descriptor table, where tcpserver gives each qmail-smtpd a table of its
// own. A session that finds the table full cannot start qmail-queue and
// answers "451 qqt failure", so the listener serves no more sessions at
// once than RLIMIT_NOFILE has room for (Listener.Serve, FitSessions).
//
// fdsPerSession is the most one session holds at a time, at the moment
// it starts qmail-queue:
//
//   - 1: the client's connection. STARTTLS runs over it and adds none.
//   - 6: qmail-queue's three pipes while it is being started, both ends
//     of each (qmail-queue -m: message, envelope, result line; with
//     $QMAILQUEUE, one process per message: message, envelope, fd 6's
//     error text). Once it runs, the session keeps three ends.
//   - 2: the pipe os/exec uses for the duration of fork and exec, to learn
//     whether exec failed.
//   - 1: the child's pidfd, held until it is waited for.
//
// Nothing else overlaps with that: the control files, servercert.pem,
// morercpthosts.cdb and the interface list (localiphost) are each opened
// and closed again before DATA, one at a time. The queue service's path
// (a socket and two pipes) is smaller, and is closed before qmail-queue
// is run in its stead; a session rarely takes it anyway (qq.Session runs
// qmail-queue -m).
//
// fdsReserve is kept for the rest of the process: descriptors 0-2, the
// listening socket, the runtime's poller (an epoll descriptor and its
// wake-up eventfd), the two cgroup CPU-limit files the runtime keeps open
// and its one-time pidfd probe (nine, counted in /proc/PID/fd of an idle
// listener), with room for a few a parent left open.
const (
	fdsPerSession = 10
	fdsReserve    = 16
)

// FitSessions returns how many sessions to serve at once: limit when fds
// descriptors are enough for that many, otherwise as many as they allow,
// and at least 1. fds <= 0 means the limit is unknown (limit is kept).
func FitSessions(limit int, fds int64) int {
	return nofile.Fit(limit, fdsPerSession, fdsReserve, fds)
}

// raiseNofile raises the soft RLIMIT_NOFILE towards what limit sessions
// need, as far as the hard limit allows, and returns the soft limit in
// force and the hard one (0, 0 when they cannot be read).
func raiseNofile(limit int) (soft, hard int64) {
	return nofile.Raise(fdsReserve + fdsPerSession*int64(limit))
}
