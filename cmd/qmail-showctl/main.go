// Command qmail-showctl shows the settings of this qmail tree: the fixed
// ones (split, spawn limit, user and group ids) and every control file with
// its value or default and the program that reads it.
//
// Privilege contract: runs as the caller; needs read access to control/ and
// etc/ids (world-readable in a standard tree; smtpauth and servercert.pem
// are only stat'ed, never read). No arguments but -h (help, exit 0; any
// other argument: usage on stderr, exit 100). fd 1: the report; fd 2:
// "qmail-showctl: fatal: unable to write output: ..." when the report
// cannot be written. Exit 0, or 111 when something could not be read (the
// report says what) or written.
package main

import (
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-showctl
  Shows the settings of the tree: the fixed ones (split, concurrency
  limits, user and group ids) and every control file with its value or
  default and the program that reads it. Takes no arguments but -h.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0; 100 usage; 111 when something could not be read (the report
  says what). See qmail-showctl(8).
`

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	os.Exit(admin.ShowctlMain(root, os.Stdout, os.Stderr))
}
