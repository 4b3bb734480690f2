// Package inject is qmail-inject (spec/injection.md §1): it reads a message,
// fixes up its header the way qmail does (address rewriting with
// defaulthost, defaultdomain and plusdomain; Date, Message-ID, From and
// "recipient list not shown" added when missing; Bcc, Resent-Bcc,
// Return-Path and Content-Length removed; address lists re-serialized and
// folded near 80 columns), works out the envelope, and hands both to
// qmail-queue through pkg/qq.
//
// The output is byte-for-byte what qmail 1.03 (as maintained by notqmail)
// writes, including its oddities: the addresses of one header field reach
// the envelope last to first, comments outside <> move behind their
// address, a "From " line in the header becomes an MBOX-Line field, and an
// address field that does not parse is left as it is and gives no
// recipients. The sendmail wrapper uses this package in-process.
package inject
