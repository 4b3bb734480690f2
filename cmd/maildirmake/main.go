// Command maildirmake makes a new, empty Maildir.
//
// Runs as: the user who will own the Maildir, by hand (or from a script).
// argv: maildirmake [--] dir (-- before a dir that starts with "-"; -h and
// --help print the usage on stdout, exit 0). fds: 2 gets errors. Exit: 0
// made; 111 dir exists or could not be made (the message names the path);
// 100 usage.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/usage"
	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: maildirmake [--] dir
  Makes the directory dir and in it tmp, new and cur, all mode 0700, for
  a Maildir delivery (a .qmail line such as ./Maildir/). An existing dir
  is an error and is left untouched. A dir that starts with "-" is given
  after --. See maildirmake(1), maildir(5).
`

func main() {
	usage.Help(os.Args[1:], help)
	os.Exit(usertools.MaildirmakeMain(os.Args[1:], os.Stderr))
}
