// Command condredirect forwards the message to another address when a
// program says so.
//
// Runs as: the recipient, as a program line of a .qmail file, started by
// qmail-local's /bin/sh (cwd = home); sender $NEWSENDER, $DTLINE on top of
// the forwarded copy; queued through ROOT/bin/qmail-queue, $QMAILQUEUE or
// the queue service. argv: condredirect newaddress program [arg ...]; -h
// or --help first prints the usage on fd 1 and exits 100, as dot-forward
// does (exit 0 would let qmail-local go on with the next line).
// fds: 0 the message (the program's 0), 1/2 the report.
// Exit: 99 forwarded (qmail-local skips the following lines); 0 the program
// exited neither 0 nor 111; 111 it exited 111, could not be started or was
// killed, or the queue failed temporarily; 100 the queue refused the
// message, usage (-h included), or a variable unset.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: condredirect newaddress program [arg ...]
  Runs program on the message. If it exits 0, forwards the message to
  newaddress (sender $NEWSENDER, $DTLINE added) and exits 99, so that
  qmail-local skips the lines after this one. Exit 111 defers the delivery;
  any other exit lets qmail-local go on with the next line. -h prints
  this and exits 100: in a .qmail file the message bounces with this text.
  See condredirect(1).
`

func main() {
	if code, asked := usertools.Help(os.Args[1:], help, os.Stdout); asked {
		os.Exit(code)
	}
	os.Exit(usertools.CondredirectMain(qhome.Root(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
