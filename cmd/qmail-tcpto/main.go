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
// qmail); never set-id. No arguments but -h (help on stdout, exit 0; any
// other argument: usage on stderr, exit 100, nothing read), as qmail-tcpok;
// fd 1 the listing, fd 2 errors. Exit 0, or 111 with "qmail-tcpto: fatal:
// ..." when the file cannot be read or the listing cannot be written
// ("unable to write output: ...").
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcpto"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-tcpto
  Lists the hosts whose SMTP connections recently timed out (the table
  qmail-remote keeps in queue/lock/tcpto), one line per host; the file is
  only read. Takes no arguments but -h. qmail-tcpok clears the table.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0 done; 100 usage; 111 when the table cannot be read. See qmail-tcpto(8).
`

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	os.Exit(run(root, os.Stdout, os.Stderr))
}

// run lists the table of the tree at root on stdout and returns the exit
// code.
func run(root string, stdout, stderr io.Writer) int {
	out := bufio.NewWriter(stdout)
	err := tcpto.Open(root).Report(out)
	if err == nil {
		if ferr := out.Flush(); ferr != nil {
			// Worded as qmail-qread, qmail-qstat and qmailctl word it.
			err = fmt.Errorf("unable to write output: %w", ferr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "qmail-tcpto: fatal: %v\n", err)
		return qerr.ExitTemp
	}
	return 0
}
