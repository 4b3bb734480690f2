// Command qmail-showctl shows the settings of this qmail tree: the fixed
// ones (split, spawn limit, user and group ids) and every control file with
// its value or default and the program that reads it.
//
// Privilege contract: runs as the caller; needs read access to control/ and
// etc/ids (world-readable in a standard tree; smtpauth and servercert.pem
// are only stat'ed, never read). No arguments. fd 1: the report. Exit 0, or
// 111 when something could not be read (the report says what).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(admin.ShowctlMain(qhome.Root(), os.Stdout))
}
