package smtpd

import smtp "github.com/emersion/go-smtp"

// qmail's reply texts. go-smtp prints an SMTPError as "<code> <message>";
// NoEnhancedCode keeps it from adding an RFC 3463 code in front, so the
// line is exactly qmail's (which puts the enhanced code at the end).
func reply(code int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: text}
}

var (
	replySyntax      = reply(555, "syntax error (#5.5.4)")
	replyBadMailFrom = reply(553, "sorry, your envelope sender is in my badmailfrom list (#5.7.1)")
	replyRcptHosts   = reply(553, "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
	replyTooManyRcpt = reply(452, "too many recipients (#4.5.3)")
	replyTooManyHops = reply(554, "too many hops, this message is looping (#5.4.6)")
	replyDatabytes   = reply(552, "sorry, that message size exceeds my databytes limit (#5.3.4)")
	replyQQT         = reply(451, "qqt failure (#4.3.0)")
	replyLongLine    = reply(552, "sorry, that message has a line longer than my limit (#5.3.4)")
	replyTimeout     = reply(451, "timeout (#4.4.2)")
	replyGone        = reply(451, "connection lost (#4.4.2)")
)

// Fatal replies: the session ends after them (qmail-smtpd exits 1).
const (
	textControls = "421 unable to read controls (#4.3.0)"
	textNoIPs    = "421 unable to figure out my IP addresses (#4.3.0)"
	textTimeout  = "451 timeout (#4.4.2)"
	// RFC 5321 4.2.4: 500 for a command line too long.
	textLongCommand = "500 sorry, that command line is longer than my limit (#5.5.2)"
	// The text of notqmail, the maintained qmail; qmail 1.03 names the
	// same page at http://pobox.com/~djb/docs/smtplf.html.
	textBareLF = "451 See https://cr.yp.to/docs/smtplf.html."
)
