// Command qmail-qstat prints how many messages are in the queue and how many
// of them qmail-send has not preprocessed yet.
//
// Privilege contract: runs as the caller; counting mess/ and todo/ needs
// read access to them (root, qmailq, or group qmail). No arguments but -h
// (help, exit 0; any other argument: usage on stderr, exit 100, nothing
// read). fd 1: two lines; fd 2: fatal errors. Exit 0, or 111 when the queue
// cannot be read.
package main

import (
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-qstat
  Prints how many messages are in the queue and how many of them qmail-send
  has not preprocessed yet. Takes no arguments but -h.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0; 100 usage; 111 when the queue cannot be read. See qmail-qstat(8).
`

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	os.Exit(qread.StatMain(root, os.Stdout, os.Stderr))
}
