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
//   - "qmail-getpw -k" with a SOCK_SEQPACKET socket on fd 0 (keep mode; a
//     local part "-k" has /dev/null there): the socket on fd 0, one lookup per
//     request packet, answered with the exit status byte and the output;
//     qmail-lspawn keeps one such process instead of one per delivery.
//   - OOM: both forms first raise their own oom_score_adj (pkg/oomadj);
//     one killed costs qmail-lspawn one deferred delivery (a kept one
//     found dead is replaced), not the mail system.
package main

import (
	"os"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/getpw"
	"github.com/hqmail/hqmail/pkg/oomadj"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

func main() {
	oomadj.Volunteer()
	if len(os.Args) == 2 && os.Args[1] == "-k" && keep.IsSocket(0) {
		os.Exit(getpw.Serve(0, filepath.Join(qhome.Root(), "alias")))
	}
	os.Exit(getpw.Main(os.Args[1:], os.Stdout, filepath.Join(qhome.Root(), "alias")))
}
