package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"github.com/hqmail/hqmail/pkg/pollfd"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Config says what counts as online and how careful release is.
type Config struct {
	Iface        string        // the kernel's route must go through this interface ("" = any)
	UpDelay      time.Duration // the link must stay up this long before release
	Probe        string        // host:port that must accept a TCP connection before release
	ProbeTimeout time.Duration
	Metered      bool          // keep holding while NetworkManager says the link is metered
	Recheck      time.Duration // re-evaluate this often even without netlink events
}

// Actions hold and release remote delivery.
type Actions interface {
	Hold(reason string) error
	Release(reason string) error
}

// Hooks lets tests replace the kernel and the outside world.
type Hooks struct {
	Snapshot  func() (*Snapshot, error)
	Subscribe func() (int, error)
	Dial      func(network, addr string) (net.Conn, error)
	IsMetered func(iface string) bool
	Now       func() time.Time

	read      func() // tests: called after each message from Subscribe's socket is taken in
	readerEnd func() // tests: called when the reader of Subscribe's socket has ended
}

// DefaultHooks use netlink, net.Dial and nmcli.
func DefaultHooks(cfg Config) Hooks {
	d := &net.Dialer{Timeout: cfg.ProbeTimeout}
	return Hooks{Snapshot: Read, Subscribe: Subscribe, Dial: d.Dial, IsMetered: nmMetered, Now: time.Now}
}

// nmMetered asks NetworkManager whether the device is metered ("yes" or
// "yes (guessed)"). Without nmcli the link is taken as not metered.
func nmMetered(iface string) bool {
	if iface == "" {
		return false
	}
	out, err := exec.Command("nmcli", "-t", "-g", "GENERAL.METERED", "device", "show", iface).Output()
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), "yes")
}

// state of the watcher's decision.
type state int

const (
	unknown   state = iota
	held            // held, and the hold confirmed
	releasing       // a release is on its way (waiting for qmail-send)
	released        // released, and the release confirmed
)

// wantReader is an Actions that can tell what the last decision recorded
// (control/linkwant for ctlActions): a network hook may have recorded
// and applied the opposite of the watcher's since, and the watcher then
// acts again.
type wantReader interface {
	Wanted() (string, error)
}

// twoStep is an Actions whose release is recorded apart from its apply
// (ctlActions: qmailctl linkwant release, then linkwant apply). The
// record is made in the loop, the apply (which waits for qmail-send's
// confirmation) in the background: a hold decided after the release is
// then recorded after it, whatever order the goroutines run in, and
// the apply of either one applies the hold. Run in the background whole,
// a release whose goroutine started late could record itself after the
// hold and leave remote delivery released with the link down.
type twoStep interface {
	RecordRelease() error
	ApplyRelease() error
}

// releaseResult is the end of a release run in the background; seq says
// which action it was, so that one a hold has overtaken is let go.
type releaseResult struct {
	seq  int
	err  error
	done string // the line logged once it is done
}

// Run watches until ctx ends. logf receives one line per decision.
func Run(ctx context.Context, cfg Config, h Hooks, act Actions, logf func(format string, a ...any)) error {
	if cfg.Recheck <= 0 {
		cfg.Recheck = 30 * time.Second
	}
	events := make(chan struct{}, 1)
	// A look comes 50 ms after an event, and a carrier that drops for
	// 10 ms is up again by then: the reader notes every message that could
	// mean down (mayMeanDown), and the next look starts the up-delay over
	// even when it finds the link up. A loss shorter than the kernel's
	// rate limit for carrier reports shows only in a carrier-down count
	// that went up. Only the interfaces of the kernel's route count
	// (filter, refreshed at every look), so that containers coming and
	// going on other interfaces do not keep mail held.
	var downSeen atomic.Bool
	var filter linkFilter
	if h.Subscribe != nil {
		fd, err := h.Subscribe()
		if err != nil {
			return err
		}
		// The socket waits in the poller, so closing it at the end wakes
		// the reader (a blocking recvfrom would sleep on, and could read
		// whatever took the descriptor's number next).
		f := pollfd.File(fd, "netlink")
		go func() { <-ctx.Done(); f.Close() }()
		go func() {
			if h.readerEnd != nil {
				defer h.readerEnd()
			}
			buf := make([]byte, 64<<10)
			for {
				n, err := f.Read(buf)
				switch {
				case errors.Is(err, syscall.ENOBUFS):
					// The socket overflowed and messages were
					// lost, a carrier loss among them perhaps.
					downSeen.Store(true)
				case err != nil, n == 0: // closed
					return
				case filter.mayMeanDown(buf[:n]):
					downSeen.Store(true)
				}
				select {
				case events <- struct{}{}:
				default:
				}
				if h.read != nil {
					h.read()
				}
			}
		}()
	}
	cur := unknown
	// seq counts the actions begun: a release's result counts only when
	// no other action began after it.
	seq := 0
	releaseDone := make(chan releaseResult, 1)
	// holdNow holds remote delivery unless it is held already. A failed
	// hold leaves the state unknown rather than as it was: qmailctl may
	// have changed the flag and then failed (qmail-send did not confirm),
	// and the next look must act again whatever the last state was.
	holdNow := func(reason, logged string) {
		if cur == held {
			return
		}
		seq++ // a release still waiting for its confirmation is overtaken
		if err := act.Hold(reason); err != nil {
			logf("warning: hold failed: %v", err)
			cur = unknown
			return
		}
		if logged != "" {
			logf("%s", logged)
		}
		cur = held
	}
	var upSince time.Time // zero while the link is down
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-releaseDone:
			if r.seq != seq || cur != releasing {
				continue // overtaken by a hold: that one stands
			}
			if r.err != nil {
				logf("warning: release failed: %v", r.err)
				cur = unknown
				resetTimer(timer, minDur(cfg.Recheck, 5*time.Second))
			} else {
				logf("%s", r.done)
				cur = released
			}
			continue
		case <-events:
			// Let a burst of route changes settle before looking.
			time.Sleep(50 * time.Millisecond)
		case <-timer.C:
		}
		next := cfg.Recheck
		snap, err := h.Snapshot()
		if err != nil {
			logf("warning: %v", err)
			resetTimer(timer, next)
			continue
		}
		// What the last decision recorded must be the watcher's: a
		// hook that recorded (and applied) the opposite meanwhile is
		// answered by acting again, so that the flag follows the link.
		if w, ok := act.(wantReader); ok && (cur == held || cur == released) {
			want := map[state]string{held: "hold", released: "release"}[cur]
			if got, err := w.Wanted(); err != nil || got != want {
				if err == nil {
					err = fmt.Errorf("it says %s", got)
				}
				logf("the last decision recorded is not the watcher's (%s, want %s): acting again", err, want)
				cur = unknown
			}
		}
		rose := filter.update(snap, cfg.Iface)
		flapped := downSeen.Swap(false) || rose
		up, why := snap.LinkUp(cfg.Iface)
		now := h.Now()
		if !up {
			upSince = time.Time{}
			// At once, also while a release waits for qmail-send's
			// confirmation: the hold overtakes it.
			holdNow(why, fmt.Sprintf("link down (%s): remote delivery held", why))
			resetTimer(timer, next)
			continue
		}
		if upSince.IsZero() || flapped {
			upSince = now
		}
		if wait := cfg.UpDelay - now.Sub(upSince); cur != released && cur != releasing && wait > 0 {
			resetTimer(timer, wait)
			continue
		}
		// Asked on every look, released or not: the default route may
		// have moved to a metered device (a phone's hotspot), or
		// NetworkManager may have turned the flag on, while the link
		// stayed up.
		if cfg.meteredNow(h, snap) {
			holdNow("metered link", fmt.Sprintf("%s: remote delivery held", meteredWhy(why)))
			resetTimer(timer, next)
			continue
		}
		if cur == released || cur == releasing {
			resetTimer(timer, next)
			continue
		}
		if cfg.Probe != "" {
			if err := probe(cfg.Probe, h.Dial); err != nil {
				// The link carries nothing: hold, whatever the state was.
				holdNow("probe failed", "")
				logf("%s; remote delivery held", probeWhy(why, cfg.Probe, err))
				resetTimer(timer, minDur(next, 5*time.Second))
				continue
			}
		}
		// The release waits for qmail-send's confirmation (up to
		// qmailctl's -t) in the background: a down meanwhile holds at
		// once, it does not wait behind the release (docs/dialup.md).
		release := func() error { return act.Release(why) }
		if ts, ok := act.(twoStep); ok {
			if err := ts.RecordRelease(); err != nil {
				logf("warning: release failed: %v", err)
				cur = unknown
				resetTimer(timer, minDur(next, 5*time.Second))
				continue
			}
			release = ts.ApplyRelease
		}
		seq++
		cur = releasing
		done := fmt.Sprintf("link up (%s) for %s: remote delivery released", why, now.Sub(upSince).Round(time.Second))
		go func(r releaseResult) {
			r.err = release()
			select {
			case releaseDone <- r:
			case <-ctx.Done():
			}
		}(releaseResult{seq: seq, done: done})
		resetTimer(timer, next)
	}
}

// meteredNow reports whether, with -metered, NetworkManager calls the
// device of the link in snap metered: the daemon and -check ask it alike.
func (cfg Config) meteredNow(h Hooks, snap *Snapshot) bool {
	return cfg.Metered && h.IsMetered != nil && h.IsMetered(linkName(snap, cfg.Iface))
}

// meteredWhy and probeWhy word a link that is up (why) but not to be used,
// as the daemon logs it and -check prints it.
func meteredWhy(why string) string { return fmt.Sprintf("link up but metered (%s)", why) }

func probeWhy(why, probe string, err error) string {
	return fmt.Sprintf("link up (%s) but probe %s failed: %v", why, probe, err)
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
