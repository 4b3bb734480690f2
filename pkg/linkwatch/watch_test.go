package linkwatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
	"golang.org/x/sys/unix"
)

// via is the kernel's answer: a default route of family fam through the
// interfaces oifs (several: ECMP).
func via(fam int, oifs ...int) Path {
	p := Path{Family: fam}
	for _, o := range oifs {
		p.Hops = append(p.Hops, Hop{OIF: o})
	}
	if len(oifs) == 0 {
		p.NoRoute = "network is unreachable"
	}
	return p
}

func snap(up bool) *Snapshot {
	s := &Snapshot{Links: map[int]Link{1: {Index: 1, Name: "lo", Up: true, Running: true}, 2: {Index: 2, Name: "ppp0", Up: up, Running: up}},
		Paths: []Path{via(syscall.AF_INET), via(syscall.AF_INET6)}}
	if up {
		s.Paths[0] = via(syscall.AF_INET, 2)
	}
	return s
}

func TestLinkUp(t *testing.T) {
	const v4, v6 = syscall.AF_INET, syscall.AF_INET6
	// va lost its carrier, wl0 works, eth0 is down.
	links := map[int]Link{2: {Index: 2, Name: "va", Up: true}, 3: {Index: 3, Name: "wl0", Up: true, Running: true},
		4: {Index: 4, Name: "eth0"}}
	for _, tc := range []struct {
		name  string
		s     *Snapshot
		iface string
		want  bool
		why   string // the reason given, when not empty
	}{
		{"default route up", snap(true), "", true, "default route via ppp0"},
		{"no route", snap(false), "", false, "no default route"},
		// The kernel's route goes through va, which has no carrier (a
		// lower metric than wl0's, linkdown routes not ignored): down,
		// although wl0 is fine and carries a default route too.
		{"kernel route without carrier", &Snapshot{Links: links, Paths: []Path{via(v4, 2), via(v6)}}, "", false, "default route via va, which has no carrier"},
		{"kernel route, interface down", &Snapshot{Links: links, Paths: []Path{via(v4, 4)}}, "", false, "default route via eth0, which is down"},
		{"kernel route through wl0", &Snapshot{Links: links, Paths: []Path{via(v4, 3)}}, "", true, "default route via wl0"},
		// Either family will do.
		{"IPv6 only", &Snapshot{Links: links, Paths: []Path{via(v4, 2), via(v6, 3)}}, "", true, "default route via wl0"},
		{"ECMP, one hop works", &Snapshot{Links: links, Paths: []Path{via(v4, 2, 3)}}, "", true, "default route via wl0"},
		{"dead hop", &Snapshot{Links: links, Paths: []Path{{Family: v4, Hops: []Hop{{OIF: 3, Dead: true}}}}}, "", false, ""},
		{"not a default route", &Snapshot{Links: links, Paths: []Path{{Family: v4, Prefix: "0.0.0.0/1", Hops: []Hop{{OIF: 3}}}}}, "", true, "route 0.0.0.0/1 via wl0"},
		{"other iface", snap(true), "wwan0", false, "wwan0: no such interface"},
		{"named iface", snap(true), "ppp0", true, ""},
		{"named iface, kernel uses another", &Snapshot{Links: links, Paths: []Path{via(v4, 3)}}, "va", false,
			"va: up=true carrier=false, but the kernel uses the default route via wl0"},
		{"named iface without route", &Snapshot{Links: links, Paths: []Path{via(v4)}}, "wl0", false,
			"wl0: up=true carrier=true, no default route through it"},
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

// TestActionsRecordLinkWant: the watcher records what it wants in
// control/linkwant, as the hooks do, so that qmailctl boot at a restart
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

// TestMeteredAfterRelease: with -metered, a link that becomes metered
// while delivery is released is held again, whether NetworkManager turns
// the flag on for the same device or the default route moves to a
// metered one (a phone's hotspot). Before, a released link was never
// asked again.
func TestMeteredAfterRelease(t *testing.T) {
	through := func(name string) *Snapshot {
		return &Snapshot{Links: map[int]Link{2: {Index: 2, Name: "eth0", Up: true, Running: true},
			3: {Index: 3, Name: "wwan0", Up: true, Running: true}},
			Paths: []Path{via(syscall.AF_INET, map[string]int{"eth0": 2, "wwan0": 3}[name])}}
	}
	// The flag turns on after a few looks; the device stays the same.
	var mu sync.Mutex
	looks := 0
	r := &recorder{}
	h := Hooks{Snapshot: func() (*Snapshot, error) { return through("eth0"), nil }, Now: time.Now,
		IsMetered: func(string) bool { mu.Lock(); defer mu.Unlock(); looks++; return looks > 3 }}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "release,hold")

	// The default route moves from eth0 to the metered wwan0.
	var n int
	r = &recorder{}
	h = Hooks{Snapshot: func() (*Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n > 3 {
			return through("wwan0"), nil
		}
		return through("eth0"), nil
	}, Now: time.Now, IsMetered: func(iface string) bool { return iface == "wwan0" }}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "release,hold")

	// And back on the unmetered device: released again.
	n = 0
	r = &recorder{}
	h.Snapshot = func() (*Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n > 3 && n < 8 {
			return through("wwan0"), nil
		}
		return through("eth0"), nil
	}
	runUntil(t, Config{Metered: true, Recheck: 2 * time.Millisecond}, h, r, "release,hold,release")
}

// nlMsg is one netlink message: header and body.
func nlMsg(typ uint16, body []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(syscall.NLMSG_HDRLEN+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, make([]byte, 10)...) // flags, seq, pid
	return append(b, body...)
}

// linkMsg is an RTM_NEWLINK notification for ifindex, carrier or not.
func linkMsg(ifindex int, carrier bool) []byte {
	ifi := make([]byte, syscall.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(ifi[4:8], uint32(ifindex))
	flags := uint32(syscall.IFF_UP)
	if carrier {
		flags |= syscall.IFF_RUNNING
	}
	binary.NativeEndian.PutUint32(ifi[8:12], flags)
	return nlMsg(syscall.RTM_NEWLINK, ifi)
}

// linkMsgDowns is linkMsg with the carrier counts the kernel sends:
// IFLA_CARRIER_CHANGES, IFLA_CARRIER_UP_COUNT, IFLA_CARRIER_DOWN_COUNT
// (after the name, as the kernel orders them).
func linkMsgDowns(ifindex int, carrier bool, downs uint32) []byte {
	ups := downs
	if !carrier {
		ups--
	}
	return withAttrs(linkMsg(ifindex, carrier), rta(syscall.IFLA_IFNAME, []byte("ppp0\x00")),
		rta(unix.IFLA_CARRIER_CHANGES, u32(downs+ups)), rta(unix.IFLA_CARRIER_UP_COUNT, u32(ups)),
		rta(unix.IFLA_CARRIER_DOWN_COUNT, u32(downs)))
}

// withAttrs appends attributes to a netlink message, fixing its length.
func withAttrs(msg []byte, attrs ...[]byte) []byte {
	msg = append([]byte(nil), msg...)
	for _, a := range attrs {
		msg = append(msg, a...)
	}
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	return msg
}

// routeMsg is a route notification for dst/bits (dst nil: default).
func routeMsg(typ uint16, fam int, dst []byte, bits int) []byte {
	rt := make([]byte, syscall.SizeofRtMsg)
	rt[0], rt[1], rt[4], rt[7] = byte(fam), byte(bits), syscall.RT_TABLE_MAIN, syscall.RTN_UNICAST
	if dst != nil {
		rt = appendAttr(rt, syscall.RTA_DST, dst)
	}
	rt = appendAttr(rt, syscall.RTA_OIF, binary.NativeEndian.AppendUint32(nil, 2))
	return nlMsg(typ, rt)
}

// flapRig runs the watcher with -up-delay 1h on the snapshots of look,
// with a socket pair standing in for netlink and a clock the test moves.
// Its step moves the clock, sends the messages (one datagram, then one
// showing ppp0 with carrier), and returns the actions once the look after
// them has decided: the look after a further event begins only then.
func flapRig(t *testing.T, look func() *Snapshot) (step func(advance time.Duration, msgs ...[]byte) string) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Unix(1e9, 0)
	looks := 0
	taken := make(chan int, 1) // the count of looks when the reader had taken a datagram in
	h := Hooks{
		Snapshot: func() (*Snapshot, error) {
			s := look() // outside mu: it may take a lock of the test's
			mu.Lock()
			defer mu.Unlock()
			looks++
			return s, nil
		},
		Subscribe: func() (int, error) { return fds[0], nil }, // Run closes it
		Now:       func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
		read:      func() { mu.Lock(); n := looks; mu.Unlock(); taken <- n },
	}
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Config{UpDelay: time.Hour, Recheck: time.Hour}, h, r, func(string, ...any) {})
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		syscall.Close(fds[1]) // the reader sees the end
	})
	lookCount := func() int { mu.Lock(); defer mu.Unlock(); return looks }
	waitLook := func(after int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); lookCount() <= after; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no look after %d", after)
			}
		}
	}
	// send writes one datagram and waits for a look that began after the
	// reader had taken it in (and so saw what it made of it).
	send := func(b []byte) {
		t.Helper()
		if _, err := syscall.Write(fds[1], b); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-taken:
			waitLook(n)
		case <-time.After(10 * time.Second):
			t.Fatal("the watcher did not read the event")
		}
	}
	waitLook(0) // the first look: up since now
	return func(advance time.Duration, msgs ...[]byte) string {
		t.Helper()
		mu.Lock()
		clock = clock.Add(advance)
		mu.Unlock()
		send(bytes.Join(append(msgs, linkMsg(2, true)), nil))
		send(linkMsg(2, true))
		return r.get()
	}
}

// TestReaderEndsWithRun: when Run's context ends, the reader of the
// netlink socket ends too, although nothing more comes on the socket
// (before, it slept on in recvfrom on a closed descriptor, whose number
// the next open could take).
func TestReaderEndsWithRun(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	ended := make(chan struct{})
	taken := make(chan struct{}, 1)
	h := Hooks{
		Snapshot:  func() (*Snapshot, error) { return snap(true), nil },
		Subscribe: func() (int, error) { return fds[0], nil }, // Run closes it
		Now:       time.Now,
		read:      func() { taken <- struct{}{} },
		readerEnd: func() { close(ended) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, Config{UpDelay: time.Hour, Recheck: time.Hour}, h, &recorder{}, func(string, ...any) {})
		close(done)
	}()
	// One message taken in: the reader goes back to waiting for the next.
	if _, err := syscall.Write(fds[1], linkMsg(2, true)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-taken:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not take the message in")
	}
	time.Sleep(50 * time.Millisecond) // let it reach its wait (not needed for the new reader)
	cancel()
	<-done
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the netlink reader still runs 10 s after Run ended")
	}
}

// TestFlapStartsUpDelayOver: a carrier that drops for a moment between two
// looks, each of which finds the link up, starts the up-delay over, and so
// does a change to the default route; a carrier lost on an interface the
// route does not use does not. Before, only a look that saw the link down
// did, and a link dropping for 10 ms every half second was released.
// The events come from a socket pair standing in for netlink, the time
// from a clock the test moves.
func TestFlapStartsUpDelayOver(t *testing.T) {
	step := flapRig(t, func() *Snapshot { return snap(true) }) // ppp0, ifindex 2, always up when looked at
	if got := step(0); got != "" {
		t.Fatalf("at start: %q", got)
	}
	// 59 minutes later, the carrier drops and comes back.
	if got := step(59*time.Minute, linkMsg(2, false)); got != "" {
		t.Fatalf("after the drop: %q", got)
	}
	if got := step(2 * time.Minute); got != "" {
		t.Fatalf("released 2 minutes after the carrier dropped, with -up-delay 1h: %q", got)
	}
	// The default route is deleted and added back (IPv6 this time).
	if got := step(58*time.Minute, routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET6, nil, 0),
		routeMsg(syscall.RTM_NEWROUTE, syscall.AF_INET6, nil, 0)); got != "" {
		t.Fatalf("released when the default route was deleted: %q", got)
	}
	// A container's interface (ifindex 7) comes and goes, a host route
	// elsewhere is deleted: not the link.
	if got := step(59*time.Minute, linkMsg(7, false), linkMsg(7, true),
		routeMsg(syscall.RTM_DELROUTE, syscall.AF_INET, []byte{10, 100, 0, 1}, 32)); got != "" {
		t.Fatalf("released early: %q", got)
	}
	if got := step(2 * time.Minute); got != "release" {
		t.Fatalf("an hour after the last drop: %q, want release", got)
	}
}

// TestFoldedCarrierLossStartsUpDelayOver: the kernel reports carrier
// changes at most about once a second per interface and folds a shorter
// loss into a report that shows carrier again, with a higher carrier-down
// count; such a report starts the up-delay over, and so does a look whose
// snapshot shows a higher count than the last report. A report repeating
// the count, or a higher count on an interface the route does not use,
// does not. Before, a link dropping for 10 ms every 0.6 s, reported with
// carrier each time, was released after the up-delay (reg17 QA).
func TestFoldedCarrierLossStartsUpDelayOver(t *testing.T) {
	var mu sync.Mutex
	downs := uint32(41)
	step := flapRig(t, func() *Snapshot {
		s := snap(true)
		mu.Lock()
		defer mu.Unlock()
		l := s.Links[2]
		l.CarrierDowns = downs
		s.Links[2] = l
		return s
	})
	if got := step(0, linkMsgDowns(2, true, 41)); got != "" {
		t.Fatalf("at start: %q", got)
	}
	// 59 minutes later, a loss folded into a report with carrier.
	if got := step(59*time.Minute, linkMsgDowns(2, true, 42)); got != "" {
		t.Fatalf("after the folded loss: %q", got)
	}
	if got := step(2 * time.Minute); got != "" {
		t.Fatalf("released 2 minutes after a folded carrier loss, with -up-delay 1h: %q", got)
	}
	// A loss whose report has not come yet: the look sees the count.
	mu.Lock()
	downs = 43
	mu.Unlock()
	if got := step(57 * time.Minute); got != "" {
		t.Fatalf("released an hour after the folded loss, but with a further one in the snapshot: %q", got)
	}
	if got := step(2 * time.Minute); got != "" {
		t.Fatalf("released 2 minutes after the loss the snapshot showed: %q", got)
	}
	// The report of that loss when it comes, and a container's interface
	// (ifindex 7) losing its carrier: nothing new for the link.
	if got := step(57*time.Minute, linkMsgDowns(2, true, 43), linkMsgDowns(7, true, 100), linkMsgDowns(7, true, 101)); got != "" {
		t.Fatalf("released early: %q", got)
	}
	if got := step(2 * time.Minute); got != "release" {
		t.Fatalf("an hour after the last loss: %q, want release", got)
	}
}

// TestActionsTakeControlLock: the watcher records and applies as the
// hooks do, under the control directory's lock (qmailctl linkwant, then
// linkwant apply): while another qmailctl holds that lock, nothing is
// recorded (it wrote linkwant at once and then held the lock through
// qmail-send's confirmation, so a hook's record could wait behind it).
func TestActionsTakeControlLock(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"control", "queue/lock"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := syscall.Open(filepath.Join(root, "control", "lock"), syscall.O_RDWR|syscall.O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctlActions{root}.Hold("test") }()
	time.Sleep(200 * time.Millisecond) // time enough to write, if it did not wait
	if b, err := os.ReadFile(filepath.Join(root, hold.LinkWantFile)); err == nil {
		t.Errorf("linkwant written (%q) while another qmailctl held the control lock", b)
	}
	syscall.Close(fd) // the lock goes with it
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hold did not finish once the lock was free")
	}
	if b, _ := os.ReadFile(filepath.Join(root, hold.LinkWantFile)); string(b) != "hold\n" {
		t.Errorf("after the lock: linkwant %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "control", "holdremote")); string(b) != "*\n" {
		t.Errorf("after the lock: holdremote %q", b)
	}
}
