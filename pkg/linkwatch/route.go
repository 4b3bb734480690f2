// Package linkwatch follows the kernel's routing table and links through
// netlink and holds or releases remote mail delivery as the link goes down
// and up, for hosts where no dispatcher hook exists (qmail-linkwatch(8)).
//
// The link counts as up when there is a default route (IPv4 or IPv6, main
// table) through an interface that is up and has carrier — or, with an
// interface configured, when that interface is up, has carrier and carries
// a default route. Release waits until the link has been up for a minimum
// time (a flapping link releases nothing) and, optionally, until a TCP
// connection to a probe address (the smarthost) succeeds and the link is not
// metered; hold happens at once.
package linkwatch

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Link is an interface's state.
type Link struct {
	Index   int
	Name    string
	Up      bool // IFF_UP
	Running bool // IFF_RUNNING: carrier (operationally up)
}

// Route is a default route of the main table.
type Route struct {
	Family int
	OIF    int // output interface index
}

// Snapshot is the part of the kernel state that decides up or down.
type Snapshot struct {
	Links  map[int]Link
	Routes []Route
}

// LinkUp reports whether the snapshot counts as online: a default route
// through an up, running interface (iface, when not empty).
func (s *Snapshot) LinkUp(iface string) (bool, string) {
	for _, r := range s.Routes {
		l, ok := s.Links[r.OIF]
		if !ok {
			continue
		}
		if iface != "" && l.Name != iface {
			continue
		}
		if l.Up && l.Running {
			return true, fmt.Sprintf("default route via %s", l.Name)
		}
	}
	if iface != "" {
		for _, l := range s.Links {
			if l.Name == iface {
				return false, fmt.Sprintf("%s: up=%v carrier=%v, no default route through it", iface, l.Up, l.Running)
			}
		}
		return false, fmt.Sprintf("%s: no such interface", iface)
	}
	// Say what is missing: a default route whose interface is down or
	// has lost its carrier (the kernel keeps the route, marked linkdown)
	// is not "no route".
	for _, r := range s.Routes {
		if l, ok := s.Links[r.OIF]; ok {
			if !l.Up {
				return false, fmt.Sprintf("default route via %s, which is down", l.Name)
			}
			return false, fmt.Sprintf("default route via %s, which has no carrier", l.Name)
		}
	}
	return false, "no default route"
}

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
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err == nil {
			for _, a := range attrs {
				if a.Attr.Type == syscall.IFLA_IFNAME {
					n := a.Value
					for len(n) > 0 && n[len(n)-1] == 0 {
						n = n[:len(n)-1]
					}
					l.Name = string(n)
				}
			}
		}
		s.Links[l.Index] = l
	}
	for _, fam := range []int{syscall.AF_INET, syscall.AF_INET6} {
		b, err := syscall.NetlinkRIB(syscall.RTM_GETROUTE, fam)
		if err != nil {
			if fam == syscall.AF_INET6 {
				continue // no IPv6 in this kernel or namespace
			}
			return nil, fmt.Errorf("netlink routes: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(b)
		if err != nil {
			return nil, fmt.Errorf("netlink routes: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != syscall.RTM_NEWROUTE || len(m.Data) < syscall.SizeofRtMsg {
				continue
			}
			rt := (*syscall.RtMsg)(unsafe.Pointer(&m.Data[0]))
			if rt.Dst_len != 0 || rt.Table != syscall.RT_TABLE_MAIN || rt.Type != syscall.RTN_UNICAST {
				continue
			}
			attrs, err := syscall.ParseNetlinkRouteAttr(&m)
			if err != nil {
				continue
			}
			for _, a := range attrs {
				switch {
				case a.Attr.Type == syscall.RTA_OIF && len(a.Value) >= 4:
					oif := *(*uint32)(unsafe.Pointer(&a.Value[0]))
					s.Routes = append(s.Routes, Route{Family: fam, OIF: int(oif)})
				case a.Attr.Type == syscall.RTA_MULTIPATH:
					// ECMP: one route per next hop.
					for _, oif := range multipathOIFs(a.Value) {
						s.Routes = append(s.Routes, Route{Family: fam, OIF: oif})
					}
				}
			}
		}
	}
	return s, nil
}

// multipathOIFs reads the interfaces of an RTA_MULTIPATH attribute: a
// sequence of struct rtnexthop (length u16, flags u8, hops u8, ifindex
// s32, then the hop's own attributes), each padded to 4 bytes.
func multipathOIFs(b []byte) []int {
	var out []int
	for len(b) >= 8 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < 8 || n > len(b) {
			break
		}
		if ifindex := int32(binary.NativeEndian.Uint32(b[4:8])); ifindex > 0 {
			out = append(out, int(ifindex))
		}
		n = (n + 3) &^ 3
		if n >= len(b) {
			break
		}
		b = b[n:]
	}
	return out
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

// Probe tries a TCP connection to addr within the timeout.
func probe(addr string, dial func(network, addr string) (net.Conn, error)) error {
	c, err := dial("tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
