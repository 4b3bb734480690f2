// Command qmail-smtpd receives mail over SMTP and queues it with
// qmail-queue (spec/injection.md §3-4; docs/man/qmail-smtpd.8).
//
// Privilege contract:
//   - Runs as qmaild/nofiles (under tcpserver -u/-g, inetd, a systemd
//     socket unit's User=, or setpriv in `make run`); needs no privilege of
//     its own: it reads ROOT/control and runs ROOT/bin/qmail-queue (or
//     $QMAILQUEUE), which is set-uid qmailq. It never changes uid.
//   - Started by: a TCP super-server with the connection on fd 0/1 and
//     TCPREMOTEIP, TCPREMOTEHOST, TCPREMOTEINFO, TCPLOCALHOST, TCPLOCALIP,
//     RELAYCLIENT, DATABYTES in the environment; by sendmail -bs; or
//     standalone as `qmail-smtpd -listen ADDR [-c N]` (-c without
//     -listen is a usage error).
//   - argv: one session: `qmail-smtpd [-r] [ARG...]`, the ARGs (from the
//     first word that is no flag on) ignored with a warning on fd 2, as
//     qmail's qmail-smtpd ignores its arguments (SMTP AUTH run scripts
//     pass a host and checkpassword; no AUTH is offered); with -listen
//     they are a usage error.
//   - fds: 0/1 the SMTP connection (not with -listen), 2 diagnostics
//     (discarded when fd 2 is the connection's socket).
//   - Signals: with -listen, TERM, INT and HUP (INT and HUP unless
//     ignored at start) close the listener and end each session at its
//     next command boundary (421; a message being received is answered
//     first), at most 60 s, a second signal cuts at once
//     (smtpd.Listener.Stop). One session on fd 0/1: none caught.
//   - Exit: 0 after QUIT; 1 after client EOF without QUIT or a fatal
//     reply (421, 451 timeout, bare LF), as qmail-smtpd; 100 usage; 111
//     listener failure; -listen: 0 once stopped by a signal.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/smtpd"
)

func main() {
	os.Exit(smtpd.Main(os.Args[1:], os.Stderr))
}
