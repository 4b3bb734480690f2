// Package address holds the small address helpers shared by every qmail
// program: splitting at the last '@' and quoting a local part the way qmail
// does when it writes an address into a header or an SMTP command.
package address

import "strings"

// Split splits addr at its last '@'. Without '@' the whole string is the
// local part and ok is false.
func Split(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, "", false
	}
	return addr[:i], addr[i+1:], true
}

// specials are the bytes that force quoting of a local part.
const specials = " ()<>@,;:\\\"[]"

// NeedsQuote reports whether a local part must be quoted: it is empty,
// contains a byte >= 127, a control byte or one of the specials, or has a
// leading, trailing or doubled '.'.
func NeedsQuote(local string) bool {
	if local == "" {
		return true
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return true
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= 127 || c < 32 || strings.IndexByte(specials, c) >= 0 {
			return true
		}
	}
	return false
}

// QuoteLocal returns local, wrapped in double quotes with '\' before '"',
// '\', CR and LF when NeedsQuote says so.
func QuoteLocal(local string) string {
	if !NeedsQuote(local) {
		return local
	}
	var b strings.Builder
	b.Grow(len(local) + 2)
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		switch c := local[i]; c {
		case '"', '\\', '\r', '\n':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Quote quotes the local part of addr (everything before the last '@', or
// the whole string without '@') and keeps the domain. The empty address
// stays empty.
func Quote(addr string) string {
	if addr == "" {
		return ""
	}
	local, domain, ok := Split(addr)
	if !ok {
		return QuoteLocal(local)
	}
	return QuoteLocal(local) + "@" + domain
}

// LowerASCII lowercases the ASCII letters of s and nothing else, as qmail
// compares host names (case_lowerb): a byte that is no UTF-8 stays
// itself, and no other character folds onto an ASCII one (Unicode's
// ToLower makes every such byte U+FFFD, so that different names compare
// equal, and folds the Kelvin sign onto 'k'). A domain compared with a
// control file's list (rcpthosts, locals, virtualdomains) goes through
// idna.FoldKey, which uses this and also folds an IDN's two spellings.
func LowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// EqualFoldASCII reports whether a and b are equal once their ASCII
// letters are lowercased (LowerASCII), without allocating: qmail's
// case_diffs. strings.EqualFold also matches 'ſ' with 's' and the Kelvin
// sign with 'k', so that two different local parts compare equal.
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
