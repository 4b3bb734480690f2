// Command except turns a program's success into a bounce.
//
// Runs as: the recipient, as a program line of a .qmail file (or anyone,
// anywhere). argv: except program [arg ...]. fds: passed to the program.
// Exit (as qmail's except): 100 where the program exited 0, 111 where it
// exited 111, could not be started or was killed, 0 for any other code;
// 100 usage.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/usage"
	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: except program [arg ...]
  Runs program and exits 100 if it exited 0, 111 if it exited 111 (or was
  killed), and 0 otherwise. See except(1).
`

func main() {
	usage.Help(os.Args[1:], help)
	os.Exit(usertools.ExceptMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
