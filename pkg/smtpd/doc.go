// Package smtpd is qmail-smtpd: it receives mail over SMTP and hands every
// accepted message to qmail-queue (spec/injection.md §3-4).
//
// The protocol engine is github.com/emersion/go-smtp. This package supplies
// its Backend and Session: qmail's recipient rules (rcpthosts,
// morercpthosts.cdb, RELAYCLIENT, badmailfrom, localiphost), qmail's DATA
// decoding (CRLF to LF, a bare LF is fatal, hop count, databytes counted
// after decoding), the Received line qmail writes, and qmail-queue's result
// as the reply. Between go-smtp and the client sits front (front.go): it
// reads the commands with qmail's grammar and address parser, answers
// what needs no transaction state, hands go-smtp canonical lines, replaces
// go-smtp's reply texts by qmail's, reads DATA with qmail's dot rules and
// does STARTTLS below go-smtp, so the dialogue is qmail-smtpd's
// (spec/injection.md §3; testdata/dialogue.golden). docs/man/qmail-smtpd.8
// lists what still differs.
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
