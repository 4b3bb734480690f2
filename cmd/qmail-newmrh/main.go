// Command qmail-newmrh compiles control/morercpthosts into
// control/morercpthosts.cdb for qmail-smtpd.
//
// Privilege contract: run by the admin as root (installed 0700), as the
// owner of control/. No arguments but -h (help, exit 0; any other argument:
// usage on stderr, exit 100, nothing done), no input. fd 2: fatal errors.
// Exit 0, or 111 when the list cannot be read or the cdb cannot be written
// (the old cdb is then left as it was).
package main

import (
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-newmrh
  Compiles control/morercpthosts into control/morercpthosts.cdb, the extra
  rcpthosts qmail-smtpd consults. Run it after every change of the list.
  Takes no arguments but -h.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0 done; 100 usage; 111 when the list cannot be read or the cdb
  cannot be written (the old cdb is then kept). See qmail-newmrh(8).
`

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	os.Exit(admin.NewmrhMain(root, os.Stderr))
}
