package smtpd

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/control"
)

// refDotted reads a tcprules-style dotted prefix, written from the rule
// RelayMatch states: one to three decimal numbers 0-255 without leading
// zeros, each followed by '.' ("192.168."), blanks around it ignored. It
// returns the netip.Prefix the rule stands for.
func refDotted(r string) (netip.Prefix, bool) {
	r = strings.TrimSpace(r)
	if !strings.HasSuffix(r, ".") {
		return netip.Prefix{}, false
	}
	parts := strings.Split(r[:len(r)-1], ".")
	if len(parts) > 3 {
		return netip.Prefix{}, false
	}
	var a [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 || len(p) > 1 && p[0] == '0' {
			return netip.Prefix{}, false
		}
		n := 0
		for _, c := range []byte(p) {
			if c < '0' || c > '9' {
				return netip.Prefix{}, false
			}
			n = n*10 + int(c-'0')
		}
		if n > 255 {
			return netip.Prefix{}, false
		}
		a[i] = byte(n)
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), 8*len(parts)), true
}

// fuzzAddr makes a client address from fuzz bytes: 4 bytes an IPv4
// address, 16 an IPv6 one (IPv4-mapped included), anything else derived
// from the first bytes.
func fuzzAddr(b []byte) netip.Addr {
	switch {
	case len(b) >= 16 && len(b)%2 == 0:
		return netip.AddrFrom16([16]byte(b[:16]))
	case len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	var a [4]byte
	copy(a[:], b)
	return netip.AddrFrom4(a)
}

// FuzzRelayMatch checks RelayMatch (control/relayclients of qmail-smtpd
// -listen) against the rule it documents:
//   - a dotted prefix "a.b." matches exactly the IPv4 clients in a.b.0.0/16
//     (and their IPv4-mapped IPv6 form);
//   - a line relayRuleValid refuses (the listener warns it is ignored)
//     matches nothing;
//   - an IPv4 client and its IPv4-mapped form match the same rules;
//   - a list matches when one of its lines does.
func FuzzRelayMatch(f *testing.F) {
	for _, s := range []struct {
		rules string
		ip    []byte
	}{
		{"192.168.\n", []byte{192, 168, 1, 2}},
		{"192.168.\n", []byte{192, 169, 1, 2}},
		{"192.16.\n", []byte{192, 168, 1, 2}},
		{"10.\n", []byte{10, 0, 0, 1}},
		{"1.2.3.\n", []byte{1, 2, 3, 4}},
		{"1.2.3.4.\n", []byte{1, 2, 3, 4}},
		{"01.\n", []byte{1, 2, 3, 4}},
		{"256.\n", []byte{1, 2, 3, 4}},
		{" 127. \n", []byte{127, 0, 0, 1}},
		{"10.0.0.0/8\n::1\n", []byte{10, 9, 8, 7}},
		{"::ffff:127.0.0.0/104\n", []byte{127, 0, 0, 1}},
		{"192.168.\n", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1}},
		{"2001:db8::/32\n", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"127.0.0.1\n", []byte{127, 0, 0, 1}},
		{"junk\n.\n1..\n", []byte{1, 1, 1, 1}},
	} {
		f.Add(s.rules, s.ip)
	}
	f.Fuzz(func(t *testing.T, text string, ipb []byte) {
		ip := fuzzAddr(ipb)
		rules := control.ListLines([]byte(text))
		some := false
		for _, r := range rules {
			one := RelayMatch([]string{r}, ip)
			some = some || one
			if one && !relayRuleValid(r) {
				t.Fatalf("rule %q, refused by relayRuleValid (ignored, says the warning), matches %v", r, ip)
			}
			v4 := ip.Unmap()
			if !v4.Is4() {
				continue
			}
			if m := RelayMatch([]string{r}, netip.AddrFrom16(v4.As16())); m != RelayMatch([]string{r}, v4) {
				t.Fatalf("rule %q: %v matches %v, its IPv4-mapped form %v", r, v4, RelayMatch([]string{r}, v4), m)
			}
			if pfx, ok := refDotted(r); ok {
				if want := pfx.Contains(v4); one != want {
					t.Fatalf("dotted rule %q (%v): RelayMatch(%v) = %v, want %v", r, pfx, ip, one, want)
				}
			} else if strings.HasSuffix(strings.TrimSpace(r), ".") && one {
				t.Fatalf("rule %q is no dotted prefix but matches %v", r, ip)
			}
		}
		if got := RelayMatch(rules, ip); got != some {
			t.Fatalf("rules %q: RelayMatch(%v) = %v, one of them alone: %v", rules, ip, got, some)
		}
	})
}
