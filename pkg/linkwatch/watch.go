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
	unknown state = iota
	held
	released
)

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
	var upSince time.Time // zero while the link is down
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
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
		rose := filter.update(snap, cfg.Iface)
		flapped := downSeen.Swap(false) || rose
		up, why := snap.LinkUp(cfg.Iface)
		now := h.Now()
		if !up {
			upSince = time.Time{}
			if cur != held {
				if err := act.Hold(why); err != nil {
					logf("warning: hold failed: %v", err)
				} else {
					logf("link down (%s): remote delivery held", why)
					cur = held
				}
			}
			resetTimer(timer, next)
			continue
		}
		if upSince.IsZero() || flapped {
			upSince = now
		}
		if wait := cfg.UpDelay - now.Sub(upSince); cur != released && wait > 0 {
			resetTimer(timer, wait)
			continue
		}
		// Asked on every look, released or not: the default route may
		// have moved to a metered device (a phone's hotspot), or
		// NetworkManager may have turned the flag on, while the link
		// stayed up.
		if cfg.meteredNow(h, snap) {
			if cur != held {
				if err := act.Hold("metered link"); err != nil {
					logf("warning: hold failed: %v", err)
				} else {
					logf("%s: remote delivery held", meteredWhy(why))
					cur = held
				}
			}
			resetTimer(timer, next)
			continue
		}
		if cur == released {
			resetTimer(timer, next)
			continue
		}
		if cfg.Probe != "" {
			if err := probe(cfg.Probe, h.Dial); err != nil {
				// The link carries nothing: hold, whatever the state was.
				if cur != held {
					if herr := act.Hold("probe failed"); herr != nil {
						logf("warning: hold failed: %v", herr)
					} else {
						cur = held
					}
				}
				logf("%s; remote delivery held", probeWhy(why, cfg.Probe, err))
				resetTimer(timer, minDur(next, 5*time.Second))
				continue
			}
		}
		if err := act.Release(why); err != nil {
			logf("warning: release failed: %v", err)
			resetTimer(timer, minDur(next, 5*time.Second))
			continue
		}
		logf("link up (%s) for %s: remote delivery released", why, now.Sub(upSince).Round(time.Second))
		cur = released
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
