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
)

func main() {
	// Both pipes are qmail-start's, private to qmail-send and us.
	os.Exit(clean.Main(qhome.Root(), pollfd.File(0, "requests"), pollfd.File(1, "replies")))
}
