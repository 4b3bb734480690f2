// Package hold reads the hold flag files control/holdlocal and
// control/holdremote, for every program that shows or changes them
// (qmailctl, qmail-qread, qmail-showctl) and for qmail-send itself, so all
// of them read a file the same way.
package hold

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Flag flag file names, relative to the control directory.
const (
	LocalFile  = "holdlocal"
	RemoteFile = "holdremote"
)

// Flag is the parsed state of one hold flag file.
//
// Rules (docs/HACKING.md; the same as qmail-send's pkg/sched
// ParseHoldRemote, so that what qmailctl and qmail-qread show is what
// qmail-send does):
//   - the file is absent: nothing is held (Set false);
//   - the file exists and its first line (blanks and a CR around it
//     removed) is "", "1", "*" or a word a hand-written flag may mean
//     "everything" by (all, yes, y, true, on, hold; any case), or it lists
//     no domain at all (empty, only comments, "." or lines that are not
//     domains): every destination is held (All), since the file exists
//     (spec/scheduler.md §13: held iff it exists);
//   - otherwise each list line (blank and '#' lines skipped, "." ignored),
//     in CanonDomain form (lowercased, an internationalized name in its
//     A-labels), is a held domain; a line starting with '.' holds the
//     subdomains of what follows (".example.com" holds "a.example.com", not
//     "example.com"). A domain may be written in U-labels or A-labels:
//     "bücher.example" and "xn--bcher-kva.example" are one domain, to the
//     hold as to DNS (qmail-remote looks both up as the latter), and each
//     line holds mail to either spelling.
//
// A list line that is not a domain (spaces, '@', ':', a later "*" or
// "all", a word for off such as "0" or "no", ...) is reported in Junk and
// matches nothing, so beside valid domains it holds nothing (a word for
// off used to be matched, as a dotless domain of that name); a file made
// only of such lines holds everything (the safe side of a typo).
type Flag struct {
	Set     bool
	All     bool
	Domains []string   // valid domain lines in CanonDomain form, in file order, no duplicates
	Junk    []JunkLine // list lines that are not domains
	match   []string   // the domain lines as qmail-send matches them
	local   bool       // control/holdlocal's: destinations mean nothing there
}

// JunkLine is a line of a hold file that is not a domain.
type JunkLine struct {
	Line int // 1-based line number in the file
	Text string
}

// ValidDomain reports whether s may appear as a domain line of a hold
// file: in its CanonDomain form (an internationalized name in A-labels,
// so "bücher.example" is as valid as "xn--bcher-kva.example") letters,
// digits, '-', '_' and '.', optionally with a leading '.', at most 255
// bytes; or an address literal "[...]" of digits, hex letters, '.' and ':'.
//
// A word that reads as "off" (0, n, no, off, false, none, any case) is no
// domain: written into the file by hand it was taken for a hold of a
// domain of that name, which held nothing else, the opposite of what the
// file's presence means (a file of such words holds everything).
func ValidDomain(s string) bool {
	if s == "" || OffWord(s) {
		return false
	}
	if strings.HasPrefix(s, "[") {
		if len(s) < 3 || len(s) > 255 || !strings.HasSuffix(s, "]") {
			return false
		}
		in := s[1 : len(s)-1]
		tagged := len(in) > 5 && strings.EqualFold(in[:5], "ipv6:")
		if tagged {
			in = in[5:] // RFC 5321's [IPv6:2001:db8::1]
		}
		a, err := netip.ParseAddr(in)
		return err == nil && a.Zone() == "" && (!tagged || a.Is6())
	}
	a := idna.ToASCII(s)
	if len(a) > 255 {
		return false
	}
	body := strings.TrimPrefix(a, ".")
	if body == "" || strings.HasPrefix(body, ".") || strings.Contains(body, "..") {
		return false
	}
	for _, c := range body {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Parse parses the contents of an existing hold file. A file written by a
// Windows editor reads as it looks: a UTF-8 byte order mark at its start
// and a CR at a line's end are not part of a domain (they made the line
// junk, and mail to that domain flowed).
func Parse(b []byte) Flag {
	b = control.StripBOM(b)
	h := Flag{Set: true}
	if AllMarker(control.FirstLine(b)) {
		h.All = true
	}
	seen := map[string]bool{}
	for i, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimRight(raw, " \t\r")
		if line == "" || line[0] == '#' || (i == 0 && h.All) {
			continue
		}
		raw := strings.TrimSpace(line)
		d := CanonDomain(raw)
		if d == "" || d == "." {
			continue
		}
		if !ValidDomain(raw) || AllMarker(d) {
			h.Junk = append(h.Junk, JunkLine{Line: i + 1, Text: strings.TrimSpace(line)})
			continue
		}
		h.match = append(h.match, d)
		if !seen[d] {
			seen[d] = true
			h.Domains = append(h.Domains, d)
		}
	}
	if len(h.Domains) == 0 {
		h.All = true
	}
	return h
}

// CanonDomain is the form in which a domain is matched: lowercased, and a
// host qmail-remote reads as an address (literal) as that address in one
// canonical spelling, "[addr]": a hold of "[IPv6:::1]" holds mail to
// "[IPv6:0:0:0:0:0:0:0:1]" and to "[::1]", "[192.0.2.1]" holds
// "[IPv6:::ffff:192.0.2.1]", and "[127.0.0.1]" holds mail to the bare
// dotted quad "127.0.0.1" (qmail-remote delivers both to 127.0.0.1), and
// the other way round. Anything else is a name, taken in the form
// qmail-remote looks it up by (pkg/idna Fold): lowercased, with its
// non-ASCII labels in A-labels and without a trailing dot, so that
// "Bücher.example." is "xn--bcher-kva.example" (and ".bücher.example"
// ".xn--bcher-kva.example").
func CanonDomain(d string) string {
	if a, ok := literal(d); ok {
		return "[" + a.String() + "]"
	}
	// Folded first, as qmail-remote's route table folds before it trims:
	// the ideographic and fullwidth full stops are dots to idna, so
	// "example.org\u3002" is example.org too, and "127\u30020\u30020\u30021"
	// is held with "[127.0.0.1]", the safe side.
	d = idna.Fold(d)
	if a, ok := literal(d); ok {
		return "[" + a.String() + "]"
	}
	// "example.com." is the host qmail-remote and smtproutes take
	// example.com for; but "127.0.0.1." is a name to look up, not the
	// address.
	if t := strings.TrimSuffix(d, "."); t != d && t != "" {
		if _, addr := literal(t); !addr {
			d = t
		}
	}
	return d
}

// literal returns the address qmail-remote delivers to for the host d
// without a DNS lookup (pkg/dnsmx Literal, after qmail's dns_mxip): a
// dotted quad d.d.d.d, bare or in brackets, "[IPv6:addr]" (an IPv4-mapped
// address read as the IPv4 one) or an untagged "[addr]" of an IPv6 address
// that is not IPv4-mapped. Like dnsmx (net.ParseIP), it takes no leading
// zeros in a dotted quad ("127.000.000.001" is looked up as a name), where
// qmail's ip_scan took them. TestLiteralAsDnsmx keeps the two in step;
// pkg/hold does not import dnsmx, so that qmail-send and the tools that
// read a hold flag do not link a DNS client.
func literal(d string) (netip.Addr, bool) {
	if len(d) > 2 && d[0] == '[' && d[len(d)-1] == ']' {
		in := d[1 : len(d)-1]
		if len(in) > 5 && strings.EqualFold(in[:5], "ipv6:") {
			a, ok := ip6(in[5:])
			return a.Unmap(), ok
		}
		if strings.Contains(in, ":") {
			a, ok := ip6(in)
			return a, ok && !a.Is4In6()
		}
		return dottedQuad(in)
	}
	return dottedQuad(d)
}

// ip6 parses an IPv6 address of a literal (a colon in it, no zone).
func ip6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// dottedQuad parses d.d.d.d only (digits and dots, no leading zeros).
func dottedQuad(s string) (netip.Addr, bool) {
	if s == "" || strings.Trim(s, "0123456789.") != "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// OffWord reports whether s is a word for "off" or "no" (0, n, no, off,
// false, none, any case).
func OffWord(s string) bool {
	switch strings.ToLower(s) {
	case "0", "n", "no", "off", "false", "none":
		return true
	}
	return false
}

// AllMarker reports whether line, as the first line of a hold file, holds
// every destination: "", "1", "*", or all, yes, y, true, on or hold in any
// case, with blanks and a CR around it ignored. The words are there so
// that a typo in a hand-written flag holds mail rather than sending it over
// a link that is down; none of them is a domain anyone holds by name.
func AllMarker(line string) bool {
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "", "1", "*", "all", "yes", "y", "true", "on", "hold":
		return true
	}
	return false
}

// Read reads control/NAME of the control directory dir. A missing file
// is an unset Flag; any other error is returned.
func Read(dir, name string) (Flag, error) {
	b, err := qhome.ReadRegular(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Flag{}, nil
		}
		return Flag{}, err
	}
	return ParseFile(name, b), nil
}

// ParseFile parses the contents of the existing hold file name. Local
// delivery is held as a whole: control/holdlocal holds everything whatever
// it says, as qmail-send reads it (a domain written there by hand is not a
// domain hold).
func ParseFile(name string, b []byte) Flag {
	if name == LocalFile {
		return Flag{Set: true, All: true, local: true}
	}
	return Parse(b)
}

// HoldsDomain reports whether deliveries to domain are held.
func (h Flag) HoldsDomain(domain string) bool {
	if !h.Set {
		return false
	}
	return h.All || MatchDomain(h.match, domain)
}

// MatchDomain reports whether domain is one of the list lines of a hold
// file (Flag.Lines, in CanonDomain form; qmail-send keeps them): a line
// equal to it, or a ".suffix" line it ends with, the domain compared in
// CanonDomain form (either spelling of an internationalized name, without
// a trailing dot).
func MatchDomain(lines []string, domain string) bool {
	domain = CanonDomain(domain)
	if domain == "" {
		return false
	}
	for _, d := range lines {
		if d[0] == '.' {
			if strings.HasSuffix(domain, d) {
				return true
			}
		} else if domain == d {
			return true
		}
	}
	return false
}

// HoldsAddress reports whether a delivery to addr (local@domain) is held.
// An address without '@' is matched as a whole, as qmail-send does.
func (h Flag) HoldsAddress(addr string) bool {
	_, dom, ok := address.Split(addr)
	if !ok {
		dom = addr
	}
	return h.HoldsDomain(dom)
}

// Describe renders the hold for humans: "not held", "held (all
// destinations)" or "held for a.example .b.example"; a hold of local
// delivery (ParseFile of control/holdlocal) is just "held".
func (h Flag) Describe() string {
	switch {
	case !h.Set:
		return "not held"
	case h.local:
		return "held"
	case h.All:
		return "held (all destinations)"
	default:
		return "held for " + strings.Join(h.Domains, " ")
	}
}

// JunkWarnings returns one human-readable warning per junk line of the hold
// file name.
func (h Flag) JunkWarnings(name string) []string {
	var out []string
	for _, j := range h.Junk {
		if len(h.Domains) == 0 {
			out = append(out, fmt.Sprintf("control/%s line %d is not a domain: %q (no domain is listed, so every destination is held)", name, j.Line, j.Text))
			continue
		}
		out = append(out, fmt.Sprintf("control/%s line %d is not a domain and holds nothing: %q", name, j.Line, j.Text))
	}
	return out
}

// Lines returns the list lines the flag matches against (in CanonDomain
// form), in file order. It is nil when All is set.
func (h Flag) Lines() []string {
	if h.All {
		return nil
	}
	return h.match
}

// SendForm renders the hold the way qmail-send reports it in
// queue/lock/sendstatus (pkg/sched): "no", "all", or the list lines it
// matches, joined by spaces.
func (h Flag) SendForm() string {
	switch {
	case !h.Set:
		return "no"
	case h.All:
		return "all"
	}
	return strings.Join(h.match, " ")
}
