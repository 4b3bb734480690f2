package linkwatch

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
)

func snap(up bool) *Snapshot {
	s := &Snapshot{Links: map[int]Link{1: {Index: 1, Name: "lo", Up: true, Running: true}, 2: {Index: 2, Name: "ppp0", Up: up, Running: up}}}
	if up {
		s.Routes = []Route{{Family: 2, OIF: 2}}
	}
	return s
}

func TestLinkUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     *Snapshot
		iface string
		want  bool
		why   string // the reason given, when not empty
	}{
		{"default route up", snap(true), "", true, "default route via ppp0"},
		{"no route", snap(false), "", false, "no default route"},
		{"route but no carrier", &Snapshot{Links: map[int]Link{2: {Index: 2, Name: "eth0", Up: true}}, Routes: []Route{{2, 2}}}, "", false, "default route via eth0, which has no carrier"},
		{"route, interface down", &Snapshot{Links: map[int]Link{2: {Index: 2, Name: "eth0"}}, Routes: []Route{{2, 2}}}, "", false, "default route via eth0, which is down"},
		{"other iface", snap(true), "wwan0", false, ""},
		{"named iface", snap(true), "ppp0", true, ""},
	} {
		got, why := tc.s.LinkUp(tc.iface)
		if got != tc.want {
			t.Errorf("%s: LinkUp = %v (%s), want %v", tc.name, got, why, tc.want)
		}
		if tc.why != "" && why != tc.why {
			t.Errorf("%s: reason %q, want %q", tc.name, why, tc.why)
		}
	}
}

// recorder records the actions in order.
type recorder struct {
	mu  sync.Mutex
	seq []string
}

func (r *recorder) Hold(string) error    { r.add("hold"); return nil }
func (r *recorder) Release(string) error { r.add("release"); return nil }
func (r *recorder) add(s string)         { r.mu.Lock(); r.seq = append(r.seq, s); r.mu.Unlock() }
func (r *recorder) get() string          { r.mu.Lock(); defer r.mu.Unlock(); return strings.Join(r.seq, ",") }

// script returns snapshots from a list, repeating the last one.
func script(states ...bool) func() (*Snapshot, error) {
	var mu sync.Mutex
	i := 0
	return func() (*Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		s := states[i]
		if i < len(states)-1 {
			i++
		}
		return snap(s), nil
	}
}

func runUntil(t *testing.T, cfg Config, h Hooks, r *recorder, want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, cfg, h, r, func(string, ...any) {}); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.get() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if r.get() != want {
		t.Fatalf("actions %q, want %q", r.get(), want)
	}
}

func TestDownUpDown(t *testing.T) {
	r := &recorder{}
	h := Hooks{Snapshot: script(false, false, true, true, true, true, false), Now: time.Now}
	runUntil(t, Config{UpDelay: 10 * time.Millisecond, Recheck: 5 * time.Millisecond}, h, r, "hold,release,hold")
}

func TestFlappingLinkReleasesNothing(t *testing.T) {
	r := &recorder{}
	h := Hooks{Snapshot: script(false, true, false, true, false, true, false), Now: time.Now}
	cfg := Config{UpDelay: time.Hour, Recheck: 2 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, cfg, h, r, func(string, ...any) {}); close(done) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	if got := r.get(); got != "hold" {
		t.Fatalf("actions %q, want only the first hold", got)
	}
}

func TestProbeAndMetered(t *testing.T) {
	// The probe fails at first; release only once it connects.
	var mu sync.Mutex
	fails := 3
	dial := func(network, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return nil, errors.New("connection refused")
		}
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}
	r := &recorder{}
	h := Hooks{Snapshot: script(true), Now: time.Now, Dial: dial}
	// Started on an up link whose probe fails: hold first, release once
	// the probe connects.
	runUntil(t, Config{Probe: "smarthost:587", Recheck: 2 * time.Millisecond}, h, r, "hold,release")
	mu.Lock()
	if fails != 0 {
		t.Errorf("released before the probe succeeded")
	}
	mu.Unlock()

	r = &recorder{}
	h = Hooks{Snapshot: script(true), Now: time.Now, IsMetered: func(string) bool { return true }}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "hold")
}

// TestNetnsReadsKernelState checks the netlink reader against a real
// network namespace: no default route, then a veth with one.
func TestNetnsReadsKernelState(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for ip netns (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	bin := t.TempDir() + "/qmail-linkwatch"
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/qmail-linkwatch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ns := "hqlw" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add not permitted here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	check := func() (bool, string) {
		out, err := exec.Command("ip", "netns", "exec", ns, bin, "-check").CombinedOutput()
		return err == nil, string(out)
	}
	if up, out := check(); up {
		t.Fatalf("fresh namespace counts as up: %s", out)
	}
	veth := "hqv" + ns[len(ns)-6:]
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	// addVeth makes the pair NAMEa (here) and NAMEb (in ns, with addr),
	// both up.
	addVeth := func(name, addr string) {
		t.Helper()
		sh("link", "add", name+"a", "type", "veth", "peer", "name", name+"b")
		t.Cleanup(func() { exec.Command("ip", "link", "del", name+"a").Run() })
		sh("link", "set", name+"b", "netns", ns)
		sh("-n", ns, "addr", "add", addr, "dev", name+"b")
		sh("-n", ns, "link", "set", name+"b", "up")
		sh("link", "set", name+"a", "up")
	}
	addVeth(veth, "10.251.0.2/30")
	sh("-n", ns, "route", "add", "default", "via", "10.251.0.1", "dev", veth+"b")
	// Carrier changes reach the kernel's link state asynchronously: poll.
	waitState := func(want bool) {
		t.Helper()
		var out string
		for i := 0; i < 100; i++ {
			var up bool
			if up, out = check(); up == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("link state never became up=%v: %s", want, out)
	}
	waitState(true)
	sh("link", "set", veth+"a", "down") // carrier lost on the far side
	waitState(false)

	// An ECMP default route (RTA_MULTIPATH, no RTA_OIF) over this veth and
	// a second one: up through the second while the first has no carrier.
	v2 := "hqw" + ns[len(ns)-6:]
	addVeth(v2, "10.252.0.2/30")
	waitLink := func() { // the nexthop needs the link up to be accepted
		for i := 0; i < 100; i++ {
			if exec.Command("ip", "-n", ns, "route", "replace", "default", "nexthop", "via", "10.251.0.1", "dev", veth+"b",
				"nexthop", "via", "10.252.0.1", "dev", v2+"b").Run() == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("multipath default route not accepted")
	}
	waitLink()
	waitState(true)
}

// TestActionsRecordLinkWant: the watcher records what it wants in
// queue/lock/linkwant, as the hooks do, so that qmailctl boot at a restart
// of qmail while the link is up holds nothing (the watcher acts only on a
// change and would never release again).
func TestActionsRecordLinkWant(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"control", "queue/lock"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := ctlActions{root}
	if err := a.Hold("test"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, hold.LinkWantFile)); string(b) != "hold\n" {
		t.Errorf("after hold: linkwant %q", b)
	}
	if err := a.Release("test"); err != nil {
		t.Fatal(err)
	}
	if !hold.ReleasedSinceBoot(root) {
		t.Errorf("after release: linkwant does not say released since boot")
	}
	if _, err := os.Stat(filepath.Join(root, "control", "holdremote")); !os.IsNotExist(err) {
		t.Errorf("holdremote after release: %v", err)
	}
}

// TestMultipathOIFs: an ECMP default route's next hops are its interfaces
// (a multi-homed host counted as offline before).
func TestMultipathOIFs(t *testing.T) {
	hop := func(ifindex uint32, extra int) []byte {
		b := make([]byte, 8+extra)
		binary.NativeEndian.PutUint16(b[0:2], uint16(8+extra))
		binary.NativeEndian.PutUint32(b[4:8], ifindex)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := append(hop(3, 8), hop(5, 0)...) // the first with a gateway attribute
	if got := multipathOIFs(b); len(got) != 2 || got[0] != 3 || got[1] != 5 {
		t.Errorf("got %v, want [3 5]", got)
	}
	if got := multipathOIFs(b[:5]); len(got) != 0 {
		t.Errorf("truncated: %v", got)
	}
	// The route counts as up when one next hop's interface is up.
	s := &Snapshot{Links: map[int]Link{3: {Index: 3, Name: "wlan0"}, 5: {Index: 5, Name: "eth0", Up: true, Running: true}},
		Routes: []Route{{Family: 2, OIF: 3}, {Family: 2, OIF: 5}}}
	if up, why := s.LinkUp(""); !up {
		t.Errorf("down: %s", why)
	}
}

// TestMeteredAfterRelease: with -metered, a link that becomes metered
// while delivery is released is held again, whether NetworkManager turns
// the flag on for the same device or the default route moves to a
// metered one (a phone's hotspot). Before, a released link was never
// asked again.
func TestMeteredAfterRelease(t *testing.T) {
	via := func(name string) *Snapshot {
		return &Snapshot{Links: map[int]Link{2: {Index: 2, Name: "eth0", Up: true, Running: true},
			3: {Index: 3, Name: "wwan0", Up: true, Running: true}},
			Routes: []Route{{Family: 2, OIF: map[string]int{"eth0": 2, "wwan0": 3}[name]}}}
	}
	// The flag turns on after a few looks; the device stays the same.
	var mu sync.Mutex
	looks := 0
	r := &recorder{}
	h := Hooks{Snapshot: func() (*Snapshot, error) { return via("eth0"), nil }, Now: time.Now,
		IsMetered: func(string) bool { mu.Lock(); defer mu.Unlock(); looks++; return looks > 3 }}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "release,hold")

	// The default route moves from eth0 to the metered wwan0.
	var n int
	r = &recorder{}
	h = Hooks{Snapshot: func() (*Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n > 3 {
			return via("wwan0"), nil
		}
		return via("eth0"), nil
	}, Now: time.Now, IsMetered: func(iface string) bool { return iface == "wwan0" }}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "release,hold")

	// And back on the unmetered device: released again.
	n = 0
	r = &recorder{}
	h.Snapshot = func() (*Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n > 3 && n < 8 {
			return via("wwan0"), nil
		}
		return via("eth0"), nil
	}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "release,hold,release")
}
