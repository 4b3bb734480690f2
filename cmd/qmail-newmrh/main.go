// Command qmail-newmrh compiles control/morercpthosts into
// control/morercpthosts.cdb for qmail-smtpd.
//
// Privilege contract: run by the admin as root (installed 0700), as the
// owner of control/. No arguments, no input. fd 2: fatal errors. Exit 0, or
// 111 when the list cannot be read or the cdb cannot be written (the old
// cdb is then left as it was).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(admin.NewmrhMain(qhome.Root(), os.Stderr))
}
