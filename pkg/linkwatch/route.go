// Package linkwatch follows the kernel's routing and links through netlink
// and holds or releases remote mail delivery as the link goes down and up,
// for hosts where no dispatcher hook exists (qmail-linkwatch(8)).
//
// The link counts as up when the route the kernel would pick for a
// connection to the internet goes through an interface that is up and has
// carrier (IPv4 or IPv6: either family will do). The kernel is asked, not
// second-guessed: an RTM_GETROUTE lookup of documentation addresses
// (192.0.2.1, 2001:db8::1 and others; a lookup sends no packet) answers with
// the route it would use, after metrics, policy rules, nexthop objects and
// net.ipv{4,6}.conf.*.ignore_routes_with_linkdown. With that sysctl at 0
// (the default) the kernel keeps sending through a lower-metric route whose
// interface has lost its carrier, even when another default route works,
// so such a state is down. With an interface configured, the kernel's route
// must go through that interface.
//
// Release waits until the link has been up for a minimum time, and any
// netlink message that could mean down (a carrier loss on an interface the
// route uses, or a report of it with a higher carrier-down count, a change
// to a route covering the looked-up address, lost messages) starts that
// time again, even when the next look finds the link up; optionally, a TCP connection to a probe address (the smarthost) must
// succeed and the link must not be metered. Hold happens at once.
package linkwatch

import (
	"fmt"
	"net"
)

// Link is an interface's state.
type Link struct {
	Index   int
	Name    string
	Up      bool // IFF_UP
	Running bool // IFF_RUNNING: carrier (operationally up)
	// CarrierDowns counts the interface's carrier losses
	// (IFLA_CARRIER_DOWN_COUNT; IFLA_CARRIER_CHANGES, losses and returns,
	// on kernels before 4.16; 0 where neither is reported). It rises also
	// for a loss too short for the kernel to report on its own.
	CarrierDowns uint32
}

// Hop is one next hop of a route: the interface it leaves by.
type Hop struct {
	OIF  int  // output interface index
	Dead bool // RTNH_F_DEAD: the kernel skips it
}

// Path is the kernel's answer for one address family: the route a
// connection to the looked-up address would take.
type Path struct {
	Family  int
	Prefix  string // the route's destination, "" for a default route
	Hops    []Hop  // several for an ECMP route; none when there is no route
	NoRoute string // why there are no hops (the kernel's error), for the log
}

// Snapshot is the part of the kernel state that decides up or down.
type Snapshot struct {
	Links map[int]Link
	Paths []Path // one per address family the kernel answered for
}

// usable reports whether a hop's interface can carry traffic.
func (s *Snapshot) usable(h Hop) (Link, bool) {
	l, ok := s.Links[h.OIF]
	return l, ok && !h.Dead && l.Up && l.Running
}

func (p Path) via(name string) string {
	if p.Prefix == "" {
		return "default route via " + name
	}
	return fmt.Sprintf("route %s via %s", p.Prefix, name)
}

// LinkUp reports whether the snapshot counts as online: the kernel's route
// (of either family) has a next hop through an up interface with carrier
// (iface, when not empty). An ECMP route counts when one of its next hops
// does: the connections hashed to that hop get through.
func (s *Snapshot) LinkUp(iface string) (bool, string) {
	for _, p := range s.Paths {
		for _, h := range p.Hops {
			l, ok := s.usable(h)
			if ok && (iface == "" || l.Name == iface) {
				return true, p.via(l.Name)
			}
		}
	}
	if iface != "" {
		var other string
		for _, p := range s.Paths {
			for _, h := range p.Hops {
				if l, ok := s.Links[h.OIF]; ok && l.Name != iface && other == "" {
					other = p.via(l.Name)
				}
			}
		}
		for _, l := range s.Links {
			if l.Name != iface {
				continue
			}
			if other != "" {
				return false, fmt.Sprintf("%s: up=%v carrier=%v, but the kernel uses the %s", iface, l.Up, l.Running, other)
			}
			return false, fmt.Sprintf("%s: up=%v carrier=%v, no default route through it", iface, l.Up, l.Running)
		}
		return false, fmt.Sprintf("%s: no such interface", iface)
	}
	// Say what is wrong: the route the kernel uses goes through an
	// interface that is down or has lost its carrier (the kernel keeps
	// such a route, marked linkdown, and uses it unless told to ignore
	// linkdown routes): that is not "no route".
	for _, p := range s.Paths {
		for _, h := range p.Hops {
			if l, ok := s.Links[h.OIF]; ok {
				if !l.Up {
					return false, p.via(l.Name) + ", which is down"
				}
				return false, p.via(l.Name) + ", which has no carrier"
			}
		}
	}
	return false, "no default route"
}

// watchedLinks are the interfaces whose carrier decides: those of the
// kernel's routes, and the configured one.
func (s *Snapshot) watchedLinks(iface string) map[int]bool {
	w := map[int]bool{}
	for _, p := range s.Paths {
		for _, h := range p.Hops {
			w[h.OIF] = true
		}
	}
	if iface != "" {
		for _, l := range s.Links {
			if l.Name == iface {
				w[l.Index] = true
			}
		}
	}
	return w
}

// linkName is the interface the link is judged by: the configured one, or
// the first usable next hop's.
func linkName(s *Snapshot, iface string) string {
	if iface != "" {
		return iface
	}
	for _, p := range s.Paths {
		for _, h := range p.Hops {
			if l, ok := s.usable(h); ok {
				return l.Name
			}
		}
	}
	return ""
}

// Probe tries a TCP connection to addr within the timeout.
func probe(addr string, dial func(network, addr string) (net.Conn, error)) error {
	c, err := dial("tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
