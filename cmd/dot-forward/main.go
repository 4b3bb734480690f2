// Command dot-forward delivers as a user's sendmail-style ~/.forward says.
//
// Runs as: the recipient, as a program line of a .qmail file or of the
// default delivery instructions, started by qmail-local (cwd = home).
// argv: dot-forward file; anything else, -h and --help included, prints
// the usage on fd 1 and exits 100, as fastforward does (exit 0 would let
// qmail-local go on with the next line). fds: 0 the message, 1/2 the
// report. Exit: 0 no .forward (or it keeps a copy here with "\user"), 99
// delivered (stop), 100 permanent or usage, 111 temporary.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/forward"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(forward.DotForwardMain(qhome.Root(), os.Args[1:], os.Stdin, os.Stdout))
}
