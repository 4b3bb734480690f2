// Command qmail-local delivers one message to one local address by its
// .qmail file: Maildir, mbox, |program, forward (qmail-local(8)).
//
// Privilege contract:
//   - Runs as: the recipient (never root; qmail-lspawn refuses uid 0). It
//     has no privilege of its own and needs none: it only touches the
//     recipient's home and what the recipient's .qmail file names.
//   - Started by: qmail-lspawn, as
//     qmail-local [-nN] [--] user home local dash ext domain sender defaultdelivery
//     (or by hand with -n for a dry run).
//   - fds: 0 the message, a seekable regular file at offset 0; 1 and 2 the
//     report pipe (programs run from .qmail share them).
//   - Exit: 0 delivered (stdout "did F+W+P", "qp PID" after a forward);
//     100 permanent failure; 111 temporary failure; the text on fd 1/2 is
//     the report. Usage errors exit 100.
//   - Trusts: argv only in its documented form; the environment is passed
//     on to programs (plus qmail-local's own variables) and $QMAILQUEUE
//     chooses the queue program for forwards, as in qmail.
//   - "qmail-local -k" is keep mode (qmail-local(8), KEEP MODE): started
//     by qmail-lspawn as the recipient with a socket on fd 0, it makes one
//     delivery per request (the same arguments, the message's descriptor
//     passed along) and answers with the exit status and the report; it
//     serves only that user's deliveries and exits at end of file.
//   - Session: qmail-lspawn starts it in a session of its own (setsid),
//     so neither it nor its programs have a controlling terminal; each
//     delivery (one-shot or kept) runs on a thread of its own that first
//     joins a new anonymous session keyring, which every program of the
//     delivery inherits (pkg/local keyring.go; ENOSYS, EPERM, EACCES go
//     on, other errors exit 111).
//   - OOM: raises its own oom_score_adj (pkg/oomadj) before anything
//     else, one-shot or kept, so that the kernel kills a delivery (which
//     qmail-send retries) before a daemon; programs it runs inherit it.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/local"
	"github.com/hqmail/hqmail/pkg/oomadj"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	oomadj.Volunteer()
	if len(os.Args) == 2 && os.Args[1] == "-k" {
		os.Exit(local.Serve(0, local.Config{Environ: os.Environ(), Root: qhome.Root()}))
	}
	os.Exit(local.Run(os.Args, local.Config{
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Environ: os.Environ(),
		Root:    qhome.Root(),
	}))
}
