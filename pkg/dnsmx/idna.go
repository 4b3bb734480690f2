package dnsmx

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// ToASCII turns a domain with non-ASCII labels (an IDN written in UTF-8,
// as an SMTPUTF8 address carries it) into the A-labels DNS knows:
// "bücher.example" is "xn--bcher-kva.example". Each such label is
// lowercased and Punycode-encoded (RFC 3492, RFC 5891 §4.4); ASCII labels
// are left as they are. This is the core of IDNA's ToASCII without the
// Unicode normalisation and validity tables, enough for the names people
// write. A name that is not valid UTF-8 is returned unchanged.
func ToASCII(name string) string {
	if isASCII(name) || !utf8.ValidString(name) {
		return name
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if isASCII(l) {
			continue
		}
		enc, err := punycode(strings.ToLower(l))
		if err != nil {
			return name
		}
		labels[i] = "xn--" + enc
	}
	return strings.Join(labels, ".")
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
