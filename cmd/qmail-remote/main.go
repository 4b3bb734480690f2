// Command qmail-remote delivers one message to a remote host over SMTP.
//
// Privilege contract: runs as qmailr (group qmail), started by qmail-rspawn
// as "qmail-remote host sender recip..."; never set-id, so it may read the
// control files that only it uses (resolvconf, smtpauth). fd 0: the message
// (a regular file from the queue, offset 0); fd 1: the reports, each
// NUL-terminated: r/h/s per recipient, then one K/Z/D message report;
// fd 2: unused. Always exits 0; every failure is in the reports.
//
// "qmail-remote -k" is keep mode (qmail-remote(8), KEEP MODE): started by
// qmail-rspawn with a SOCK_SEQPACKET socket on fd 0, it makes one delivery
// per request packet (the message's descriptor passed with it) and answers
// each with the reports above, keeping the SMTP connection open between
// deliveries to the same destination, until the socket is closed.
//
// SIGTERM (qmail-rspawn's, when qmail-send has gone without waiting for
// its deliveries, or a stop's) gives up a delivery whose final dot has not
// been sent and lets one whose dot is out finish (qmail-remote(8),
// SIGNALS): -k catches it and aborts the connection; the one-shot form
// keeps its default action until the dot and ignores it from then on.
//
// Both forms first raise their own oom_score_adj (pkg/oomadj): under memory
// pressure the kernel kills a delivery, which qmail-send retries, before a
// daemon.
//
// tlssha1=1: SHA-1 signatures are allowed in a TLS 1.2 handshake, which
// Go 1.25 stopped offering and crypto/tls allows only through this
// setting, not per connection: an old submission server that signs its
// key exchange with SHA-1 only is still encrypted, and refused, mail to it
// with a login is deferred for ever (qmail-remote(8), STARTTLS). It
// touches nothing else here: qmail-remote is a TLS client only, with no
// client certificate, and certificates are checked by crypto/x509, which
// it does not govern. See pkg/remote's tlsSuites.
//
//go:debug tlssha1=1
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/oomadj"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/remote"
)

func main() {
	oomadj.Volunteer()
	if len(os.Args) == 2 && os.Args[1] == "-k" {
		os.Exit(remote.Serve(qhome.Root(), 0))
	}
	os.Exit(remote.Main(qhome.Root(), os.Args[1:], os.Stdin, os.Stdout))
}
