package linkwatch

import (
	"encoding/binary"
	"errors"
	"reflect"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// rtHop is a struct rtnexthop for ifindex with flags and extra bytes of
// attributes.
func rtHop(ifindex uint32, flags byte, extra int) []byte {
	b := make([]byte, 8+extra)
	binary.NativeEndian.PutUint16(b[0:2], uint16(8+extra))
	b[2] = flags
	binary.NativeEndian.PutUint32(b[4:8], ifindex)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// TestMultipathHops: an ECMP route's next hops are its interfaces (a
// multi-homed host counted as offline before), dead ones marked.
func TestMultipathHops(t *testing.T) {
	b := append(rtHop(3, 0, 8), rtHop(5, unix.RTNH_F_DEAD|unix.RTNH_F_LINKDOWN, 0)...) // the first with a gateway attribute
	want := []Hop{{OIF: 3}, {OIF: 5, Dead: true}}
	if got := multipathHops(b); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := multipathHops(b[:5]); len(got) != 0 {
		t.Errorf("truncated: %v", got)
	}
}

// rtAnswer is the kernel's answer to a route lookup: struct rtmsg with the
// family, prefix length and type, then attributes.
func rtAnswer(fam, bits int, typ byte, attrs ...[]byte) []byte {
	b := make([]byte, syscall.SizeofRtMsg)
	b[0], b[1], b[4], b[7] = byte(fam), byte(bits), syscall.RT_TABLE_MAIN, typ
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func rta(typ uint16, val []byte) []byte { return appendAttr(nil, typ, val) }

// TestParseRoute reads the answers to RTM_GETROUTE: one interface, ECMP,
// a nexthop object (only its id, with nexthop_compat_mode 0: before, such
// a route counted as "no default route"), a VPN's half route, and routes
// that carry nothing.
func TestParseRoute(t *testing.T) {
	resolve := func(id uint32) ([]Hop, error) {
		switch id {
		case 1:
			return []Hop{{OIF: 4}}, nil
		case 2:
			return nil, errors.New("netlink answer: timeout")
		}
		return nil, nil
	}
	subnet := rtAnswer(syscall.AF_INET, 24, syscall.RTN_UNICAST, rta(syscall.RTA_DST, []byte{192, 0, 2, 0}), rta(syscall.RTA_OIF, u32(6)))
	subnet[5] = syscall.RTPROT_KERNEL
	for _, tc := range []struct {
		name string
		data []byte
		want Path
		err  bool
	}{
		{"one interface", rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(syscall.RTA_OIF, u32(3))),
			Path{Family: syscall.AF_INET, Hops: []Hop{{OIF: 3}}}, false},
		{"ECMP", rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(syscall.RTA_MULTIPATH, append(rtHop(3, 0, 0), rtHop(5, 0, 0)...))),
			Path{Family: syscall.AF_INET, Hops: []Hop{{OIF: 3}, {OIF: 5}}}, false},
		{"nexthop object", rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(rtaNHID, u32(1))),
			Path{Family: syscall.AF_INET, Hops: []Hop{{OIF: 4}}}, false},
		{"nexthop object, compat mode", rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(rtaNHID, u32(1)), rta(syscall.RTA_OIF, u32(3))),
			Path{Family: syscall.AF_INET, Hops: []Hop{{OIF: 3}}}, false},
		{"nexthop gone", rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(rtaNHID, u32(9))),
			Path{Family: syscall.AF_INET, NoRoute: "route without an interface"}, false},
		{"nexthop lookup fails", rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(rtaNHID, u32(2))), Path{}, true},
		{"half route", rtAnswer(syscall.AF_INET, 1, syscall.RTN_UNICAST, rta(syscall.RTA_DST, []byte{0, 0, 0, 0}), rta(syscall.RTA_OIF, u32(6))),
			Path{Family: syscall.AF_INET, Prefix: "0.0.0.0/1", Hops: []Hop{{OIF: 6}}}, false},
		{"IPv6 /3", rtAnswer(syscall.AF_INET6, 3, syscall.RTN_UNICAST, rta(syscall.RTA_DST, []byte{0x20, 15: 0}), rta(syscall.RTA_OIF, u32(6))),
			Path{Family: syscall.AF_INET6, Prefix: "2000::/3", Hops: []Hop{{OIF: 6}}}, false},
		// A LAN numbered in 192.0.2.0/24: its route says nothing of
		// the internet.
		{"subnet of a local address", subnet,
			Path{Family: syscall.AF_INET, NoRoute: "the subnet of a local address"}, false},
		{"blackhole", rtAnswer(syscall.AF_INET, 0, syscall.RTN_BLACKHOLE),
			Path{Family: syscall.AF_INET, NoRoute: "route of type 6"}, false},
		{"short", make([]byte, 5), Path{}, true},
	} {
		got, err := parseRoute(int(tc.data[0]), tc.data, resolve)
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestParseNexthop: a nexthop object is an interface, or a group whose
// members are looked up in turn.
func TestParseNexthop(t *testing.T) {
	nh := func(flags uint32, attrs ...[]byte) []byte {
		b := append(make([]byte, 4), u32(flags)...)
		for _, a := range attrs {
			b = append(b, a...)
		}
		return b
	}
	got, err := parseNexthop(nh(unix.RTNH_F_DEAD, rta(unix.NHA_OIF, u32(3))), nil)
	if err != nil || !reflect.DeepEqual(got, []Hop{{OIF: 3, Dead: true}}) {
		t.Errorf("single: %v %v", got, err)
	}
	var asked []uint32
	member := func(id uint32) ([]Hop, error) { asked = append(asked, id); return []Hop{{OIF: int(id) + 10}}, nil }
	group := append(append(u32(1), 1, 0, 0, 0), append(u32(2), 1, 0, 0, 0)...)
	got, err = parseNexthop(nh(0, rta(unix.NHA_ID, u32(7)), rta(unix.NHA_GROUP, group)), member)
	if err != nil || !reflect.DeepEqual(got, []Hop{{OIF: 11}, {OIF: 12}}) || !reflect.DeepEqual(asked, []uint32{1, 2}) {
		t.Errorf("group: %v %v, asked %v", got, err, asked)
	}
	if _, err := parseNexthop([]byte{1, 2}, nil); err == nil {
		t.Errorf("short answer accepted")
	}
}

// TestMayMeanDown: which netlink messages start the up-delay over.
func TestMayMeanDown(t *testing.T) {
	down := linkMsg(2, false)
	binary.NativeEndian.PutUint16(down[4:6], syscall.RTM_DELLINK)
	adminDown := linkMsg(2, true)
	binary.NativeEndian.PutUint32(adminDown[syscall.NLMSG_HDRLEN+8:], syscall.IFF_RUNNING)
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"carrier lost", linkMsg(2, false), true},
		{"carrier back", linkMsg(2, true), false},
		{"set down", adminDown, true},
		{"removed", down, true},
		{"other interface", linkMsg(7, false), false},
		{"second message of a datagram", append(linkMsg(2, true), linkMsg(2, false)...), true},
		{"default route deleted", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, nil, 0), true},
		{"default route added", routeMsg(syscall.RTM_NEWROUTE, syscall.AF_INET6, nil, 0), true},
		{"half route", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, []byte{128, 0, 0, 0}, 1), true},
		{"other half", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, []byte{0, 0, 0, 0}, 1), false},
		{"covering /24", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, []byte{192, 0, 2, 0}, 24), true},
		{"covering the second test address", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, []byte{198, 51, 100, 0}, 24), true},
		{"covering 3fff::1", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET6, []byte{0x3f, 0xff, 15: 0}, 20), true},
		{"host route elsewhere", routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, []byte{10, 100, 0, 1}, 32), false},
		{"IPv6 /3", routeMsg(syscall.RTM_NEWROUTE, syscall.AF_INET6, []byte{0x20, 15: 0}, 3), true},
		{"IPv6 link-local", routeMsg(syscall.RTM_NEWROUTE, syscall.AF_INET6, []byte{0xfe, 0x80, 15: 0}, 64), false},
		{"address of the wrong size", routeMsg(syscall.RTM_NEWROUTE, syscall.AF_INET6, []byte{0x20, 0, 0, 0}, 3), false},
		{"carrier-down count up, carrier shown", linkMsgDowns(2, true, 6), true},
		{"carrier-down count as before", linkMsgDowns(2, true, 5), false},
		{"carrier-down count up, other interface", linkMsgDowns(7, true, 6), false},
		{"carrier-down count up in a datagram's second message", append(linkMsg(2, true), linkMsgDowns(2, true, 9)...), true},
		{"truncated", linkMsg(2, false)[:20], false},
		{"empty", nil, false},
	} {
		f := &linkFilter{watched: map[int]bool{2: true}, downs: map[int]uint32{2: 5}}
		if got := f.mayMeanDown(tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCarrierDownCount: the filter remembers each watched interface's
// carrier-down count, from the look's snapshot and from the reports, and
// a count above the one remembered means a loss, whether a report or a
// snapshot shows it first.
func TestCarrierDownCount(t *testing.T) {
	look := func(oif int, downs map[int]uint32) *Snapshot {
		s := &Snapshot{Links: map[int]Link{}, Paths: []Path{via(syscall.AF_INET, oif)}}
		for i, d := range downs {
			s.Links[i] = Link{Index: i, Name: "if", Up: true, Running: true, CarrierDowns: d}
		}
		return s
	}
	var f linkFilter
	expect := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	expect("before any look", f.mayMeanDown(linkMsgDowns(2, true, 9)), false)
	expect("first look", f.update(look(2, map[int]uint32{2: 5, 3: 1}), ""), false)
	expect("report of the look's count", f.mayMeanDown(linkMsgDowns(2, true, 5)), false)
	expect("folded loss", f.mayMeanDown(linkMsgDowns(2, true, 6)), true)
	expect("the same count again", f.mayMeanDown(linkMsgDowns(2, true, 6)), false)
	// A datagram whose first message already means down: the second's
	// count is still taken in.
	expect("loss, then a count", f.mayMeanDown(append(linkMsg(2, false), linkMsgDowns(2, true, 7)...)), true)
	expect("that count again", f.mayMeanDown(linkMsgDowns(2, true, 7)), false)
	// A kernel before 4.16: IFLA_CARRIER_CHANGES alone.
	changes := func(n uint32) []byte { return withAttrs(linkMsg(2, true), rta(unix.IFLA_CARRIER_CHANGES, u32(n))) }
	expect("changes as remembered", f.mayMeanDown(changes(7)), false)
	expect("changes up", f.mayMeanDown(changes(9)), true)
	expect("down count as remembered", f.mayMeanDown(linkMsgDowns(2, true, 9)), false)
	// A look whose snapshot is ahead of the reports, then behind them.
	expect("snapshot ahead", f.update(look(2, map[int]uint32{2: 11, 3: 1}), ""), true)
	expect("the report of what the snapshot showed", f.mayMeanDown(linkMsgDowns(2, true, 11)), false)
	expect("snapshot behind", f.update(look(2, map[int]uint32{2: 10, 3: 1}), ""), false)
	expect("report after a snapshot behind", f.mayMeanDown(linkMsgDowns(2, true, 11)), false)
	// Interface 3 does not decide; once the route moves there, it does,
	// counted from the snapshot; 2 no longer does.
	expect("other interface", f.mayMeanDown(linkMsgDowns(3, true, 2)), false)
	expect("route moved", f.update(look(3, map[int]uint32{2: 11, 3: 2}), ""), false)
	expect("old interface", f.mayMeanDown(linkMsgDowns(2, true, 12)), false)
	expect("new interface", f.mayMeanDown(linkMsgDowns(3, true, 3)), true)
	// -iface: the configured interface decides too.
	expect("with -iface", f.update(look(3, map[int]uint32{2: 12, 3: 3}), "if"), false)
	expect("loss on the -iface one", f.mayMeanDown(linkMsgDowns(2, true, 13)), true)
	// Removed: down; an interface created with the same index starts
	// counting from 0.
	del := linkMsg(3, true)
	binary.NativeEndian.PutUint16(del[4:6], syscall.RTM_DELLINK)
	expect("removed", f.mayMeanDown(del), true)
	expect("index used again", f.mayMeanDown(linkMsgDowns(3, true, 0)), false)
	expect("its first loss", f.mayMeanDown(linkMsgDowns(3, true, 1)), true)
}

// FuzzMayMeanDown: no datagram makes the event reader panic.
func FuzzMayMeanDown(f *testing.F) {
	f.Add(linkMsg(2, false))
	f.Add(routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET6, []byte{0x20, 15: 0}, 3))
	f.Add(append(linkMsg(2, true), routeMsg(syscall.RTM_NEWROUTE, syscall.AF_INET, nil, 0)...))
	f.Add(linkMsgDowns(2, true, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		lf := &linkFilter{watched: map[int]bool{}, downs: map[int]uint32{}}
		for i := -1; i < 16; i++ {
			lf.watched[i] = true
		}
		lf.mayMeanDown(b)
		carrierDowns(b)
	})
}

// FuzzParseRoute: no answer makes the route reader panic.
func FuzzParseRoute(f *testing.F) {
	f.Add(rtAnswer(syscall.AF_INET, 0, syscall.RTN_UNICAST, rta(syscall.RTA_MULTIPATH, append(rtHop(3, 0, 8), rtHop(5, 0, 0)...))))
	f.Add(rtAnswer(syscall.AF_INET6, 3, syscall.RTN_UNICAST, rta(syscall.RTA_DST, []byte{0x20, 15: 0}), rta(rtaNHID, u32(1))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		parseRoute(int(b[0]), b, func(uint32) ([]Hop, error) { return nil, nil })
		parseNexthop(b, func(uint32) ([]Hop, error) { return nil, nil })
	})
}
