// Command sendmail is the sendmail compatibility interface
// (docs/man/sendmail.8): it queues a message like qmail-inject, or with -bs,
// -bp, -bi, -q speaks SMTP, lists the queue, rebuilds aliases or flushes the
// queue. Installed as DIR/bin/sendmail and linked as /usr/sbin/sendmail,
// /usr/lib/sendmail, /usr/bin/mailq (argv[0] mailq lists the queue) and
// newaliases.
//
// Privilege contract: runs as the invoking user, no privileges of its own;
// started by MUAs, cron, scripts. fd 0: the message (or SMTP with -bs);
// fd 1: SMTP replies with -bs, the queue listing with -bp; fd 2: errors.
// Finds the tree from its own path (DIR/bin/sendmail; a symlink to it is
// followed; a hard link or copy takes the parent of a directory named bin,
// else /var/qmail, and says so when that has no bin/qmail-queue or, for
// /var/qmail, does not exist), chdirs
// to DIR, runs $QMAILQUEUE or DIR/bin/qmail-queue; execs
// DIR/bin/qmail-smtpd, qmail-qread or newaliases for -bs, -bp, -bi. -q sends
// SIGALRM to the qmail-send named in DIR/queue/lock/sendmutex. Exit codes
// are sysexits: 0 ok, 64 usage, 65 bad message or address, 69 permanent
// qmail-queue failure or missing program, 75 temporary failure, 77 not
// permitted.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sendmail"
)

func main() {
	os.Exit(sendmail.Main(os.Args, qhome.Root(), os.Environ(), os.Stdin, os.Stdout, os.Stderr, sendmail.DefaultSys))
}
