package control

import (
	"net"
	"strings"
)

// OutgoingAddr is the address of a line of control/outgoingip: an IP
// address, also written in brackets as control/smtproutes writes a relay
// ("[2001:db8::5]", "[IPv6:2001:db8::5]"); nil for anything else.
// qmail-remote reads the file with it, and qmail-showctl checks it.
func OutgoingAddr(l string) net.IP {
	l = strings.TrimSpace(l)
	if len(l) > 2 && l[0] == '[' && l[len(l)-1] == ']' {
		l = l[1 : len(l)-1]
		if len(l) > 5 && strings.EqualFold(l[:5], "ipv6:") {
			l = l[5:]
		}
	}
	return net.ParseIP(l)
}
