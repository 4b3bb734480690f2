// Command qmail-tcpok clears the table of recent SMTP connection timeouts
// (QMAILHOME/queue/lock/tcpto), so qmail-remote tries every host again.
//
// Privilege contract: run by the admin (root) or by qmailr, the owner of
// queue/lock/tcpto; never set-id. No arguments but -h (help, exit 0;
// any other argument: usage on stderr, exit 100, nothing done); fds: 2 for
// errors. It zero-fills the existing file under an exclusive flock and
// never creates it. queue/lock belongs to qmailq: a tcpto that is a
// symbolic link (or reached through one below queue/), a hard link or not
// a regular file is refused, never written. Exit 0 on success, 111 with
// "qmail-tcpok: fatal: ..." on stderr.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcpto"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-tcpok
  Forgets the recent SMTP connection time-outs: zero-fills queue/lock/tcpto,
  so qmail-remote tries every host again at once. Takes no arguments but -h.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0 done; 100 usage; 111 on any error. See qmail-tcpok(8).
`

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	os.Exit(run(root, os.Stderr))
}

// run clears the table of the tree at root and returns the exit code.
func run(root string, stderr io.Writer) int {
	if err := os.Chdir(root); err != nil {
		fmt.Fprintf(stderr, "qmail-tcpok: fatal: unable to chdir to %s: %v\n", root, qerr.Bare(err))
		return qerr.ExitTemp
	}
	if err := tcpto.Open(root).Clear(); err != nil {
		fmt.Fprintf(stderr, "qmail-tcpok: fatal: %v\n", err)
		return qerr.ExitTemp
	}
	return 0
}
