// Command qmail-pw2u turns a passwd file into users/assign lines.
//
// Privilege contract: runs as the caller, no privileges needed; reads the
// optional ROOT/users/{include,exclude,mailnames,subusers,append}. Options
// -oOuUhHcC (qmail-pw2u(8)). fd 0: passwd lines; fd 1: assign lines ended
// by "."; fd 2: skipped accounts and fatal errors. Exit 0; 100 on a usage
// error; 111 on malformed input or I/O trouble.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(admin.Pw2uMain(qhome.Root(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
