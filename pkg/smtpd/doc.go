// Package smtpd is qmail-smtpd: it receives mail over SMTP and hands every
// accepted message to qmail-queue (spec/injection.md §3-4).
//
// The protocol engine is github.com/emersion/go-smtp. This package supplies
// its Backend and Session: qmail's recipient rules (rcpthosts,
// morercpthosts.cdb, RELAYCLIENT, badmailfrom, localiphost), qmail's DATA
// decoding (CRLF to LF, a bare LF is fatal, hop count, databytes counted
// after decoding), the Received line qmail writes, and qmail-queue's result
// as the reply. Where go-smtp's own reply texts differ from qmail's and
// go-smtp offers no hook, go-smtp's text stands; docs/man/qmail-smtpd.8
// lists every such difference.
//
// Two ways to run:
//   - ServeStdio: one session on fd 0/1, started by tcpserver, inetd or a
//     systemd socket; the peer comes from TCPREMOTEIP and friends.
//   - Listen: a standalone listener that serves each connection itself and
//     derives the peer values from the socket (RELAYCLIENT from
//     control/relayclients).
//
// Invariants: nothing is queued unless the whole message was read and
// accepted (an aborted DATA sends qmail-queue no envelope); the message is
// streamed to qmail-queue, never held in memory; an address containing NUL
// is refused so that it can never split into two envelope records.
package smtpd
