// Command qmail-rspawn starts remote deliveries (qmail-remote) for
// qmail-send.
//
// Privilege contract:
//   - runs as: qmailr, gid qmail, groups qmailr's + qmail (root tree); the
//     installing user (shared tree). Switches no ids: qmail-remote runs as
//     qmailr too ($QMAILREMOTE may name another program).
//   - started by: qmail-start only. Takes no arguments.
//   - fds: 0 requests from qmail-send, 1 reports to qmail-send, 2 a pipe
//     qmail-start copies into the log (a crash trace).
//     cwd ROOT/queue/mess. Zero-fills ROOT/queue/lock/tcpto at start.
//   - exit: 0 when qmail-send closed fd 0 and no delivery is left; 111
//     when ROOT/queue/mess or (as root) ROOT/etc/ids is unusable.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawn/rspawn"
	"github.com/hqmail/hqmail/pkg/threads"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-rspawn
  Runs qmail-remote for qmail-send's remote deliveries. Started only by
  qmail-start; not to be run by hand. See qmail-rspawn(8).
`

func main() {
	usage.NoArgs(os.Args[1:], help)
	threads.Reserve(threads.Daemon) // a full process table must cost a delivery, not the spawner
	os.Exit(rspawn.Main(qhome.Root()))
}
