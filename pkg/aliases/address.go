package aliases

import (
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/inject"
)

// This file reads an address target in the forms RFC 5322 allows in an
// address list, as sendmail's and Postfix's alias tables take them:
//
//	bob@example.com
//	Bob <bob@example.com>              (a display name before <addr>)
//	"Smith, Bob" <bob@example.com>
//	joe@example.com (Joe Admin)        (comments anywhere are dropped)
//	(Joe Admin) joe@example.com
//	"joe smith"@example.com            (a quoted local part stays quoted)
//
// The lexer is qmail-inject's (pkg/inject), so a target is read as a
// header address is. A target is stored in one canonical form: the local
// part quoted as pkg/address quotes it (only when it needs quotes), then
// "@domain" if there is one. Envelope turns it into the form an envelope
// carries (no quotes), which qmail-remote quotes again on the wire.

// parseAddress reads one address (with an optional display name and
// comments). It returns the local part without quotes, the domain, and
// whether there was an '@'. ok is false for anything that is not exactly
// one address. An empty address ("", ""@host, Name <>, Name <"">) is
// one, with an empty local part: the caller refuses it.
func parseAddress(s string) (local, domain string, hasDomain, ok bool) {
	all, ok := inject.Tokenize(s)
	if !ok {
		return "", "", false, false
	}
	toks := all[:0:0]
	for _, t := range all {
		if t.Kind != inject.Comment {
			toks = append(toks, t)
		}
	}
	addr := toks
	for i, t := range toks {
		if t.Kind != inject.Left {
			continue
		}
		// phrase <addr>: the phrase is words and dots (obs-phrase), the
		// route-addr ends the target.
		for _, p := range toks[:i] {
			if p.Kind != inject.Atom && p.Kind != inject.Quote && p.Kind != inject.Dot {
				return "", "", false, false
			}
		}
		if toks[len(toks)-1].Kind != inject.Right {
			return "", "", false, false
		}
		addr = toks[i+1 : len(toks)-1]
		if len(addr) == 0 {
			return "", "", false, true // <>: an empty address
		}
		break
	}
	if len(addr) == 0 {
		return "", "", false, false
	}
	at := -1
	for i, t := range addr {
		if t.Kind == inject.At {
			at = i
		}
	}
	localToks, domainToks := addr, []inject.Token(nil)
	if at >= 0 {
		localToks, domainToks = addr[:at], addr[at+1:]
		if len(domainToks) == 0 {
			return "", "", false, false
		}
	}
	if len(localToks) == 0 || !dotted(localToks, inject.Atom, inject.Quote) {
		return "", "", false, false
	}
	// An atom with an 8-bit byte comes out of the lexer as a quoted
	// string: a domain takes those (bücher.example) but no blank.
	if at >= 0 && !dotted(domainToks, inject.Atom, inject.Quote, inject.Literal) {
		return "", "", false, false
	}
	local = inject.Unquote(localToks)
	domain = inject.Unquote(domainToks)
	if strings.ContainsAny(domain, " \t") {
		return "", "", false, false
	}
	return local, domain, at >= 0, true
}

// dotted reports whether toks are words of the given kinds and dots, no
// two words side by side ("john smith" is two words, not an address).
func dotted(toks []inject.Token, words ...inject.Kind) bool {
	prevWord := false
	for _, t := range toks {
		if t.Kind == inject.Dot {
			prevWord = false
			continue
		}
		isWord := false
		for _, k := range words {
			if t.Kind == k {
				isWord = true
			}
		}
		if !isWord || prevWord {
			return false
		}
		prevWord = true
	}
	return true
}

// canonical is the stored form of an address target: the local part
// quoted when it needs it, and also when it would otherwise read as a
// program or a file ("|x"@host given as Bob <|x> stays an address).
func canonical(local, domain string, hasDomain bool) string {
	q := address.QuoteLocal(local)
	if q == local && (strings.HasPrefix(local, "|") || strings.HasPrefix(local, "/")) {
		q = `"` + local + `"`
	}
	if hasDomain {
		return q + "@" + domain
	}
	return q
}

// Envelope returns an address target (Classify says Address) as an
// envelope carries it: a quoted local part loses its quotes
// ("joe smith"@example.com is joe smith@example.com in the envelope, and
// qmail-remote quotes it again in RCPT TO). Anything else is returned as
// it is.
func Envelope(t string) string {
	if !strings.HasPrefix(t, `"`) {
		return t
	}
	local, domain, hasDomain, ok := parseAddress(t)
	if !ok {
		return t
	}
	if hasDomain {
		return local + "@" + domain
	}
	return local
}

// quotedOK reports whether an address target starting with '"' is in
// the canonical form: one address, written as canonical writes it.
func quotedOK(t string) bool {
	local, domain, hasDomain, ok := parseAddress(t)
	return ok && local != "" && canonical(local, domain, hasDomain) == t
}
