// Command qmail-qstat prints how many messages are in the queue and how many
// of them qmail-send has not preprocessed yet.
//
// Privilege contract: runs as the caller; counting mess/ and todo/ needs
// read access to them (root, qmailq, or group qmail). No arguments. fd 1:
// two lines; fd 2: fatal errors. Exit 0, or 111 when the queue cannot be
// read.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
)

func main() {
	os.Exit(qread.StatMain(qhome.Root(), os.Stdout, os.Stderr))
}
