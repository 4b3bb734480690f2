// Command qmailctl controls a running hqmail: hold and release remote or
// local delivery, flush the queue, show status and the queue, and hold,
// release, delete or bounce single messages.
//
// Privilege contract: run by the admin or by network hook scripts, as root
// (or as the owner of a tree installed without root): it writes
// control/holdlocal and control/holdremote and signals qmail-send (qmails)
// through the pid in queue/lock/sendmutex, never by process name; it sends
// per-message requests through the FIFO queue/lock/sendctl (qmails, 0600)
// and reads the answers in queue/lock/sendstatus. With qmail-send stopped
// it changes the queue itself under the sendmutex lock. Not
// set-id; the root is the tree holding this binary (qhome.Root). fd 1:
// results; fd 2: errors. Exit codes: 0 done and confirmed by qmail-send;
// 3 qmail-send is not running (the flag change is made); 100 usage or an
// impossible change; 111 temporary trouble or no confirmation in time
// (too few descriptors free: at once, before any change).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/ctl"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(ctl.Main(qhome.Root(), os.Args[1:], os.Stdout, os.Stderr))
}
