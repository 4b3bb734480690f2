// Command qmail-clean removes finished messages from the queue for
// qmail-send.
//
// Privilege contract: runs as qmailq (group qmail), started only by
// qmail-start. No arguments. fd 0: requests from qmail-send
// ("foop/ID\0" or "todo/ID\0"); fd 1: one reply byte per request ('+', '!',
// 'x'). Works in QMAILHOME/queue. Exit 0 at EOF on fd 0, 111 if the queue
// directory is unusable or a pipe fails.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/clean"
	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-clean
  Removes finished messages from the queue for qmail-send. Started only by
  qmail-start; not to be run by hand. See qmail-clean(8).
`

func main() {
	usage.NoArgs(os.Args[1:], help)
	// Both pipes are qmail-start's, private to qmail-send and us.
	os.Exit(clean.Main(qhome.Root(), pollfd.File(0, "requests"), pollfd.File(1, "replies")))
}
