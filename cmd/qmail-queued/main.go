// Command qmail-queued is the queue service (docs/man/qmail-queued.8):
// qmail-queue kept running, taking messages over ROOT/public/qmail-queue so
// that sendmail, qmail-inject, qmail-local and qmail-send queue without
// starting the set-uid qmail-queue.
//
// Privilege contract: started by qmail-start as qmailq:qmail (the ids
// qmail-queue writes the queue with), not set-id; anyone may connect, as
// anyone may run qmail-queue, and each caller is known by its kernel
// credentials. Root from the executable's location only; no arguments but
// -h; fd 0: qmail-start's stop pipe (end of file stops the service), or
// anything else when run by hand (then SIGTERM stops it). Exit codes: 0
// after a stop (or when another qmail-queued already serves the tree),
// 100 usage, 111 when its lock (queue/lock/queued) or the socket cannot be
// made (the fatal line names which, and why).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/queue"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-queued
  The queue service: qmail-queue kept running, taking messages on
  QMAILHOME/public/qmail-queue. Started by qmail-start as qmailq; stops at
  end of file on fd 0 when that is a pipe, or on SIGTERM. See qmail-queued(8).
`

func main() {
	usage.NoArgs(os.Args[1:], help)
	os.Exit(queue.MainService(qhome.Root()))
}
