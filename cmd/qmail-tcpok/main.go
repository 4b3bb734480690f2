// Command qmail-tcpok clears the table of recent SMTP connection timeouts
// (QMAILHOME/queue/lock/tcpto), so qmail-remote tries every host again.
//
// Privilege contract: run by the admin (root) or by qmailr, the owner of
// queue/lock/tcpto; never set-id. No arguments; fds: 2 for errors. It
// zero-fills the existing file under an exclusive flock and never creates
// it. Exit 0 on success, 111 with "qmail-tcpok: fatal: ..." on stderr.
package main

import (
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcpto"
)

func main() {
	root := qhome.Root()
	if err := os.Chdir(root); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-tcpok: fatal: unable to chdir to %s: %v\n", root, qerr.Bare(err))
		os.Exit(qerr.ExitTemp)
	}
	if err := tcpto.Open(root).Clear(); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-tcpok: fatal: %v\n", err)
		os.Exit(qerr.ExitTemp)
	}
}
