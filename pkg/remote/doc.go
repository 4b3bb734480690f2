// Package remote is qmail-remote (spec/delivery.md §6): it delivers one
// message, read from fd 0, to one remote host over SMTP and reports on fd 1
// a NUL-terminated r/h/s line per recipient and one K/Z/D message report,
// in qmail's exact texts, for qmail-rspawn to parse.
//
// Where to connect: control/smtproutes (Table.LookupRoute), else the host's
// MX (package dnsmx) minus this host's own preference level. Each address
// goes through the tcpto table (package tcpto) before a connect.
//
// The SMTP dialogue is spoken by go-smtp's Client (greeting, EHLO/HELO,
// AUTH with go-sasl, MAIL, RCPT, DATA through its dot writer). The Client
// talks through a wire (smtp.go), a net.Conn of ours that keeps what qmail
// needs and the Client does not do: replies are read and bounded there
// (MaxText kept, MaxReply read; a longer or endless reply is a temporary
// failure, never unbounded memory, except that after the final dot a reply
// over MaxReply whose code has come is that code's answer) under qmail's
// timeoutremote per reply (per read for the reply to the final dot, as
// qmail times each read) and per write, the raw reply is kept for the
// reports, a peer
// that says more than its reply (bytes unread when the next command is
// due) is out of step and the session ends, and the Client is shown a
// canonical copy steering it to qmail's rules (any code below 400 after
// DATA goes ahead, a 5xx to EHLO falls back to HELO and any other reply
// but 250 is a rejected name, BODY=8BITMIME only for 8-bit messages). STARTTLS and QUIT are written by the wire itself
// (see the wire's comment for why). copyData applies qmail's CR and
// partial-line rules before the dot writer.
//
// Additions to qmail, all off or opportunistic by default:
// EHLO (falling back to HELO), STARTTLS when offered (control/tlsroutes
// selects try/none/encrypt/require per recipient domain; require verifies
// the certificate against control/tlsca or the system roots), implicit TLS
// on route port 465, AUTH PLAIN/LOGIN for smtproutes relays listed in
// control/smtpauth (only over TLS; with no tlsroutes line for the host,
// only over TLS whose certificate verified, as under require; the one
// place deciding the policy is Table.TLSPolicy; a reply quoted in a report
// on a connection with a login is redacted, session.redact), TLS 1.2 with
// RSA key exchange for old servers (tlsSuites), BODY=8BITMIME and
// SMTPUTF8 when the peer offers them and the message or envelope needs
// them, IPv6 (AAAA records and [IPv6:...] literals), control/outgoingip
// (source address) and control/resolvconf (the resolver configuration file
// to read instead of /etc/resolv.conf). See qmail-remote(8) and qmail-smtproutes(5).
package remote
