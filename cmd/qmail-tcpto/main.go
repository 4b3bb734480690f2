// Command qmail-tcpto lists the hosts in qmail-remote's table of recent SMTP
// connection timeouts (QMAILHOME/queue/lock/tcpto), one line per host with at
// least one recent timeout:
//
//	<ip> timed out <seconds> seconds ago; # recent timeouts: <count>
//
// or, for a last timeout in the future (the clock went back since; the
// record counts as expired):
//
//	<ip> timed out in the future (clock went back?); # recent timeouts: <count>
//
// Privilege contract: any user who can read the file (root, qmailr, group
// qmail); never set-id. No arguments; fd 1 the listing, fd 2 errors. Exit
// 0, or 111 with "qmail-tcpto: fatal: ..." when the file cannot be read.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcpto"
)

func main() {
	out := bufio.NewWriter(os.Stdout)
	err := tcpto.Open(qhome.Root()).Report(out)
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "qmail-tcpto: fatal: %v\n", err)
		os.Exit(qerr.ExitTemp)
	}
}
