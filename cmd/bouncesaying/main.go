// Command bouncesaying bounces the message with a given text, always or
// when a program says so.
//
// Runs as: the recipient, as a program line of a .qmail file, started by
// qmail-local's /bin/sh (cwd = home). argv: bouncesaying error [program
// [arg ...]]; -h or --help first prints the usage on fd 1 and exits 100,
// as dot-forward does (exit 0 would let qmail-local go on with the next
// line). fds: 0 the message (the program's 0), 1/2 the report.
// Exit: 100 bounce (error printed on 1); 0 the program exited neither 0 nor
// 111 (no bounce, go on); 111 the program exited 111, could not be started
// or was killed; 100 usage (-h included).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: bouncesaying error [program [arg ...]]
  Without a program, prints error and exits 100: qmail-local bounces the
  message with that text. With one, runs it on the message: exit 0 bounces
  as above, 111 defers the delivery, anything else lets qmail-local go on
  with the next line. -h prints this and exits 100: in a .qmail file the
  message bounces with this text. See bouncesaying(1).
`

func main() {
	if code, asked := usertools.Help(os.Args[1:], help, os.Stdout); asked {
		os.Exit(code)
	}
	os.Exit(usertools.BouncesayingMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
