package linkwatch

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why the kernel is asked for a route instead of judging the dumped
// default routes here: which route carries a connection depends on metrics
// and their order, on ignore_routes_with_linkdown (global and per
// interface, per family), on policy rules, on nexthop objects, on routes
// such as 0.0.0.0/1 + 128.0.0.0/1 that a VPN installs, and for IPv6 on
// the reachability of the routers. Imitating all that would drift from the
// kernel; a route lookup with RTM_F_FIB_MATCH returns the very route the
// kernel selected, with all its next hops.

// testDst are the addresses looked up: documentation addresses (RFC 5737,
// RFC 3849, RFC 9637), routed like any host on the internet and never the
// target of a real connection; a lookup sends no packet. A laboratory or a
// sandbox may number its LAN in a documentation network: the subnet route of
// a local address does not count, the first address whose route is a
// default route decides, else the least specific route found (see lookup).
var testDst = map[int][]netip.Addr{
	syscall.AF_INET: {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("203.0.113.1")},
	syscall.AF_INET6: {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("3fff::1")},
}

// Not in x/sys/unix (linux/rtnetlink.h, linux/nexthop.h).
const (
	rtaNHID     = 30     // RTA_NH_ID: the route's next hop is a nexthop object
	sizeofNhMsg = 8      // struct nhmsg
	nlaTypeMask = 0x3fff // NLA_TYPE_MASK: without the nested and byte-order flags
)

// Read takes a snapshot from the kernel.
func Read() (*Snapshot, error) {
	s := &Snapshot{Links: map[int]Link{}}
	b, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netlink links: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil, fmt.Errorf("netlink links: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		ifi := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		l := Link{Index: int(ifi.Index), Up: ifi.Flags&syscall.IFF_UP != 0, Running: ifi.Flags&syscall.IFF_RUNNING != 0}
		l.CarrierDowns, _ = carrierDowns(m.Data[syscall.SizeofIfInfomsg:])
		for _, a := range parseAttrs(m.Data[syscall.SizeofIfInfomsg:]) {
			if a.typ == syscall.IFLA_IFNAME {
				n := a.val
				for len(n) > 0 && n[len(n)-1] == 0 {
					n = n[:len(n)-1]
				}
				l.Name = string(n)
			}
		}
		s.Links[l.Index] = l
	}
	c, err := openRtnl()
	if err != nil {
		return nil, err
	}
	defer c.close()
	for _, fam := range []int{syscall.AF_INET, syscall.AF_INET6} {
		p, err := c.lookup(fam)
		if err != nil {
			return nil, err
		}
		s.Paths = append(s.Paths, p)
	}
	return s, nil
}

// rtnl is a NETLINK_ROUTE socket for requests with one answer each.
type rtnl struct {
	fd  int
	seq uint32
	buf []byte
}

// refused is the kernel's error answer to a request (no route to the
// address, no such nexthop), as opposed to trouble with the socket.
type refused struct{ errno syscall.Errno }

func (r refused) Error() string { return r.errno.Error() }

func openRtnl() (*rtnl, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// The kernel answers at once; the limit only keeps a lost answer from
	// stopping the watcher.
	tv := syscall.Timeval{Sec: 5}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (c *rtnl) close() { syscall.Close(c.fd) }

// request sends one request and returns the payload of its answer.
func (c *rtnl) request(typ uint16, body []byte) ([]byte, error) {
	c.seq++
	msg := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(syscall.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], syscall.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:12], c.seq)
	msg = append(msg, body...)
	if err := syscall.Sendto(c.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink request: %w", err)
	}
	for {
		n, _, err := syscall.Recvfrom(c.fd, c.buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netlink answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq {
				continue
			}
			if m.Header.Type == syscall.NLMSG_ERROR {
				if len(m.Data) < 4 {
					return nil, fmt.Errorf("netlink answer: short error message")
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data[0:4])); e != 0 {
					return nil, refused{syscall.Errno(-e)}
				}
				continue // an acknowledgement
			}
			// A copy: the next request reuses the buffer while a
			// group's members are resolved.
			return append([]byte(nil), m.Data...), nil
		}
	}
}

// lookup asks the kernel which route a connection to the internet would
// take: the route to the family's test addresses, the first that is a
// default route, or else the one with the shortest prefix (of a VPN's
// 0.0.0.0/1 and 128.0.0.0/1, say). No route is an answer (a Path without
// hops), not an error.
func (c *rtnl) lookup(fam int) (Path, error) {
	var best Path
	bestBits := -1
	for _, dst := range testDst[fam] {
		p, err := c.lookupAddr(fam, dst)
		if err != nil {
			return Path{}, err
		}
		if len(p.Hops) == 0 {
			if bestBits < 0 && best.NoRoute == "" {
				best = p // the reason, unless a route turns up
			}
			continue
		}
		bits := 0
		if p.Prefix != "" {
			if pfx, err := netip.ParsePrefix(p.Prefix); err == nil {
				bits = pfx.Bits()
			}
		}
		if bestBits < 0 || bits < bestBits {
			best, bestBits = p, bits
		}
		if bits == 0 {
			break
		}
	}
	return best, nil
}

// lookupAddr asks for the route to one address.
func (c *rtnl) lookupAddr(fam int, addr netip.Addr) (Path, error) {
	dst := addr.AsSlice()
	body := make([]byte, syscall.SizeofRtMsg)
	body[0] = byte(fam)
	body[1] = byte(8 * len(dst)) // rtm_dst_len
	binary.NativeEndian.PutUint32(body[8:12], unix.RTM_F_FIB_MATCH)
	body = appendAttr(body, syscall.RTA_DST, dst)
	data, err := c.request(syscall.RTM_GETROUTE, body)
	if r, ok := err.(refused); ok {
		// ENETUNREACH, or EHOSTUNREACH/EACCES/EINVAL for an
		// unreachable, prohibit or blackhole route; EAFNOSUPPORT
		// without IPv6.
		return Path{Family: fam, NoRoute: r.Error()}, nil
	}
	if err != nil {
		return Path{}, err
	}
	return parseRoute(fam, data, func(id uint32) ([]Hop, error) { return c.nexthop(id, true) })
}

// parseRoute reads the kernel's answer to a route lookup (struct rtmsg and
// attributes). A route whose next hop is a nexthop object carries only its
// id when net.ipv4.nexthop_compat_mode is 0; resolve finds its hops.
func parseRoute(fam int, data []byte, resolve func(id uint32) ([]Hop, error)) (Path, error) {
	if len(data) < syscall.SizeofRtMsg {
		return Path{}, fmt.Errorf("netlink route answer: %d bytes", len(data))
	}
	p := Path{Family: fam}
	dstLen := int(data[1])
	if typ := data[7]; typ != syscall.RTN_UNICAST {
		p.NoRoute = fmt.Sprintf("route of type %d", typ)
		return p, nil
	}
	if dstLen > 0 && data[5] == syscall.RTPROT_KERNEL {
		// The subnet of an address of this host's: the host is numbered
		// in a documentation network, and this says nothing of the
		// internet.
		p.NoRoute = "the subnet of a local address"
		return p, nil
	}
	dead := binary.NativeEndian.Uint32(data[8:12])&unix.RTNH_F_DEAD != 0
	var nhid uint32
	for _, a := range parseAttrs(data[syscall.SizeofRtMsg:]) {
		switch a.typ {
		case syscall.RTA_OIF:
			if len(a.val) >= 4 {
				p.Hops = append(p.Hops, Hop{OIF: int(binary.NativeEndian.Uint32(a.val)), Dead: dead})
			}
		case syscall.RTA_MULTIPATH:
			p.Hops = append(p.Hops, multipathHops(a.val)...)
		case rtaNHID:
			if len(a.val) >= 4 {
				nhid = binary.NativeEndian.Uint32(a.val)
			}
		case syscall.RTA_DST:
			if ip, ok := netip.AddrFromSlice(a.val); ok && dstLen > 0 {
				p.Prefix = netip.PrefixFrom(ip.Unmap(), dstLen).String()
			}
		}
	}
	if len(p.Hops) == 0 && nhid != 0 && resolve != nil {
		hops, err := resolve(nhid)
		if err != nil {
			return Path{}, err
		}
		p.Hops = hops
	}
	if len(p.Hops) == 0 {
		p.NoRoute = "route without an interface"
	}
	return p, nil
}

// multipathHops reads the next hops of an RTA_MULTIPATH attribute: a
// sequence of struct rtnexthop (length u16, flags u8, hops u8, ifindex
// s32, then the hop's own attributes), each padded to 4 bytes.
func multipathHops(b []byte) []Hop {
	var out []Hop
	for len(b) >= 8 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < 8 || n > len(b) {
			break
		}
		if ifindex := int32(binary.NativeEndian.Uint32(b[4:8])); ifindex > 0 {
			out = append(out, Hop{OIF: int(ifindex), Dead: b[2]&unix.RTNH_F_DEAD != 0})
		}
		n = (n + 3) &^ 3
		if n >= len(b) {
			break
		}
		b = b[n:]
	}
	return out
}

// nexthop resolves a nexthop object (RTM_GETNEXTHOP) into its hops; a
// group's members are resolved in turn (groups do not nest). A nexthop
// that has gone away in the meantime has no hops.
func (c *rtnl) nexthop(id uint32, group bool) ([]Hop, error) {
	body := appendAttr(make([]byte, sizeofNhMsg), unix.NHA_ID, binary.NativeEndian.AppendUint32(nil, id))
	data, err := c.request(unix.RTM_GETNEXTHOP, body)
	if _, ok := err.(refused); ok {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var member func(uint32) ([]Hop, error)
	if group {
		member = func(id uint32) ([]Hop, error) { return c.nexthop(id, false) }
	}
	return parseNexthop(data, member)
}

// parseNexthop reads an RTM_NEWNEXTHOP answer (struct nhmsg: family,
// scope, protocol, reserved, flags u32; then attributes): one interface
// (NHA_OIF), or a group (NHA_GROUP: struct nexthop_grp, id u32 and 4 bytes
// of weight, per member) whose members member resolves.
func parseNexthop(data []byte, member func(uint32) ([]Hop, error)) ([]Hop, error) {
	if len(data) < sizeofNhMsg {
		return nil, fmt.Errorf("netlink nexthop answer: %d bytes", len(data))
	}
	dead := binary.NativeEndian.Uint32(data[4:8])&unix.RTNH_F_DEAD != 0
	var hops []Hop
	for _, a := range parseAttrs(data[sizeofNhMsg:]) {
		switch a.typ {
		case unix.NHA_OIF:
			if len(a.val) >= 4 {
				hops = append(hops, Hop{OIF: int(binary.NativeEndian.Uint32(a.val)), Dead: dead})
			}
		case unix.NHA_GROUP:
			if member == nil {
				continue
			}
			for g := a.val; len(g) >= unix.SizeofNexthopGrp; g = g[unix.SizeofNexthopGrp:] {
				h, err := member(binary.NativeEndian.Uint32(g[0:4]))
				if err != nil {
					return nil, err
				}
				hops = append(hops, h...)
			}
		}
	}
	return hops, nil
}

// attr is one netlink attribute (struct rtattr / nlattr).
type attr struct {
	typ uint16
	val []byte
}

// parseAttrs splits a sequence of attributes; it stops at a malformed one.
func parseAttrs(b []byte) []attr {
	var out []attr
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < 4 || n > len(b) {
			break
		}
		// The top bits flag nested and byte-order attributes.
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask, val: b[4:n]})
		n = (n + 3) &^ 3
		if n >= len(b) {
			break
		}
		b = b[n:]
	}
	return out
}

func appendAttr(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Subscribe opens a netlink socket that becomes readable whenever links,
// addresses or routes change.
func Subscribe() (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE |
		unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: groups}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("netlink bind: %w", err)
	}
	return fd, nil
}

// linkFilter is what the event reader knows of the interfaces that
// decide: which they are (the look's watchedLinks, refreshed at every
// look) and the carrier-down count last seen for each. The kernel reports
// carrier changes at most about once a second per interface and folds a
// shorter loss into a report that shows carrier again, with a higher
// count: the count, not the flags, tells of such a loss.
type linkFilter struct {
	mu      sync.Mutex
	watched map[int]bool
	downs   map[int]uint32
}

// update takes in a look's snapshot: the interfaces that decide now, and
// the carrier-down counts of those the reader has no count for (the first
// look; an interface the route has just moved to). It reports whether the
// snapshot shows a count above the one remembered: a loss whose report has
// not been read yet, or was lost.
func (f *linkFilter) update(s *Snapshot, iface string) bool {
	w := s.watchedLinks(iface)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched = w
	if f.downs == nil {
		f.downs = map[int]uint32{}
	}
	for i := range f.downs {
		if !w[i] {
			// Counted again from a snapshot should it decide again:
			// its messages are not followed meanwhile.
			delete(f.downs, i)
		}
	}
	rose := false
	for i := range w {
		l, ok := s.Links[i]
		if !ok {
			continue
		}
		old, seen := f.downs[i]
		if seen && l.CarrierDowns > old {
			rose = true
		}
		if !seen || l.CarrierDowns > old {
			f.downs[i] = l.CarrierDowns
		}
	}
	return rose
}

// mayMeanDown reports whether a datagram read from the subscription holds
// a message that could mean the link was down, however briefly: a watched
// interface (one the kernel's route uses) reported without IFF_UP or
// IFF_RUNNING, or with a carrier-down count above the last one seen, or
// removed; or a route added, replaced or deleted whose prefix covers a
// looked-up address (the kernel's choice may have moved). A look 50 ms
// later may well find the link up again; the up-delay must still start
// over. It reads the bytes in place: a flood of route changes costs a few
// comparisons per message, and only a watched interface's link message has
// its attributes walked (as far as the carrier counts, near the start).
// Every message of the datagram is read, so that the counts stay current.
func (f *linkFilter) mayMeanDown(b []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	down := false
	for len(b) >= syscall.NLMSG_HDRLEN {
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if n < syscall.NLMSG_HDRLEN || n > len(b) {
			break
		}
		data := b[syscall.NLMSG_HDRLEN:n]
		switch typ := binary.NativeEndian.Uint16(b[4:6]); typ {
		case syscall.RTM_NEWLINK, syscall.RTM_DELLINK:
			if len(data) < syscall.SizeofIfInfomsg {
				break
			}
			index := int(int32(binary.NativeEndian.Uint32(data[4:8])))
			if typ == syscall.RTM_DELLINK {
				// A new interface may get the index again, its
				// count starting from 0.
				delete(f.downs, index)
			}
			if !f.watched[index] {
				break
			}
			flags := binary.NativeEndian.Uint32(data[8:12])
			const ok = syscall.IFF_UP | syscall.IFF_RUNNING
			if typ == syscall.RTM_DELLINK || flags&ok != ok {
				down = true
			}
			if typ != syscall.RTM_NEWLINK {
				break
			}
			if c, found := carrierDowns(data[syscall.SizeofIfInfomsg:]); found {
				old, seen := f.downs[index]
				if seen && c > old {
					down = true
				}
				if f.downs != nil {
					f.downs[index] = c
				}
			}
		case syscall.RTM_NEWROUTE, syscall.RTM_DELROUTE:
			if !down && routeCoversTestDst(data) {
				down = true
			}
		}
		n = (n + 3) &^ 3
		if n >= len(b) {
			break
		}
		b = b[n:]
	}
	return down
}

// carrierDowns finds the carrier-down count among a link message's
// attributes (after struct ifinfomsg): IFLA_CARRIER_DOWN_COUNT, or where a
// kernel before 4.16 has none, IFLA_CARRIER_CHANGES. Both come early in
// the message, before the statistics; the walk stops at the down count.
func carrierDowns(b []byte) (uint32, bool) {
	var changes uint32
	haveChanges := false
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < 4 || n > len(b) {
			break
		}
		switch binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask {
		case unix.IFLA_CARRIER_DOWN_COUNT:
			if n >= 8 {
				return binary.NativeEndian.Uint32(b[4:8]), true
			}
		case unix.IFLA_CARRIER_CHANGES:
			if n >= 8 {
				changes, haveChanges = binary.NativeEndian.Uint32(b[4:8]), true
			}
		}
		n = (n + 3) &^ 3
		if n >= len(b) {
			break
		}
		b = b[n:]
	}
	return changes, haveChanges
}

// routeCoversTestDst reports whether a route message's prefix contains a
// looked-up address of its family.
func routeCoversTestDst(data []byte) bool {
	if len(data) < syscall.SizeofRtMsg {
		return false
	}
	dsts, ok := testDst[int(data[0])]
	if !ok {
		return false
	}
	bits := int(data[1])
	if bits == 0 {
		return true
	}
	for _, a := range parseAttrs(data[syscall.SizeofRtMsg:]) {
		if a.typ != syscall.RTA_DST {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.val)
		if !ok || ip.BitLen() != dsts[0].BitLen() {
			return false
		}
		pfx, err := ip.Prefix(bits)
		if err != nil {
			return false
		}
		for _, d := range dsts {
			if pfx.Contains(d) {
				return true
			}
		}
		return false
	}
	return false
}
