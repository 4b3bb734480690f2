package control

import (
	"net/netip"
	"strings"
)

// OutgoingAddr is the address of a line of control/outgoingip: an IP
// address, also written in brackets as control/smtproutes writes a relay
// ("[2001:db8::5]", "[IPv6:2001:db8::5]"); an IPv4-mapped IPv6 address is
// the IPv4 one. The zero Addr (not IsValid) for anything else, a zone
// included. qmail-remote reads the file with it, and qmail-showctl checks
// it. (net/netip, not net: the root programs that read control files
// carry no network code.)
func OutgoingAddr(l string) netip.Addr {
	l = strings.TrimSpace(l)
	if len(l) > 2 && l[0] == '[' && l[len(l)-1] == ']' {
		l = l[1 : len(l)-1]
		if len(l) > 5 && strings.EqualFold(l[:5], "ipv6:") {
			l = l[5:]
		}
	}
	a, err := netip.ParseAddr(l)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}
