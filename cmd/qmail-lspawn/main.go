// Command qmail-lspawn starts local deliveries for qmail-send.
//
// Privilege contract:
//   - runs as: root, gid qmail (root tree); the installing user (shared
//     tree). It is the only long-lived root process; it never runs a
//     delivery as root: qmail-getpw runs as qmailp/nofiles, qmail-local as
//     the recipient's uid/gid with that gid as its only group.
//   - started by: qmail-start only. Trusts no argument beyond argv[1].
//   - argv: qmail-lspawn defaultdelivery
//   - fds: 0 requests from qmail-send, 1 reports to qmail-send (spawner
//     protocol), 2 a pipe qmail-start copies into the log (a crash trace).
//     cwd ROOT/queue/mess.
//   - exit: 0 when qmail-send closed fd 0 and no delivery is left; 100
//     without defaultdelivery; 111 when ROOT/queue/mess or (as root)
//     ROOT/etc/ids is unusable.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawn/lspawn"
	"github.com/hqmail/hqmail/pkg/threads"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-lspawn defaultdelivery
  Runs qmail-local for qmail-send's local deliveries, as each recipient's
  user. Started only by qmail-start; not to be run by hand. See
  qmail-lspawn(8).
`

func main() {
	usage.Help(os.Args[1:], help)
	threads.Reserve(threads.Daemon) // a full process table must cost a delivery, not the spawner
	os.Exit(lspawn.Main(os.Args[1:], qhome.Root()))
}
