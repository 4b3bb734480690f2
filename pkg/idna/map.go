package idna

import (
	"strings"
	"unicode"
)

// The mapping step of UTS #46 (IDNA's compatibility processing,
// nontransitional, as IDNA2008 lookups, libidn2, browsers and Python's
// idna package do it) is, roughly, NFKC_Casefold: a name is mapped
// before it is Punycode-encoded, so that the forms people write of one
// domain reach one A-label. This file is a small hand table of it, not
// the Unicode data. It covers:
//
//   - the label separators U+3002 IDEOGRAPHIC FULL STOP, U+FF0E FULLWIDTH
//     FULL STOP and U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP, which are dots
//     (RFC 3490 §3.1; UTS #46 maps them to '.') (mapDots);
//   - the fullwidth letters, digits and hyphen (U+FF21..U+FF3A,
//     U+FF41..U+FF5A, U+FF10..U+FF19, U+FF0D), which are their ASCII
//     (NFKC), the letters lowercase;
//   - the case folding: every character whose UTS #46 mapping, for the
//     Unicode version of Go's tables (unicode.Version), differs from its
//     simple lowercase (unicode.ToLower) and is not a compatibility
//     (NFKC) mapping otherwise: U+0130 İ (i and U+0307), the Cherokee
//     letters (UTS #46 keeps the capitals and maps the small letters to
//     them), U+0345 and the Greek letters with ypogegrammeni or
//     prosgegrammeni (the letter and ι), U+1C80..U+1C88 (Cyrillic
//     variants); and the letters that are case variants by compatibility
//     only: U+017F ſ (s), U+00B5 µ (μ), U+1E9B ẛ (ṡ), the Greek symbols
//     ϐ ϑ ϒ ϓ ϔ ϕ ϖ ϰ ϱ ϲ Ϲ ϵ and U+1FBE (ι).
//
// The deviations stay as they are (nontransitional processing): ß, ς,
// ZERO WIDTH JOINER and NON-JOINER. U+1E9E ẞ lowercases to ß, which is
// its mapping since UTS #46 15.1 (it was "ss" before).
//
// Not attempted: the rest of NFKC (composition of decomposed forms, so
// that "u" + U+0308 is another A-label than "ü"; ligatures such as ﬁ
// and ĳ; halfwidth katakana and hangul; superscripts, circled and
// mathematical letters; the other fullwidth punctuation, which UTS #46
// maps to ASCII that the STD3 rules of host names then refuse, and which
// here stays non-ASCII rather than become an '@', '>' or '[' in a host
// name qmail-remote sends), the characters UTS #46 removes (U+00AD SOFT
// HYPHEN, variation selectors), its validity checks (disallowed
// characters, Bidi, CONTEXTJ), and characters newer than Go's tables.
// Such a name is encoded as it is lowercased: DNS, asked by the same
// ToASCII, looks up that same other name, so tables and lookups agree.

// FullStops are the label separators of RFC 3490 §3.1 besides '.':
// U+3002 IDEOGRAPHIC FULL STOP, U+FF0E FULLWIDTH FULL STOP and U+FF61
// HALFWIDTH IDEOGRAPHIC FULL STOP, which ToASCII and Fold take for dots
// (pkg/inject counts them as dots in its rewriting too).
var FullStops = [...]string{"\u3002", "\uFF0E", "\uFF61"}

// dotReplacer maps FullStops to '.'.
var dotReplacer = strings.NewReplacer(FullStops[0], ".", FullStops[1], ".", FullStops[2], ".")

// mapDots returns name with its ideographic and fullwidth full stops
// made dots.
func mapDots(name string) string {
	if !strings.ContainsAny(name, "\u3002\uFF0E\uFF61") { // FullStops
		return name
	}
	return dotReplacer.Replace(name)
}

// foldSpecial: the characters whose UTS #46 mapping is not their
// lowercase (unicode.ToLower), each with that mapping (IdnaMappingTable
// rows "XXXX ; mapped ; YYYY"). U+1F80..U+1FAF are in ypogegrammeni.
var foldSpecial = map[rune]string{
	0x00B5: "\u03BC",       // MICRO SIGN: μ
	0x0130: "i\u0307",      // LATIN CAPITAL LETTER I WITH DOT ABOVE: i, COMBINING DOT ABOVE
	0x017F: "s",            // LATIN SMALL LETTER LONG S
	0x0345: "\u03B9",       // COMBINING GREEK YPOGEGRAMMENI: ι
	0x03D0: "\u03B2",       // GREEK BETA SYMBOL: β
	0x03D1: "\u03B8",       // GREEK THETA SYMBOL: θ
	0x03D2: "\u03C5",       // GREEK UPSILON WITH HOOK SYMBOL: υ
	0x03D3: "\u03CD",       // GREEK UPSILON WITH ACUTE AND HOOK SYMBOL: ύ
	0x03D4: "\u03CB",       // GREEK UPSILON WITH DIAERESIS AND HOOK SYMBOL: ϋ
	0x03D5: "\u03C6",       // GREEK PHI SYMBOL: φ
	0x03D6: "\u03C0",       // GREEK PI SYMBOL: π
	0x03F0: "\u03BA",       // GREEK KAPPA SYMBOL: κ
	0x03F1: "\u03C1",       // GREEK RHO SYMBOL: ρ
	0x03F2: "\u03C3",       // GREEK LUNATE SIGMA SYMBOL: σ
	0x03F5: "\u03B5",       // GREEK LUNATE EPSILON SYMBOL: ε
	0x03F9: "\u03C3",       // GREEK CAPITAL LUNATE SIGMA SYMBOL: σ
	0x1C80: "\u0432",       // CYRILLIC SMALL LETTER ROUNDED VE: в
	0x1C81: "\u0434",       // CYRILLIC SMALL LETTER LONG-LEGGED DE: д
	0x1C82: "\u043E",       // CYRILLIC SMALL LETTER NARROW O: о
	0x1C83: "\u0441",       // CYRILLIC SMALL LETTER WIDE ES: с
	0x1C84: "\u0442",       // CYRILLIC SMALL LETTER TALL TE: т
	0x1C85: "\u0442",       // CYRILLIC SMALL LETTER THREE-LEGGED TE: т
	0x1C86: "\u044A",       // CYRILLIC SMALL LETTER TALL HARD SIGN: ъ
	0x1C87: "\u0463",       // CYRILLIC SMALL LETTER TALL YAT: ѣ
	0x1C88: "\uA64B",       // CYRILLIC SMALL LETTER UNBLENDED UK: ꙋ
	0x1E9B: "\u1E61",       // LATIN SMALL LETTER LONG S WITH DOT ABOVE: ṡ
	0x1FB2: "\u1F70\u03B9", // ᾲ: ὰι
	0x1FB3: "\u03B1\u03B9", // ᾳ: αι
	0x1FB4: "\u03AC\u03B9", // ᾴ: άι
	0x1FB7: "\u1FB6\u03B9", // ᾷ: ᾶι
	0x1FBC: "\u03B1\u03B9", // ᾼ: αι
	0x1FBE: "\u03B9",       // GREEK PROSGEGRAMMENI: ι
	0x1FC2: "\u1F74\u03B9", // ῂ: ὴι
	0x1FC3: "\u03B7\u03B9", // ῃ: ηι
	0x1FC4: "\u03AE\u03B9", // ῄ: ήι
	0x1FC7: "\u1FC6\u03B9", // ῇ: ῆι
	0x1FCC: "\u03B7\u03B9", // ῌ: ηι
	0x1FF2: "\u1F7C\u03B9", // ῲ: ὼι
	0x1FF3: "\u03C9\u03B9", // ῳ: ωι
	0x1FF4: "\u03CE\u03B9", // ῴ: ώι
	0x1FF7: "\u1FF6\u03B9", // ῷ: ῶι
	0x1FFC: "\u03C9\u03B9", // ῼ: ωι
}

// ypogegrammeni returns the letter without ypogegrammeni of
// U+1F80..U+1FAF (Greek alpha, eta, omega with psili or dasia and
// ypogegrammeni, and their prosgegrammeni capitals), which UTS #46 maps
// to it and ι: U+1F80 and U+1F88 are U+1F00 U+03B9.
func ypogegrammeni(r rune) (rune, bool) {
	if r < 0x1F80 || r > 0x1FAF {
		return 0, false
	}
	base := [3]rune{0x1F00, 0x1F20, 0x1F60}[(r-0x1F80)>>4]
	return base + r&7, true
}

func isCherokee(r rune) bool {
	return r >= 0x13A0 && r <= 0x13F5 || r >= 0x13F8 && r <= 0x13FD || r >= 0xAB70 && r <= 0xABBF
}

// mapLabel maps one label as UTS #46 does, as far as the table above
// goes; other characters are lowercased (unicode.ToLower).
func mapLabel(l string) string {
	var b strings.Builder
	b.Grow(len(l))
	for _, r := range l {
		switch {
		case r >= 0xFF21 && r <= 0xFF3A: // FULLWIDTH LATIN CAPITAL LETTER
			b.WriteByte(byte(r - 0xFF21 + 'a'))
		case r >= 0xFF41 && r <= 0xFF5A, r >= 0xFF10 && r <= 0xFF19, r == 0xFF0D:
			b.WriteByte(byte(r - 0xFEE0)) // small letter, digit, hyphen-minus
		case isCherokee(r):
			b.WriteRune(unicode.ToUpper(r))
		default:
			if m, ok := foldSpecial[r]; ok {
				b.WriteString(m)
			} else if base, ok := ypogegrammeni(r); ok {
				b.WriteRune(base)
				b.WriteRune('\u03B9')
			} else {
				b.WriteRune(unicode.ToLower(r))
			}
		}
	}
	return b.String()
}
