package sendmail

import "strings"

// AddrSpec returns the address of a -f value or an argument recipient
// given as a name-addr: "Joe <joe@example.org>" and "<joe@example.org>"
// are joe@example.org, as sendmail and Postfix read them (mailx -r and
// some scripts pass that form). Anything else is returned without the
// white space around it (a value read from a file), for
// qmail-inject's own rule (split at the last @, quote the local part).
func AddrSpec(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasSuffix(t, ">") {
		return t
	}
	lt := strings.LastIndexByte(t, '<')
	if lt < 0 {
		return t
	}
	return t[lt+1 : len(t)-1]
}

// SplitRecipients splits argument recipients that are comma-separated
// lists ("alice, bob", as cron passes a MAILTO of several users in one
// argument) into one recipient each, trims the white space around them, reads
// each as AddrSpec, and drops empty ones. Commas inside double quotes or
// angle brackets do not split. qmail's sendmail hands such an argument to
// qmail-inject as one address; sendmail and Postfix read a list.
func SplitRecipients(args []string) []string {
	var out []string
	for _, a := range args {
		for _, r := range splitList(a) {
			if r = strings.TrimSpace(r); r != "" {
				out = append(out, AddrSpec(r))
			}
		}
	}
	return out
}

// splitList splits s at the commas outside quoted strings, comments and
// angle brackets. An unbalanced quote, parenthesis or bracket leaves the
// rest unsplit.
func splitList(s string) []string {
	var parts []string
	quoted, angle, paren, start := false, 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case (quoted || paren > 0) && c == '\\':
			i++
		case paren == 0 && c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case paren > 0:
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
		case c == ',' && angle == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}
