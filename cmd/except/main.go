// Command except turns a program's success into a bounce.
//
// Runs as: the recipient, as a program line of a .qmail file (or anyone,
// anywhere). argv: except program [arg ...]; -h or --help first prints
// the usage on fd 1 and exits 100, as dot-forward does (exit 0 would let
// qmail-local go on with the next line). fds: passed to the program.
// Exit (as qmail's except): 100 where the program exited 0, 111 where it
// exited 111, could not be started or was killed, 0 for any other code;
// 100 usage (-h included).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: except program [arg ...]
  Runs program and exits 100 if it exited 0, 111 if it exited 111 (or was
  killed), and 0 otherwise. -h prints this and exits 100: in a .qmail
  file the message bounces with this text. See except(1).
`

func main() {
	if code, asked := usertools.Help(os.Args[1:], help, os.Stdout); asked {
		os.Exit(code)
	}
	os.Exit(usertools.ExceptMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
