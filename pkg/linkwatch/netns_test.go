package linkwatch

import (
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/netns"
)

// linkNS is a network namespace of the test's own with the qmail-linkwatch
// binary to run -check in it. Every interface a test makes lives inside
// it (both ends of each veth pair): the host's are never touched.
type linkNS struct {
	*netns.NS
	bin string
}

func newLinkNS(t *testing.T) *linkNS {
	t.Helper()
	if why := netns.Available(); why != "" {
		t.Skipf("needs network namespaces (root; CI runs as root): %s", why)
	}
	bin := t.TempDir() + "/qmail-linkwatch"
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/qmail-linkwatch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return &linkNS{NS: netns.New(t, netns.Name("lw")), bin: bin}
}

// veth makes the pair name (its addresses given) and "p"+name, the far
// end whose state sets name's carrier; both up.
func (n *linkNS) veth(t *testing.T, name string, addrs ...string) {
	t.Helper()
	netns.Veth(t, n.NS, name, n.NS, "p"+name)
	for _, a := range addrs {
		args := []string{"addr", "add", a, "dev", name}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		n.IP(t, args...)
	}
	n.IP(t, "link", "set", "p"+name, "up")
	n.IP(t, "link", "set", name, "up")
}

func (n *linkNS) check(args ...string) (bool, string) {
	out, err := n.Command(n.bin, append([]string{"-check"}, args...)...).CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// waitState polls -check (carrier changes reach the link state
// asynchronously) until it says want and, when not empty, the reason.
func (n *linkNS) waitState(t *testing.T, want bool, why string, args ...string) {
	t.Helper()
	var out string
	for i := 0; i < 100; i++ {
		var up bool
		if up, out = n.check(args...); up == want && (why == "" || strings.HasSuffix(out, ": "+why)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("-check %v never said up=%v %q: %s", args, want, why, out)
}

// TestNetnsReadsKernelState checks the netlink reader against a real
// network namespace: no default route, then a veth with one, its carrier
// lost, and an ECMP route over it and a second one.
func TestNetnsReadsKernelState(t *testing.T) {
	n := newLinkNS(t)
	if up, out := n.check(); up {
		t.Fatalf("fresh namespace counts as up: %s", out)
	}
	n.veth(t, "va", "10.251.0.2/30")
	n.IP(t, "route", "add", "default", "via", "10.251.0.1", "dev", "va")
	n.waitState(t, true, "default route via va")
	n.IP(t, "link", "set", "pva", "down") // carrier lost
	n.waitState(t, false, "default route via va, which has no carrier")

	// An ECMP default route (RTA_MULTIPATH, no RTA_OIF) over this veth and
	// a second one: up through the second while the first has no carrier.
	n.veth(t, "wl0", "10.252.0.2/30")
	for i := 0; ; i++ { // the next hop needs its link up to be accepted
		_, err := n.TryIP("route", "replace", "default", "nexthop", "via", "10.251.0.1", "dev", "va",
			"nexthop", "via", "10.252.0.1", "dev", "wl0")
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.waitState(t, true, "default route via wl0")
}

// TestNetnsLinkdownRouteIsDown: two default routes, the lower-metric one
// through an interface that lost its carrier. The kernel keeps sending
// through that one (ignore_routes_with_linkdown is 0 by default), so the
// link is down although the other route's interface is fine; once the
// kernel is told to ignore linkdown routes it uses the other, and the link
// is up. IPv4 and IPv6 each; either family up is up. Before, any default
// route through a working interface counted, and -check said "up: default
// route via wl0" while connections went nowhere.
func TestNetnsLinkdownRouteIsDown(t *testing.T) {
	n := newLinkNS(t)
	n.veth(t, "va", "10.251.0.2/30", "fd00:251::2/64")
	n.veth(t, "wl0", "10.252.0.2/30", "fd00:252::2/64")
	n.IP(t, "route", "add", "default", "via", "10.251.0.1", "dev", "va", "metric", "100")
	n.IP(t, "route", "add", "default", "via", "10.252.0.1", "dev", "wl0", "metric", "600")
	n.IP(t, "-6", "route", "add", "default", "via", "fd00:251::1", "dev", "va", "metric", "100")
	n.IP(t, "-6", "route", "add", "default", "via", "fd00:252::1", "dev", "wl0", "metric", "600")
	n.waitState(t, true, "default route via va")
	n.IP(t, "link", "set", "pva", "down")
	n.waitState(t, false, "default route via va, which has no carrier")
	n.waitState(t, false, "wl0: up=true carrier=true, but the kernel uses the default route via va", "-iface", "wl0")

	n.Sysctl(t, "net.ipv4.conf.all.ignore_routes_with_linkdown", "1")
	n.waitState(t, true, "default route via wl0")
	n.waitState(t, true, "default route via wl0", "-iface", "wl0")
	n.Sysctl(t, "net.ipv4.conf.all.ignore_routes_with_linkdown", "0")
	n.waitState(t, false, "default route via va, which has no carrier")
	// Per interface, and for IPv6.
	n.Sysctl(t, "net.ipv6.conf.va.ignore_routes_with_linkdown", "1")
	n.waitState(t, true, "default route via wl0")
	n.IP(t, "link", "set", "pva", "up")
	n.waitState(t, true, "default route via va")
}

// TestNetnsDocumentationNetOnLAN: a LAN (or a sandbox) numbered in
// 192.0.2.0/24, where the first address looked up lies: the default route
// still decides, not the LAN's route.
func TestNetnsDocumentationNetOnLAN(t *testing.T) {
	n := newLinkNS(t)
	n.veth(t, "lan", "192.0.2.2/24", "2001:db8::2/64")
	n.veth(t, "wl0", "10.252.0.2/30", "fd00:252::2/64")
	n.IP(t, "route", "add", "default", "via", "10.252.0.1", "dev", "wl0")
	n.IP(t, "-6", "route", "add", "default", "via", "fd00:252::1", "dev", "wl0")
	n.waitState(t, true, "default route via wl0")
	n.IP(t, "link", "set", "pwl0", "down")
	n.waitState(t, false, "default route via wl0, which has no carrier")
	n.IP(t, "route", "del", "default")
	n.IP(t, "-6", "route", "del", "default")
	n.waitState(t, false, "no default route") // the LAN is no way to the internet
}

// TestNetnsNexthopObject: a default route through a nexthop object carries
// only the object's id when net.ipv4.nexthop_compat_mode is 0 (the
// namespace's own setting); it counts by the object's interface, a group
// by its members'. Before, it was "down: no default route" while it
// worked.
func TestNetnsNexthopObject(t *testing.T) {
	n := newLinkNS(t)
	if _, err := n.TryIP("nexthop", "list"); err != nil {
		t.Skipf("no nexthop objects here: %v", err)
	}
	host, err := os.ReadFile("/proc/sys/net/ipv4/nexthop_compat_mode")
	if err != nil {
		t.Skipf("no nexthop_compat_mode: %v", err)
	}
	n.Sysctl(t, "net.ipv4.nexthop_compat_mode", "0")
	if now, err := os.ReadFile("/proc/sys/net/ipv4/nexthop_compat_mode"); err != nil || string(now) != string(host) {
		// A kernel where the setting is global: put it back.
		os.WriteFile("/proc/sys/net/ipv4/nexthop_compat_mode", host, 0o644)
		t.Fatalf("nexthop_compat_mode is not per namespace here: %q, was %q", now, host)
	}
	n.veth(t, "va", "10.251.0.2/30")
	n.veth(t, "wl0", "10.252.0.2/30")
	for i := 0; ; i++ { // the next hop needs its link up to be accepted
		_, err := n.TryIP("nexthop", "add", "id", "1", "via", "10.251.0.1", "dev", "va")
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.IP(t, "route", "add", "default", "nhid", "1")
	if out, _ := n.TryIP("route", "show", "default"); strings.Contains(out, " dev ") {
		t.Fatalf("the route names its interface (compat mode on?): %s", out)
	}
	n.waitState(t, true, "default route via va")

	// A group over va and wl0. The kernel drops a nexthop object whose
	// interface loses its carrier, and the route goes with the last one.
	n.IP(t, "nexthop", "add", "id", "2", "via", "10.252.0.1", "dev", "wl0")
	n.IP(t, "nexthop", "add", "id", "10", "group", "1/2")
	n.IP(t, "route", "replace", "default", "nhid", "10")
	n.waitState(t, true, "default route via va")
	n.IP(t, "link", "set", "pva", "down")
	n.waitState(t, true, "default route via wl0")
	n.IP(t, "link", "set", "pwl0", "down")
	n.waitState(t, false, "")
}

// subscribe reads the namespace's state and subscribes to its link and
// route messages there, each read waiting at most a tenth of a second;
// it returns the socket (closed at the end of the test), the snapshot and
// a filter set from it.
func (n *linkNS) subscribe(t *testing.T) (fd int, snap *Snapshot, f *linkFilter) {
	t.Helper()
	var err error
	n.Do(t, func() {
		if snap, err = Read(); err == nil {
			fd, err = Subscribe()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	tv := syscall.Timeval{Usec: 100000}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	f = &linkFilter{}
	f.update(snap, "")
	return fd, snap, f
}

// TestNetnsCarrierLossEvent: the kernel's message for a carrier that drops
// on the route's interface is one that starts the up-delay over, however
// short the drop; a drop on another interface is not.
func TestNetnsCarrierLossEvent(t *testing.T) {
	n := newLinkNS(t)
	n.veth(t, "va", "10.251.0.2/30")
	n.veth(t, "wl0", "10.252.0.2/30")
	n.IP(t, "route", "add", "default", "via", "10.251.0.1", "dev", "va")
	n.waitState(t, true, "default route via va")
	fd, _, f := n.subscribe(t)
	// seen reads the messages until one may mean down, or none has come
	// for quiet tenths of a second.
	seen := func(quiet int) bool {
		buf := make([]byte, 64<<10)
		for q := 0; q < quiet; {
			k, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				q++
				continue
			}
			if f.mayMeanDown(buf[:k]) {
				return true
			}
		}
		return false
	}
	n.IP(t, "link", "set", "pwl0", "down")
	n.IP(t, "link", "set", "pwl0", "up")
	if seen(10) {
		t.Errorf("a carrier loss on wl0, which the route does not use, counts")
	}
	n.IP(t, "link", "set", "pva", "down")
	n.IP(t, "link", "set", "pva", "up")
	if !seen(100) {
		t.Errorf("the carrier loss on va, the route's interface, was not seen")
	}
}

// TestNetnsFoldedCarrierLoss: the far end of the route's veth lives in a
// second namespace with the same ifindex, which makes the kernel rate-limit
// the carrier reports (once a second; a veth whose peer has another index
// is reported at once). A loss shorter than that is reported, a second
// later, with carrier and a higher carrier-down count: the filter takes it
// for what it is. The snapshot reads the count too. Before, such a link was
// released mid-flap (reg17 QA).
func TestNetnsFoldedCarrierLoss(t *testing.T) {
	n := newLinkNS(t)
	far := netns.New(t, netns.Name("lwf"))
	netns.Veth(t, n.NS, "va", far, "vb")
	n.IP(t, "addr", "add", "10.251.0.2/30", "dev", "va")
	far.IP(t, "link", "set", "vb", "up")
	n.IP(t, "link", "set", "va", "up")
	n.IP(t, "route", "add", "default", "via", "10.251.0.1", "dev", "va")
	n.waitState(t, true, "default route via va")
	fd, before, f := n.subscribe(t)
	index := -1
	for i, l := range before.Links {
		if l.Name == "va" {
			index = i
		}
	}
	if index < 0 {
		t.Fatalf("no va in the snapshot: %+v", before.Links)
	}
	// read takes the messages in until one about va has come (within 5 s,
	// the rate limit being a second), and then until none has come for a
	// tenth of a second; it tells whether the filter flagged one and
	// whether one showed va without carrier.
	read := func() (flagged, noCarrier bool) {
		t.Helper()
		buf := make([]byte, 64<<10)
		seenVa := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			k, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				if seenVa {
					return
				}
				continue
			}
			if f.mayMeanDown(buf[:k]) {
				flagged = true
			}
			msgs, _ := syscall.ParseNetlinkMessage(buf[:k])
			for _, m := range msgs {
				if m.Header.Type == syscall.RTM_NEWLINK && len(m.Data) >= syscall.SizeofIfInfomsg &&
					int(int32(binary.NativeEndian.Uint32(m.Data[4:8]))) == index {
					seenVa = true
					if binary.NativeEndian.Uint32(m.Data[8:12])&syscall.IFF_RUNNING == 0 {
						noCarrier = true
					}
				}
			}
		}
		t.Fatal("no report about va within 5 s")
		return
	}
	flap := func() {
		t.Helper()
		far.IP(t, "link", "set", "vb", "down")
		far.IP(t, "link", "set", "vb", "up")
	}
	// The first loss's report starts the rate limit; the second loss, a
	// few milliseconds long, comes within it.
	flap()
	read()
	flap()
	flagged, noCarrier := read()
	if !flagged {
		t.Errorf("the second carrier loss on va was not taken for one (reported without carrier: %v)", noCarrier)
	}
	if noCarrier {
		t.Logf("this kernel reported the short loss without carrier: the count was not needed")
	} else {
		t.Logf("the short loss was reported with carrier, told by its count")
	}
	var after *Snapshot
	var err error
	n.Do(t, func() { after, err = Read() })
	if err != nil {
		t.Fatal(err)
	}
	if b, a := before.Links[index].CarrierDowns, after.Links[index].CarrierDowns; a < b+2 {
		t.Errorf("the snapshot's carrier-down count of va went from %d to %d over two losses", b, a)
	}
}

// TestNetnsCheckMetered: qmail-linkwatch -check -metered in a namespace
// whose default route works, with a fake nmcli on PATH: "down" while it
// says metered, worded as the daemon logs it, and "up" when it says not.
// Before, -check ignored -metered.
func TestNetnsCheckMetered(t *testing.T) {
	n := newLinkNS(t)
	state, _ := fakeNmcli(t) // on this process's PATH, which the command inherits
	n.veth(t, "va", "10.251.0.2/30")
	n.IP(t, "route", "add", "default", "via", "10.251.0.1", "dev", "va")
	n.waitState(t, true, "default route via va")
	if err := os.WriteFile(state, []byte("yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if up, out := n.check("-metered"); up || out != "down: link up but metered (default route via va)" {
		t.Errorf("metered: up=%v %q", up, out)
	}
	if up, out := n.check(); !up {
		t.Errorf("without -metered: %q", out)
	}
	if err := os.WriteFile(state, []byte("no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if up, out := n.check("-metered"); !up || out != "up: default route via va" {
		t.Errorf("not metered: up=%v %q", up, out)
	}
}
