// Command qmail-linkwatch holds remote mail delivery while the link is down
// and releases it once the link has been up for a while, following the
// kernel's routes and links through netlink.
//
// Runs as: root (it changes control/holdremote and signals qmail-send, as
// qmailctl does). Started by: init/systemd, alongside qmail-start.
// fds: 2 log lines (-check: 1 the verdict). Exit: 0 on SIGTERM, 100 usage
// (a -probe that is not host:port with a numeric port included),
// 111 netlink trouble; -check: 0 up, 1 down (as the daemon would judge it,
// -metered and -probe included).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/linkwatch"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(linkwatch.Main(qhome.Root(), os.Args[1:], os.Stdout, os.Stderr))
}
