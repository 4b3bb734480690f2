// Command qmail-inject reads a message on stdin, fixes up its header and
// queues it (spec/injection.md §1; docs/man/qmail-inject.8).
//
// Privilege contract: runs as the invoking user, no privileges of its own;
// started by users, MUAs and the sendmail wrapper. fd 0: the message;
// fd 1: the message when -n is given; fd 2: errors. Finds the qmail tree from
// its own path (DIR/bin/qmail-inject), reads DIR/control, runs
// $QMAILQUEUE or DIR/bin/qmail-queue in DIR. Exit 0 queued (or printed),
// 100 permanent failure (bad option, qmail-queue D), 111 temporary
// (read error, controls unreadable, qmail-queue Z or not runnable).
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/inject"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(inject.Main(os.Args, qhome.Root(), os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}
