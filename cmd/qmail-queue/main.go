// Command qmail-queue puts messages into the queue.
//
// Privilege contract: installed setuid qmailq (mode 04711) and run by any
// local user (qmail-inject, sendmail, qmail-smtpd as qmaild, qmail-local,
// qmail-send for bounces). It trusts nothing from its caller: the root is
// the directory above the executable's bin/ (qhome.Root), never the
// environment or the cwd. The only argument read is a first "-m", which
// selects the multi-message framing and nothing else; any other argument
// is ignored, as qmail's qmail-queue ignores them.
//
// Without -m (qmail's protocol, spec/queue.md §4):
//
//	fd 0  the message, read to EOF
//	fd 1  the envelope, read: F<sender>\0 (T<recipient>\0)* \0
//
// With -m (docs/man/qmail-queue.8, pkg/queue/multi.go):
//
//	fd 0  messages as netstring chunks, each ended by "0:,"
//	fd 1  one envelope per message, as above
//	fd 6  written: "<code> <id>\n" per message, after its commit
//
// It prints nothing, but for one line on fd 2 when, run set-uid by
// another user, it refuses a tree its caller could have made (61;
// pkg/queue/settree.go). Exit codes (spec/queue.md §4): 0 queued (with
// -m: every message of the run queued, input ended between messages); 11
// address too long; 52 timeout (24 h); 53 write error or disk full; 54
// read error or truncated envelope (or message, with -m); 61 cannot reach
// or search the root, or a refused tree (above); 62 no queue directory; 63 pid/ trouble; 64 mess/
// trouble; 65 intd/ trouble; 66 todo/ trouble; 81 (with -m) fd 6 not open
// or not writable; 91 envelope (or, with -m, frame) format error.
//
// Signals: QUIT is ignored, as qmail's qmail-queue ignores it. TERM, INT
// and HUP (INT and HUP unless ignored at start, as under nohup) before a
// message's commit (the link intd/ID -> todo/ID) remove that message's
// files and kill the process with the same signal (the caller sees qq
// crashed, a temporary failure); after it the message is finished: exit
// 0, or with -m its result line on fd 6 and then death by the signal. The
// 24-hour alarm (52) leaves its files, as qmail's does.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/queue"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-m" {
		os.Exit(queue.MainMulti(qhome.Root()))
	}
	os.Exit(queue.Main())
}
