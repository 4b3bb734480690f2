// Command qmail-qread lists the messages in the queue (also run as mailq and
// as sendmail -bp).
//
// Privilege contract: runs as the caller; reading queue/info, local and
// remote needs root or qmails (those directories are 0700 qmails). Started
// by an admin or by sendmail (which passes no arguments). No arguments but
// -h (help, exit 0; any other argument: usage on stderr, exit 100, nothing
// read). fd 1: the listing; fd 2: fatal errors. Exit 0, or 111 when the
// queue cannot be read.
package main

import (
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-qread
  Lists the messages in the queue: date, id, size and sender of each, then
  its local and remote recipients, done or held. sendmail -bp and mailq run
  it. Reading the queue needs root (or qmails). Takes no arguments but -h.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0; 100 usage; 111 when the queue cannot be read. See qmail-qread(8).
`

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	os.Exit(qread.Main(root, os.Stdout, os.Stderr))
}
