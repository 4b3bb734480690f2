package sendmail

import (
	"errors"
	"fmt"
	"strings"
)

// AddrSpec returns the address of a -f value or of one element of a
// recipient argument, the rule of sendmail(8) ADDRESSES. An element with
// an angle bracket outside double quotes and comments is a name-addr,
// "[phrase] <address> [comments]" as sendmail and Postfix read it (mailx
// -r and some scripts pass that form): "Joe <joe@example.org> (work)" is
// joe@example.org and "<>" the null address. It must be whole: one '<'
// closed by one '>', followed by nothing but white space and comments;
// anything else there (a second <address> without a comma, trailing
// words, an unclosed bracket) is an error saying what is wrong. Any other
// element is returned without the white space around it (a value read
// from a file), for qmail-inject's own rule (split at the last @, quote
// the local part).
func AddrSpec(s string) (string, error) {
	t := strings.TrimSpace(s)
	lt, gt, err := brackets(t)
	if err != nil {
		return "", err
	}
	if lt < 0 {
		return t, nil
	}
	return strings.TrimSpace(t[lt+1 : gt]), nil
}

// brackets returns the indexes of the '<' and '>' of the name-addr t, or
// -1, -1 when t has no angle bracket outside quoted strings and comments.
// An unclosed quoted string or comment is left to qmail-inject unless an
// angle bracket is in it (a quote opened before the '<' hides the
// brackets, which would then be read as part of the address).
func brackets(t string) (lt, gt int, err error) {
	lt, gt = -1, -1
	quoted, paren, open := false, 0, 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		if quoted || paren > 0 {
			switch {
			case c == '\\':
				i++
			case quoted && c == '"':
				quoted = false
			case !quoted && c == '(':
				paren++
			case !quoted && c == ')':
				paren--
			}
			continue
		}
		switch c {
		case ' ', '\t':
			continue
		case '(':
			paren, open = 1, i
			continue
		}
		if gt >= 0 {
			switch c {
			case '<':
				return -1, -1, errors.New("a second <address> follows the first: separate addresses with commas")
			case '>':
				return -1, -1, errors.New("'>' without an opening '<'")
			}
			return -1, -1, errors.New("text after the closing '>' (only a comment in parentheses may follow)")
		}
		switch c {
		case '"':
			quoted, open = true, i
		case '<':
			if lt >= 0 {
				return -1, -1, errors.New("'<' inside <...>")
			}
			lt = i
		case '>':
			if lt < 0 {
				return -1, -1, errors.New("'>' without an opening '<'")
			}
			gt = i
		}
	}
	if (quoted || paren > 0) && (lt >= 0 || strings.ContainsAny(t[open:], "<>")) {
		if quoted {
			return -1, -1, errors.New("'\"' without a closing '\"'")
		}
		return -1, -1, errors.New("'(' without a closing ')'")
	}
	if lt >= 0 && gt < 0 {
		return -1, -1, errors.New("'<' without a closing '>'")
	}
	return lt, gt, nil
}

// SplitRecipients splits argument recipients that are comma-separated
// lists ("alice, bob", as cron passes a MAILTO of several users in one
// argument) into one recipient each, trims the white space around them,
// reads each as AddrSpec, and drops empty ones. Commas inside double
// quotes, comments or angle brackets do not split. qmail's sendmail hands
// such an argument to qmail-inject as one address; sendmail and Postfix
// read a list. An element AddrSpec refuses makes the whole call fail,
// with an error naming the element and its argument.
func SplitRecipients(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		for _, r := range splitList(a) {
			if r = strings.TrimSpace(r); r == "" {
				continue
			}
			s, err := AddrSpec(r)
			if err != nil {
				if r != strings.TrimSpace(a) {
					return nil, fmt.Errorf("unable to parse address %q in the argument %q: %v", r, a, err)
				}
				return nil, fmt.Errorf("unable to parse address %q: %v", a, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
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
