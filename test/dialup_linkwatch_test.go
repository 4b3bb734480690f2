package test

// qmail-linkwatch's safeguards end to end, in the test's namespaces: a
// flapping link releases nothing before it has stayed up -up-delay, -probe
// keeps mail held while the smarthost's port does not answer, and -metered
// keeps it held while NetworkManager (a fake nmcli here) says metered.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/tcpto"
	"github.com/hqmail/hqmail/test/harness"
)

// linkwatchTree: a tree holding remote delivery from the start, with
// qmail-send running in the host namespace and 10 messages queued.
func linkwatchTree(t *testing.T, n *dialNet) (*harness.Tree, *harness.System) {
	t.Helper()
	tr := dialTree(t, dialDNSAddr)
	tr.Control("holdremote", "1\n")
	sys := startInHost(t, n, tr)
	queueBatch(t, tr, sys, 0, 10)
	return tr, sys
}

// TestDialupLinkwatchFlap: the link flaps (down/up several times, each up
// far shorter than -up-delay 10s): nothing is released, nothing connects;
// once it stays up, mail goes out.
func TestDialupLinkwatchFlap(t *testing.T) {
	needNetns(t)
	n := newDialNet(t)
	sink, _ := n.startInternet(t)
	tr, sys := linkwatchTree(t, n)
	lw := startLinkwatch(t, n, tr, "-up-delay", "10s", "-recheck", "1s")
	n.linkDown(t)
	lw.wait(t, "remote delivery held", 1)
	tx := n.host.TxPackets(t, n.hostIf)
	for i := 0; i < 5; i++ {
		n.linkUp(t)
		time.Sleep(200 * time.Millisecond)
		n.linkDown(t)
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(lw.log(), "released") || sink.conns.Load() != 0 || remoteStarted(sys) != 0 {
		t.Fatalf("released during the flapping: %d connections, %d deliveries; linkwatch log:\n%s",
			sink.conns.Load(), remoteStarted(sys), lw.log())
	}
	if st := sys.Status()["holdremote"]; st != "all" {
		t.Fatalf("sendstatus holdremote %q during the flapping", st)
	}
	if d := n.host.TxPackets(t, n.hostIf) - tx; d != 0 {
		t.Fatalf("%d packets left during the flapping", d)
	}
	up := time.Now()
	n.linkUp(t)
	waitHold(t, tr, sys, false)
	if !harness.Eventually(dialBound, func() bool { got, _ := sink.Got(0, 10); return got == 10 }) {
		t.Fatalf("not delivered after the link settled; log:\n%s", sys.Log())
	}
	t.Logf("released and delivered %v after the link settled (-up-delay 10s); linkwatch log:\n%s",
		time.Since(up).Round(time.Millisecond), lw.log())
	sys.Stop(t)
}

// TestDialupLinkwatchProbe: the link is up but the smarthost's port
// refuses: still held (and the MX sees nothing but the probes); once it
// answers, released and delivered.
func TestDialupLinkwatchProbe(t *testing.T) {
	needNetns(t)
	n := newDialNet(t)
	// The MX is not listening yet: the probe is refused.
	tr, sys := linkwatchTree(t, n)
	lw := startLinkwatch(t, n, tr, "-up-delay", "1s", "-recheck", "1s",
		"-probe", dialMXAddr+":25", "-probe-timeout", "2s")
	lw.wait(t, "probe "+dialMXAddr+":25 failed", 2)
	if strings.Contains(lw.log(), "released") || remoteStarted(sys) != 0 || sys.Status()["holdremote"] != "all" {
		t.Fatalf("released although the probe failed: sendstatus %v; linkwatch log:\n%s", sys.Status(), lw.log())
	}
	sink, _ := n.startInternet(t)
	waitHold(t, tr, sys, false)
	if !harness.Eventually(dialBound, func() bool { got, _ := sink.Got(0, 10); return got == 10 }) {
		t.Fatalf("not delivered after the probe succeeded; log:\n%s", sys.Log())
	}
	t.Logf("linkwatch log:\n%s", lw.log())
	sys.Stop(t)
}

// TestDialupLinkwatchMetered: with -metered, a link NetworkManager reports
// as metered keeps mail held; when it is no longer metered, released; when
// it becomes metered again, held again.
func TestDialupLinkwatchMetered(t *testing.T) {
	needNetns(t)
	fake := t.TempDir()
	state := filepath.Join(fake, "metered")
	if err := os.WriteFile(state, []byte("yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1 $2 $3 $4 $5\" = '-t -g GENERAL.METERED device show' ] || exit 2\ncat %s\n", state)
	if err := os.WriteFile(filepath.Join(fake, "nmcli"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n := newDialNet(t)
	sink, _ := n.startInternet(t)
	tr, sys := linkwatchTree(t, n)
	lw := startLinkwatchEnv(t, n, tr, []string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin"},
		"-up-delay", "1s", "-recheck", "1s", "-metered")
	lw.wait(t, "metered", 1)
	// A metered link costs per byte: not one packet may leave while held.
	tx := n.host.TxPackets(t, n.hostIf)
	time.Sleep(dialQuiet)
	if strings.Contains(lw.log(), "released") || sink.conns.Load() != 0 || sys.Status()["holdremote"] != "all" {
		t.Fatalf("released on a metered link: sendstatus %v; linkwatch log:\n%s", sys.Status(), lw.log())
	}
	if d := n.host.TxPackets(t, n.hostIf) - tx; d != 0 {
		t.Fatalf("%d packets left through the metered link in %v while held", d, dialQuiet)
	}
	if err := os.WriteFile(state, []byte("no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitHold(t, tr, sys, false)
	if !harness.Eventually(dialBound, func() bool { got, _ := sink.Got(0, 10); return got == 10 }) {
		t.Fatalf("not delivered once the link was no longer metered; log:\n%s", sys.Log())
	}
	// The counter does see the delivery traffic (the check above is not vacuous).
	if after := n.host.TxPackets(t, n.hostIf); after <= tx {
		t.Errorf("tx packet counter did not move with the deliveries: %d -> %d", tx, after)
	} else {
		t.Logf("%d packets sent for the deliveries after release, none while held", after-tx)
	}
	// NetworkManager turns the flag on again while delivery is released
	// (the default route moved to a phone's hotspot): held again at the
	// next recheck (a released link was never asked again).
	if err := os.WriteFile(state, []byte("yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lw.wait(t, "metered", 2)
	waitHold(t, tr, sys, true)
	t.Logf("linkwatch log:\n%s", lw.log())
	sys.Stop(t)
}

// TestDialupLinkwatchStaleTimeouts: as TestDialupScriptsStaleTimeouts, but
// released by qmail-linkwatch, which runs qmailctl's release: that clears
// queue/lock/tcpto, so the MX is tried at once.
func TestDialupLinkwatchStaleTimeouts(t *testing.T) {
	needNetns(t)
	n := newDialNet(t)
	sink, _ := n.startInternet(t)
	tr, sys := linkwatchTree(t, n)
	n.linkDown(t)
	lw := startLinkwatch(t, n, tr, "-up-delay", "1s", "-recheck", "1s")
	lw.wait(t, "remote delivery held", 1)
	seedTimeouts(t, tcpto.Open(tr.Root), net.ParseIP(dialMXAddr))
	n.linkUp(t)
	waitHold(t, tr, sys, false)
	if !harness.Eventually(dialBound, func() bool { got, _ := sink.Got(0, 10); return got == 10 }) {
		got, _ := sink.Got(0, 10)
		t.Fatalf("%d of 10 delivered within %v of the release: stale tcpto entries kept the MX skipped", got, dialBound)
	}
	sys.Stop(t)
}

// TestDialupLinkwatchProbeAtStart: qmail-linkwatch starts on a link that is
// up but whose -probe fails, with remote delivery not held: it logs "still
// held" but holds nothing, so qmail-remote tries the dead link.
func TestDialupLinkwatchProbeAtStart(t *testing.T) {
	needNetns(t)
	n := newDialNet(t)
	tr := dialTree(t, dialDNSAddr)
	sys := startInHost(t, n, tr)
	lw := startLinkwatch(t, n, tr, "-up-delay", "1s", "-recheck", "1s",
		"-probe", dialMXAddr+":25", "-probe-timeout", "1s")
	lw.wait(t, "probe "+dialMXAddr+":25 failed", 1)
	if st := sys.Status()["holdremote"]; st != "all" {
		t.Fatalf("probe failing, sendstatus holdremote %q, want all; linkwatch log:\n%s", st, lw.log())
	}
	sys.Stop(t)
}
