package sched

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReleaseWhileStopped: a hold in force when qmail-send stopped and
// released before it starts again (qmailctl release exits 3; a link's up
// hook run before qmail) makes the held deliveries due at the start, as a
// live release does. They waited for their retry time instead (QA: mail
// delayed hours).
func TestReleaseWhileStopped(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "rs@remote.example")
	e := start(t, root, ok, later)
	e.waitLog("deferral: later/", 1) // next try some 400 s away
	ctl(t, root, "holdremote", "")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote held, 1 message waiting", 1)
	e.stop()
	if err := os.Remove(filepath.Join(root, "control", "holdremote")); err != nil {
		t.Fatal(err)
	}
	e2 := start(t, root, ok, ok)
	e2.waitLog("end msg "+fmt.Sprint(id), 1)
	e2.waitLog("hold: remote released, 1 message due now\n", 1)
}

// TestDomainReleasedWhileStopped: a domain taken off holdremote while
// qmail-send was stopped, the list not emptied, is released at the start
// as a HUP would release it: its mail is due at once. The hold log keeps
// no domains, and it waited for its retry time (left alone last session).
func TestDomainReleasedWhileStopped(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "rs@lab.example")
	e := start(t, root, ok, later)
	e.waitLog("deferral: later/", 1) // next try some 400 s away
	ctl(t, root, "holdremote", "lab.example\nvpn.example\n")
	e.sigs <- syscall.SIGHUP
	e.waitLog("hold: remote held for lab.example vpn.example", 1)
	e.stop()
	ctl(t, root, "holdremote", "vpn.example\n")
	e2 := start(t, root, ok, ok)
	e2.waitLog("end msg "+fmt.Sprint(id), 1)
	e2.waitLog("hold: remote released except vpn.example, 1 message due now\n", 1)
}

// TestReleaseAtStart: only a hold open at the last stop whose flag is gone
// (or holds less) at the start makes the channel due; any other start
// keeps qmail's retry schedule.
func TestReleaseAtStart(t *testing.T) {
	all, some := holdState{remoteAll: true}, holdState{remoteDoms: []string{"vpn.example"}}
	for _, tc := range []struct {
		name      string
		atStop    [3]bool  // local, remote, remotesome open in the log
		doms      []string // the domains the last sendstatus says were held
		now       holdState
		due       [2]bool // local, remote made due
		logged    string
		unchanged bool
	}{
		{name: "no hold", unchanged: true},
		{name: "still held", atStop: [3]bool{true, true, true}, now: holdState{local: true, remoteAll: true}, unchanged: true},
		{name: "held since the stop only", now: holdState{local: true, remoteAll: true}, unchanged: true},
		{name: "local released", atStop: [3]bool{true, false, false}, due: [2]bool{true, false},
			logged: "hold: local released, 1 message due now\n"},
		{name: "remote released", atStop: [3]bool{false, true, true}, due: [2]bool{false, true},
			logged: "hold: remote released, 1 message due now\n"},
		{name: "all to some", atStop: [3]bool{false, true, true}, now: some, due: [2]bool{false, true},
			logged: "hold: remote released except vpn.example, 1 message due now\n"},
		{name: "some released", atStop: [3]bool{false, false, true}, due: [2]bool{false, true},
			logged: "hold: remote released, 1 message due now\n"},
		{name: "some to all", atStop: [3]bool{false, false, true}, now: all, unchanged: true},
		{name: "a domain dropped", atStop: [3]bool{false, false, true}, doms: []string{"lab.example", "vpn.example"},
			now: some, due: [2]bool{false, true},
			logged: "hold: remote released except vpn.example, 1 message due now\n"},
		{name: "same domains", atStop: [3]bool{false, false, true}, doms: []string{"vpn.example"}, now: some, unchanged: true},
		{name: "a domain added", atStop: [3]bool{false, false, true}, doms: []string{"vpn.example"},
			now: holdState{remoteDoms: []string{"lab.example", "vpn.example"}}, unchanged: true},
		{name: "domains not known", atStop: [3]bool{false, false, true}, now: some, unchanged: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log lines
			s := &Sched{root: t.TempDir(), log: logger{w: &log}, recent: 1000,
				holds: &holdLog{heldAtStop: tc.atStop, domsAtStop: tc.doms}, cf: &config{hold: tc.now}}
			for c := range 2 {
				s.sched[c].insert(7, 5000)
			}
			s.releaseAtStart()
			for c := range 2 {
				e, _ := s.sched[c].min()
				if got := e.due == 1000; got != tc.due[c] {
					t.Errorf("%s due at %d, want due now: %v", chanName[c], e.due, tc.due[c])
				}
			}
			if tc.unchanged && log.String() != "" {
				t.Errorf("log:\n%s\nwant nothing", log.String())
			}
			if tc.logged != "" && !strings.Contains(log.String(), tc.logged) {
				t.Errorf("log:\n%s\nwant %q", log.String(), tc.logged)
			}
		})
	}
}

// TestPruneKeepsForRaisedLifetime: a period is not dropped for the
// queuelifetime in force when it may still matter under a longer one set
// later (QA: a 10-day hold dropped under a 1-day queuelifetime, then the
// default 7 days restored, and a message held 10 of its 13 days bounced).
func TestPruneKeepsForRaisedLifetime(t *testing.T) {
	const day = 86400
	now := int64(1_000_000_000)
	held := period{chanRemote, now - 12*day, now - 2*day}

	// The QA case: no message queued at the start, held 10 days up to
	// 2 days ago, a queuelifetime of one day; a hold and a release.
	h := &holdLog{lifetime: day, oldest: now}
	h.periods = []period{held}
	h.set(chanRemote, true, now)
	h.set(chanRemote, false, now+10)
	if h.periods[0] != held {
		t.Fatalf("periods %v: the 10-day hold was dropped", h.periods)
	}
	// Under the default queuelifetime, restored later, a message 13 days
	// old held for 10 of them is not dying.
	if birth := now - 13*day; now > birth+7*day+h.heldWithin(chanRemote, birth, now) {
		t.Errorf("a message held 10 of its 13 days would bounce")
	}

	// Older than any horizon, but a message queued at the start (born 40
	// days ago) was born before it ended: kept.
	old := period{chanRemote, now - 35*day, now - 10*day}
	h = &holdLog{lifetime: day, oldest: now - 40*day}
	h.periods = []period{old}
	h.set(chanLocal, true, now)
	if h.periods[0] != old {
		t.Fatalf("periods %v: a period a queued message needs was dropped", h.periods)
	}

	// Needed by no message (all born after it ended) and older than the
	// horizon: dropped.
	h = &holdLog{lifetime: day, oldest: now - 9*day}
	h.periods = []period{old}
	h.set(chanLocal, true, now)
	if h.periods[0] == old {
		t.Errorf("periods %v: a period no message can need is kept", h.periods)
	}
	// A birth that could not be read: nothing is dropped for its age.
	h = &holdLog{lifetime: day, oldest: now}
	h.noteBirth(0)
	h.periods = []period{old}
	h.set(chanLocal, true, now)
	if h.periods[0] != old {
		t.Errorf("periods %v: dropped while a birth is not known", h.periods)
	}
}

// TestPruneKeepsForQueuedMessage: the births of the messages queued at
// the start are what prune goes by: a period older than queuelifetime
// and the horizon is kept while a message born before its end is queued.
func TestPruneKeepsForQueuedMessage(t *testing.T) {
	root := newTree(t)
	id := queueMsg(t, root, "ann@example.org", "x@remote.example")
	e := start(t, root, ok, later)
	e.waitLog("deferral: later/", 1)
	e.stop()
	now := time.Now().Unix()
	born := time.Unix(now-40*86400, 0)
	os.Chtimes(filepath.Join(root, "queue", fnSplit("info", id)), born, born)
	hl := filepath.Join(root, "queue", "bounce", HoldLogName)
	line := fmt.Sprintf("remote %d %d\n", now-35*86400, now-10*86400)
	if err := os.WriteFile(hl, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl(t, root, "queuelifetime", "86400\n")
	e2 := start(t, root, ok, later)
	e2.waitLog("status: local ", 1)
	ctl(t, root, "holdlocal", "") // a change: the log is pruned
	e2.sigs <- syscall.SIGHUP
	e2.waitLog("hold: local held", 1)
	e2.stop()
	if b, _ := os.ReadFile(hl); !strings.Contains(string(b), line) {
		t.Errorf("hold log %q: the period the queued message needs was dropped", b)
	}
}

// TestHeldWithinUnion: overlapping periods count their common time once
// (the held time is the length of their union), in either order.
func TestHeldWithinUnion(t *testing.T) {
	const day = 86400
	now := int64(1_000_000_000)
	a, b := period{chanRemote, now - 20*day, now - 10*day}, period{chanRemote, now - 15*day, now - 5*day}
	inner := period{chanRemote, now - 14*day, now - 12*day}
	open := period{chanRemote, now - 6*day, 0}
	other := period{chanLocal, now - 30*day, now}
	for _, tc := range []struct {
		name    string
		periods []period
		birth   int64
		want    int64
	}{
		{"overlap", []period{a, b}, 0, 15 * day},
		{"overlap, out of order", []period{b, a}, 0, 15 * day},
		{"nested", []period{a, inner, b}, 0, 15 * day},
		{"open", []period{other, a, b, open}, 0, 20 * day},
		{"after birth", []period{b, other, a}, now - 12*day, 7 * day},
		{"apart", []period{a, {chanRemote, now - 4*day, now - 3*day}}, 0, 11 * day},
		{"touching", []period{{chanRemote, now - 4*day, now - 3*day}, {chanRemote, now - 3*day, now - 2*day}}, 0, 2 * day},
		{"none", []period{other}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &holdLog{periods: tc.periods}
			if got := h.heldWithin(chanRemote, tc.birth, now); got != tc.want {
				t.Errorf("held %d s (%.1f days), want %d (%.1f days)", got, float64(got)/day, tc.want, float64(tc.want)/day)
			}
		})
	}
}
