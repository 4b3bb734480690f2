// Package idna turns internationalized domain names into the form DNS and
// every per-domain table of hqmail compare them in: the core of IDNA's
// ToASCII (RFC 5891 §4.4) with the mapping of UTS #46 as far as a small
// hand table goes (map.go: the ideographic full stops, fullwidth letters
// and digits, the case folding) and Punycode (RFC 3492), and Fold, the one
// canonical spelling of a host (A-labels, lowercased) that qmail-remote's
// route tables (control/smtproutes, tlsroutes, smtpauth) and the hold
// flags (control/holdremote, pkg/hold) match in, so that "bücher.example",
// "Bücher\u3002example" and "xn--bcher-kva.example" are the same domain to
// them as they are to DNS (pkg/dnsmx looks names up by ToASCII) and to
// browsers, libidn2 and MUAs.
//
// It depends on nothing but the standard library and pkg/address: pkg/hold
// uses it and must not link a DNS client.
package idna

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/hqmail/hqmail/pkg/address"
)

// ToASCII turns a domain with non-ASCII labels (an IDN written in UTF-8,
// as an SMTPUTF8 address carries it) into the A-labels DNS knows:
// "bücher.example" is "xn--bcher-kva.example". The ideographic and
// fullwidth full stops (U+3002, U+FF0E, U+FF61) separate labels as '.'
// does (RFC 3490 §3.1): "bücher\u3002example" is the same name. Each
// non-ASCII label is mapped as UTS #46 maps it (nontransitional, as
// browsers, libidn2 and MUAs do; map.go says how far the hand table
// goes), which is lowercasing but for fullwidth letters and digits (their
// ASCII), the case-fold specials (U+017F ſ is s, U+00B5 µ is μ, ϐ is β,
// Cherokee small letters are the capitals, U+0130 İ is i and U+0307) and
// ß and ς, which stay; then Punycode-encoded (RFC 3492, RFC 5891 §4.4).
// ASCII labels are left as they are. A label that the mapping makes
// ASCII (U+212A KELVIN SIGN lowercases to 'k'; "ｅｘａｍｐｌｅ" is
// "example") is that ASCII: "\u212Aelvin.example" is "kelvin.example", not
// "xn--kelvin-.example", since an A-label must decode to a label with
// non-ASCII (RFC 5890 §2.3.2.1). This is the core of IDNA's ToASCII
// without full NFKC and the validity tables, enough for the names people
// write. A name that is not valid UTF-8, or that is all ASCII, is
// returned unchanged.
func ToASCII(name string) string {
	if isASCII(name) || !utf8.ValidString(name) {
		return name
	}
	labels := strings.Split(mapDots(name), ".")
	for i, l := range labels {
		if isASCII(l) {
			continue
		}
		low := mapLabel(l)
		if isASCII(low) {
			labels[i] = low
			continue
		}
		enc, err := punycode(low)
		if err != nil {
			return name
		}
		labels[i] = "xn--" + enc
	}
	return strings.Join(labels, ".")
}

// Fold returns the canonical form of a host name for comparing it with a
// key of a per-domain table: its A-labels (ToASCII), lowercased.
// "Bücher.Example", "bücher.example" and "XN--BCHER-KVA.example" all fold
// to "xn--bcher-kva.example", and "\u212Aelvin.Example" (KELVIN SIGN) to
// "kelvin.example", as ToASCII makes it; a leading or trailing dot stays
// where it is (".bücher.example" is ".xn--bcher-kva.example", a suffix
// key still matching the subdomains). A name ToASCII leaves alone (not UTF-8, or a
// label Punycode cannot encode) is only lowercased, and of a name that is
// not UTF-8 only the ASCII letters are (strings.ToLower would make every
// invalid byte U+FFFD, and two different names one). Address literals
// ("[192.0.2.1]") are ASCII and only lowercased; callers that read them as
// addresses do so before or instead.
//
// The mapping is ToASCII's (UTS #46 as far as map.go goes): a name with
// ideographic full stops or fullwidth letters folds as the ASCII one does
// ("ｂüｃｈｅｒ\u3002Example" is "xn--bcher-kva.example"). No other Unicode
// normalisation is done: a name written in decomposed form ("u" + U+0308)
// folds to other A-labels than the precomposed "ü", and DNS, asked by the
// same ToASCII, looks up that other name too, so a table and the lookup
// never disagree.
func Fold(name string) string {
	a := ToASCII(name)
	if utf8.ValidString(a) {
		return strings.ToLower(a)
	}
	return address.LowerASCII(a)
}

// FoldKey is the form in which a key of qmail's own domain tables
// (control/locals, rcpthosts, morercpthosts, virtualdomains, badmailfrom)
// and the address or domain looked up in it are compared: a domain,
// ".suffix" or "@domain" folded (Fold); an address "local@domain" with the
// ASCII letters of its local part lowercased, as qmail compares them, and
// its domain folded. qmail compares the bytes, ASCII letters folded: the
// two spellings of an IDN, which DNS and qmail-remote's tables take for
// one name, were two names to these tables, so that mail was refused or
// bounced for the spelling not listed.
func FoldKey(k string) string {
	i := strings.LastIndexByte(k, '@')
	if i < 0 {
		return Fold(k)
	}
	return address.LowerASCII(k[:i]) + "@" + Fold(k[i+1:])
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Punycode parameters (RFC 3492 §5).
const (
	pcBase        = 36
	pcTmin        = 1
	pcTmax        = 26
	pcSkew        = 38
	pcDamp        = 700
	pcInitialBias = 72
	pcInitialN    = 128
)

var errOverflow = errors.New("punycode: overflow")

// punycode encodes one label (RFC 3492 §6.3).
func punycode(label string) (string, error) {
	runes := []rune(label)
	var out []byte
	for _, r := range runes {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	b := len(out)
	h := b
	if b > 0 {
		out = append(out, '-')
	}
	n, delta, bias := pcInitialN, 0, pcInitialBias
	for h < len(runes) {
		m := int(^uint32(0) >> 1)
		for _, r := range runes {
			if int(r) >= n && int(r) < m {
				m = int(r)
			}
		}
		if (m - n) > (int(^uint32(0)>>1)-delta)/(h+1) {
			return "", errOverflow
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range runes {
			if int(r) < n {
				delta++
			}
			if int(r) != n {
				continue
			}
			q := delta
			for k := pcBase; ; k += pcBase {
				t := min(max(k-bias, pcTmin), pcTmax)
				if q < t {
					break
				}
				out = append(out, pcDigit(t+(q-t)%(pcBase-t)))
				q = (q - t) / (pcBase - t)
			}
			out = append(out, pcDigit(q))
			bias = pcAdapt(delta, h+1, h == b)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out), nil
}

func pcDigit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

func pcAdapt(delta, points int, first bool) int {
	if first {
		delta /= pcDamp
	} else {
		delta /= 2
	}
	delta += delta / points
	k := 0
	for delta > ((pcBase-pcTmin)*pcTmax)/2 {
		delta /= pcBase - pcTmin
		k += pcBase
	}
	return k + (pcBase-pcTmin+1)*delta/(delta+pcSkew)
}
