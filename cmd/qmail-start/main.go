// Command qmail-start starts the qmail daemons.
//
// Privilege contract:
//   - runs as: root (root tree), or the installing user (shared tree, or
//     any non-root caller: then everything runs as that user).
//   - argv: qmail-start [defaultdelivery [logger args...]]; defaultdelivery
//     defaults to ./Mailbox and is passed to qmail-lspawn; the logger is
//     found through $PATH.
//   - starts, with exec credentials (never setuid in-process): logger as
//     qmaill/nofiles, qmail-lspawn as root/qmail, qmail-rspawn as
//     qmailr/qmail (+ qmailr's groups), qmail-clean as qmailq/qmail,
//     qmail-send as qmails/qmail; programs from ROOT/bin; cwd /, umask 077.
//   - fds: 1 is the log when there is no logger; 2 gets fatal errors and
//     the alerts and warnings about qmail-send, the helpers and qmail-queued.
//     Descriptors above 2 it inherits are closed at its start (it runs as
//     long as qmail does: a caller's pipe would never see end of file).
//   - stays as qmail-send's parent: forwards TERM, HUP, ALRM to it; exits
//     with its exit code (111 if it was killed or anything failed to start).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/start"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-start [defaultdelivery [logger arg ...]]
  Starts qmail-send, qmail-lspawn, qmail-rspawn, qmail-clean and the queue
  service, each as its own user, and stays as their parent. defaultdelivery
  (default ./Mailbox) is used for users without a .qmail file, e.g.
  ./Maildir/; logger, if given, reads qmail-send's log on its stdin.
  Started by the rc script (scripts/rc/qmail), the systemd unit
  (qmail.service) or make run, each with control/defaultdelivery as
  defaultdelivery (./Maildir/ when the file is missing or empty); qmailctl does not
  start it. See qmail-start(8).
`

func main() {
	usage.Help(os.Args[1:], help)
	os.Exit(start.Main(os.Args[1:], qhome.Root(), os.Stdout, os.Stderr))
}
