// Command qmail-queue puts one message into the queue.
//
// Privilege contract: installed setuid qmailq (mode 04711) and run by any
// local user (qmail-inject, sendmail, qmail-smtpd as qmaild, qmail-local,
// qmail-send for bounces). It trusts nothing from its caller: the root is
// the directory above the executable's bin/ (qhome.Root), never the
// environment or the cwd; no arguments are read.
//
//	fd 0  the message, read to EOF
//	fd 1  the envelope, read: F<sender>\0 (T<recipient>\0)* \0
//
// It prints nothing. Exit codes (spec/queue.md §4): 0 queued; 11 address
// too long; 52 timeout (24 h); 53 write error or disk full; 54 read error or
// truncated envelope; 61 cannot reach the root; 62 no queue directory;
// 63 pid/ trouble; 64 mess/ trouble; 65 intd/ trouble; 66 todo/ trouble;
// 91 envelope format error.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/queue"
)

func main() { os.Exit(queue.Main()) }
