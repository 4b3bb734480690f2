package smtpd

import (
	"net"
	"net/netip"
	"strings"
)

// interfaceAddrs lists this host's addresses; a variable so tests can
// pretend an address is local.
var interfaceAddrs = net.InterfaceAddrs

// isLocalIP reports whether ip is an address of one of this host's
// interfaces, or 0.0.0.0 (qmail's ipme). The list is read at each call, which only an
// address literal makes: a long-running qmail-smtpd -listen on a dial-up
// host sees the address the link has now, not the one it had at start.
func isLocalIP(ip netip.Addr) (bool, error) {
	ip = ip.Unmap()
	if ip == netip.IPv4Unspecified() {
		// 0.0.0.0 is this host, as in qmail's list of its own
		// addresses (ipme) and qmail-remote's.
		return true, nil
	}
	addrs, err := interfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		var s string
		switch v := a.(type) {
		case *net.IPNet:
			s = v.IP.String()
		case *net.IPAddr:
			s = v.IP.String()
		default:
			s = a.String()
		}
		if x, err := netip.ParseAddr(s); err == nil && x.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}

// addrResult classifies a MAIL/RCPT address check.
type addrResult int

const (
	addrOK     addrResult = iota
	addrSyntax            // 555 syntax error
	addrNoIPs             // 421 unable to figure out my IP addresses
)

// fixAddr applies qmail's post-parse rules to an address go-smtp has
// already parsed (brackets, source route, quotes and backslashes are gone):
// a domain "[d.d.d.d]" naming one of this host's IPv4 addresses becomes
// localiphost when replace is set (an empty one too, as qmail: the address
// is then "user@"), and then an address of MaxAddr bytes or more is a syntax
// error: the limit is held against the address as it will be queued, after
// the replacement, in the order qmail's parser applies the two.
// An address containing NUL, CR or LF is refused as well: qmail would cut
// it at the NUL; refusing keeps the envelope record whole.
func fixAddr(addr, localIPHost string, replace bool) (string, addrResult) {
	if strings.ContainsAny(addr, "\x00\r\n") {
		return "", addrSyntax
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && replace {
		dom := addr[i+1:]
		if len(dom) > 2 && dom[0] == '[' && dom[len(dom)-1] == ']' {
			if ip, ok := scanIPv4(dom[1 : len(dom)-1]); ok {
				local, err := isLocalIP(ip)
				if err != nil {
					return "", addrNoIPs
				}
				if local {
					addr = addr[:i+1] + localIPHost
				}
			}
		}
	}
	if len(addr) >= MaxAddr {
		return "", addrSyntax
	}
	return addr, addrOK
}

// scanIPv4 reads d.d.d.d as qmail's ip_scan does: four runs of decimal
// digits joined by dots, each kept modulo 256, so that leading zeros
// ("127.000.000.001") are fine, where netip refuses them.
func scanIPv4(s string) (netip.Addr, bool) {
	var b [4]byte
	for i := range b {
		if i > 0 {
			if s == "" || s[0] != '.' {
				return netip.Addr{}, false
			}
			s = s[1:]
		}
		n := 0
		var u uint64
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			u = u*10 + uint64(s[n]-'0')
			n++
		}
		if n == 0 {
			return netip.Addr{}, false
		}
		b[i] = byte(u)
		s = s[n:]
	}
	return netip.AddrFrom4(b), s == ""
}
