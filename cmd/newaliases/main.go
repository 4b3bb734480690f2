// Command newaliases compiles the aliases file (sendmail's /etc/aliases
// format) into QMAILHOME/etc/aliases.cdb, which fastforward(8) reads.
//
// Runs as: root (or the owner of a tree installed by an ordinary user).
// Started by: the admin, or sendmail -bi. Exit: 0 compiled, 100 usage
// error (-oA without a file too), syntax errors or missing file (database
// unchanged), 111 temporary failure.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(aliases.NewaliasesMain(qhome.Root(), os.Args[1:], os.Stdout, os.Stderr))
}
