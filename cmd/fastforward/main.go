// Command fastforward delivers mail for the local parts named in the
// aliases database (QMAILHOME/etc/aliases.cdb, built by newaliases(8)).
//
// Runs as: the alias user, as a program line of ~alias/.qmail-default,
// started by qmail-local. fds: 0 the message, 1/2 the report.
// Exit: 99 delivered (stop), 0 not an alias but a postmaster name (the next
// line delivers), 100 permanent, 111 temporary.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/forward"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(forward.FastforwardMain(qhome.Root(), os.Args[1:], os.Stdin, os.Stdout))
}
