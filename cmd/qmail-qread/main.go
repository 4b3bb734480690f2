// Command qmail-qread lists the messages in the queue (also run as mailq and
// as sendmail -bp).
//
// Privilege contract: runs as the caller; reading queue/info, local and
// remote needs root or qmails (those directories are 0700 qmails). Started
// by an admin or by sendmail. No arguments. fd 1: the listing; fd 2: fatal
// errors. Exit 0, or 111 when the queue or a hold flag cannot be read.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
)

func main() {
	os.Exit(qread.Main(qhome.Root(), os.Stdout, os.Stderr))
}
