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
	na := withoutTrailingComments(t)
	if !strings.HasSuffix(na, ">") {
		return t
	}
	t = na
	lt := strings.LastIndexByte(t, '<')
	if lt < 0 {
		return t
	}
	return t[lt+1 : len(t)-1]
}

// withoutTrailingComments removes the comments at the end of t ("Joe
// <joe@example.org> (work)" is a name-addr followed by a comment), with
// the white space before them; t is returned as it is when its end is
// not a balanced comment.
func withoutTrailingComments(t string) string {
	for strings.HasSuffix(t, ")") {
		depth, i := 0, len(t)-1
		for ; i >= 0; i-- {
			if i > 0 && t[i-1] == '\\' {
				continue // an escaped parenthesis
			}
			if t[i] == ')' {
				depth++
			} else if t[i] == '(' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if i < 0 {
			return t
		}
		t = strings.TrimSpace(t[:i])
	}
	return t
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
