// Command qmail-getpw maps a local part to the account that receives it,
// through the passwd file (spec/delivery.md §3).
//
// Privilege contract:
//   - runs as: qmailp/nofiles (started by qmail-lspawn); needs to read only
//     the passwd file and stat home directories.
//   - argv: qmail-getpw local
//   - fds: 1 "name\0uid\0gid\0home\0dash\0ext\0".
//   - exit: 0 found; 100 no argument; 111 write error; 115 temporary error
//     looking at a home directory; 116 no alias account; 118 passwd
//     unreadable.
package main

import (
	"os"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/getpw"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(getpw.Main(os.Args[1:], os.Stdout, filepath.Join(qhome.Root(), "alias")))
}
