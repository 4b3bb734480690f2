// Command forward forwards the message to the addresses given.
//
// Runs as: the recipient, as a program line of a .qmail file, started by
// qmail-local's /bin/sh (cwd = home); sender $NEWSENDER, $DTLINE on top of
// the copy; queued through ROOT/bin/qmail-queue, $QMAILQUEUE or the queue
// service. argv: forward address [address ...]; -h or --help first prints
// the usage on fd 1 and exits 100, as dot-forward does (exit 0 would tell
// qmail-local the line did its work: the message would go nowhere). fds: 0
// the message, 1/2 the report. Exit: 0 queued; 111/100 the queue failed
// temporarily/permanently; 100 usage (-h included) or a variable unset.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: forward address [address ...]
  Forwards the message to the addresses (sender $NEWSENDER, $DTLINE
  added), as a &address line of a .qmail file does, and exits 0. -h
  prints this and exits 100: in a .qmail file the message bounces with
  this text. See forward(1).
`

func main() {
	if code, asked := usertools.Help(os.Args[1:], help, os.Stdout); asked {
		os.Exit(code)
	}
	os.Exit(usertools.ForwardMain(qhome.Root(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
