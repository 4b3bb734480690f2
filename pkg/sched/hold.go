package sched

import (
	"bytes"
	"cmp"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcptofile"
)

// HoldLogName is the file, under queue/bounce/ (owned by qmails; its name
// is not numeric so no message can clash with it), where qmail-send keeps
// the periods during which a channel was held. Lines:
// "<kind> <start> <end>", Unix seconds, end 0 while ongoing; kind is
// "local", "remote" (all remote delivery held: left out of queuelifetime)
// or "remotesome" (any remote hold, domains only included: the "since" of
// sendstatus). Unknown kinds are skipped, so older versions read it.
const HoldLogName = "holdperiods"

// kindRemoteSome is the period kind of any remote hold, beside chanLocal
// and chanRemote (whole-channel holds).
const kindRemoteSome = 2

var periodName = [3]string{"local", "remote", "remotesome"}

// maxPeriods bounds the hold log (about 25 bytes a line, rewritten at
// each change). Periods no message can need any more go first
// (holdLog.prune); past the bound, close periods are merged
// (holdLog.squeeze), so it only matters for more holds than this within
// the life of the oldest queued message (or pruneHorizon), and then errs
// on the side of keeping mail.
const maxPeriods = 10000

type period struct {
	c          int
	start, end int64 // end 0: still held
}

// holdLog is the persistent record of hold periods, used to leave held
// time out of the queuelifetime computation.
//
// A file that exists but cannot be read (wrong owner, a directory) is
// neither thrown away nor replaced: err says why, the held time it records
// is unknown, so no message is bounced as too old until it can be read
// (held mail must not bounce for time it was held), and it is read again
// at every HUP.
type holdLog struct {
	path     string
	periods  []period
	err      error
	lifetime int64 // queuelifetime, for prune; 0: no pruning
	started  int64 // when this qmail-send recorded the flags it started with
	// oldest is a time no queued message was born before (prune): the
	// start, lowered to each birth found in info/ at start. 0: not
	// known (a message whose files could not be looked at), and no
	// period is dropped for its age.
	oldest int64
	// heldAtStop marks the kinds whose period was open in the log at
	// start: held when the last qmail-send stopped (startup).
	heldAtStop [3]bool
	// domsAtStop are the remote domains the last qmail-send held, as its
	// sendstatus says (lastHeldDomains); nil when it held none, all, or
	// is not known.
	domsAtStop []string
}

// pruneHorizon is the least age, beside the time held after it, at which
// a period may be dropped, whatever queuelifetime says: the default
// queuelifetime (qmail's 7 days). See prune.
const pruneHorizon = 604800

// noteBirth lowers h.oldest to birth, the birth of a queued message (0:
// a message whose birth could not be read). h may be nil (a Sched built
// by hand in a test).
func (h *holdLog) noteBirth(birth int64) {
	if h != nil && birth < h.oldest {
		h.oldest = max(birth, 0)
	}
}

func loadHoldLog(queue string) *holdLog {
	h := &holdLog{path: filepath.Join(queue, "bounce", HoldLogName)}
	b, err := qhome.ReadRegular(h.path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			h.err = err
		}
		return h
	}
	// Line by line without a length limit: a line that is no period (a
	// damaged one, however long) is skipped, and the periods after it
	// still count. A bufio.Scanner stopped at a line over 64 KB without
	// a word, and the held time of every later period was lost: held
	// mail could bounce early (QA fuzz).
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) != 3 {
			continue
		}
		c := -1
		switch f[0] {
		case "local":
			c = chanLocal
		case "remote":
			c = chanRemote
		case "remotesome":
			c = kindRemoteSome
		}
		start, err1 := strconv.ParseInt(f[1], 10, 64)
		end, err2 := strconv.ParseInt(f[2], 10, 64)
		if c < 0 || err1 != nil || err2 != nil {
			continue
		}
		h.periods = append(h.periods, period{c, start, end})
	}
	return h
}

// open returns the index of channel c's ongoing period, or -1.
func (h *holdLog) open(c int) int {
	for i := len(h.periods) - 1; i >= 0; i-- {
		if h.periods[i].c == c && h.periods[i].end == 0 {
			return i
		}
	}
	return -1
}

// since returns when channel c's current hold began, 0 if not held.
func (h *holdLog) since(c int) int64 {
	if i := h.open(c); i >= 0 {
		return h.periods[i].start
	}
	return 0
}

// set records that channel c is (or is not) held from time t on, and
// reports whether that changed the periods.
func (h *holdLog) set(c int, held bool, t int64) bool {
	i := h.open(c)
	switch {
	case held && i < 0:
		h.periods = append(h.periods, period{c, t, 0})
	case !held && i >= 0:
		h.periods[i].end = max(t, h.periods[i].start)
	default:
		return false
	}
	h.prune(t)
	h.squeeze()
	return true
}

// squeeze merges, while the log is over maxPeriods, the two periods of one
// kind with the shortest gap between them. The gap then counts as held,
// which can keep a message longer than it should stay, never bounce it
// early (dropping the oldest period did that: a long hold still needed
// went behind the short ones of a link that came and went all week).
// The merged period spans both, whatever their order: after the clock
// went back a later line can lie before an earlier one in time.
func (h *holdLog) squeeze() {
	for len(h.periods) > maxPeriods {
		best, bi, bj := int64(0), -1, -1
		last := [3]int{-1, -1, -1}
		for j, p := range h.periods {
			if i := last[p.c]; i >= 0 && h.periods[i].end != 0 {
				if gap := periodGap(h.periods[i], p); bi < 0 || gap < best {
					best, bi, bj = gap, i, j
				}
			}
			last[p.c] = j
		}
		if bi < 0 {
			h.periods = append([]period(nil), h.periods[len(h.periods)-maxPeriods:]...)
			return
		}
		p, q := h.periods[bi], h.periods[bj]
		p.start = min(p.start, q.start)
		if q.end == 0 {
			p.end = 0 // still open
		} else {
			p.end = max(p.end, q.end)
		}
		h.periods[bi] = p
		h.periods = append(h.periods[:bj], h.periods[bj+1:]...)
	}
}

// periodGap is the time between two periods, closed p and q (q may be
// open), in either order; negative when they overlap.
func periodGap(p, q period) int64 {
	qend := q.end
	if qend == 0 {
		qend = max(q.start, p.end) // open: reaches past p
	}
	return max(p.start, q.start) - min(p.end, qend)
}

// inOrder reports, per kind, whether its periods are in time order
// without overlap, as records made with a steady clock are. prune's
// reasoning needs that; after the clock went back it may not hold, and
// then nothing of that kind is dropped for its age (squeeze still bounds
// the log).
func (h *holdLog) inOrder() [3]bool {
	ok := [3]bool{true, true, true}
	var end [3]int64
	var open [3]bool
	for _, p := range h.periods {
		c := p.c
		if open[c] || p.start < end[c] {
			ok[c] = false
		}
		if p.end == 0 {
			open[c] = true
		} else {
			end[c] = max(end[c], p.end)
		}
	}
	return ok
}

// prune drops the periods no message can need any more. A period that
// ended at E matters only to messages born before E. Every message queued
// at the start was looked at then (h.oldest: its birth), and every later
// one is born after the start, so a period that ended before h.oldest is
// needed by no message. The queuelifetime in force is not what decides:
// it may be raised later, and a period dropped under a short one made
// mail bounce early after the raise (QA).
//
// A period must also have ended more than max(queuelifetime,
// pruneHorizon) plus the time its kind was held after it before now: a
// message born before E is dying with or without it then under any
// queuelifetime up to that, since the time it was held before E is at
// most E - birth. That guards against births set back after the start
// (the clock, an info file's time changed by hand). The periods of a kind
// are in time order and do not overlap, so the time held after each is
// the sum of the later ones (when they are not, none is dropped for its
// age: inOrder).
//
// A closed "remotesome" period is never needed (only the open one dates
// the hold in sendstatus), nor is a closed one of no length.
func (h *holdLog) prune(now int64) {
	ordered := h.inOrder()
	var after [3]int64 // per kind: held time after the period at hand
	drop := make([]bool, len(h.periods))
	for i := len(h.periods) - 1; i >= 0; i-- {
		p := h.periods[i]
		end := p.end
		switch {
		case end == 0:
			end = now
		case p.c == kindRemoteSome || end <= p.start:
			drop[i] = true
		case h.lifetime > 0 && ordered[p.c] && end < h.oldest && end+max(h.lifetime, pruneHorizon)+after[p.c] < now:
			drop[i] = true
		}
		after[p.c] += max(end-p.start, 0)
	}
	keep := h.periods[:0]
	for i, p := range h.periods {
		if !drop[i] {
			keep = append(keep, p)
		}
	}
	h.periods = keep
}

// save replaces the file durably: the periods decide when held messages
// bounce, so a crash must leave the old file or the new one, whole.
func (h *holdLog) save() error {
	if h.err != nil {
		return nil // not replaced until it has been read (holdLog)
	}
	var b strings.Builder
	for _, p := range h.periods {
		b.WriteString(periodName[p.c] + " " + strconv.FormatInt(p.start, 10) + " " + strconv.FormatInt(p.end, 10) + "\n")
	}
	return qhome.ReplaceFile(h.path, []byte(b.String()), 0o600, nil)
}

// heldWithin returns the seconds channel c was held within [birth, now]:
// the length of the union of its periods there, so that time two
// periods overlap on (recorded after the clock went back, or written by
// hand) counts once.
func (h *holdLog) heldWithin(c int, birth, now int64) int64 {
	var sum, lo, hi int64 // [lo, hi): the run of overlapping periods at hand
	run := false
	sorted := true
	last := int64(-1 << 63)
	for _, p := range h.periods {
		if p.c == c {
			sorted = sorted && p.start >= last
			last = p.start
		}
	}
	periods := h.periods
	if !sorted {
		periods = slices.Clone(periods)
		slices.SortStableFunc(periods, func(a, b period) int { return cmp.Compare(a.start, b.start) })
	}
	for _, p := range periods {
		if p.c != c {
			continue
		}
		end := p.end
		if end == 0 {
			end = now
		}
		plo, phi := max(p.start, birth), min(end, now)
		switch {
		case phi <= plo:
		case !run || plo > hi:
			sum += hi - lo
			lo, hi, run = plo, phi, true
		default:
			hi = max(hi, phi)
		}
	}
	return sum + hi - lo
}

// startup brings the hold log in line with the flags read at start. A
// hold whose period is not open in the log was set while no qmail-send
// ran (qmailctl hold exits 3 and says the next start honours it; a
// network hook run at shutdown after qmail has stopped): it is dated from
// when its flag was written (heldFrom), so that the time the host was
// down with it counts as held, as it does for a hold set before the stop,
// whose period stays open through it. Dated from this start, held mail
// queued before a long shutdown was dying at the release and bounced at
// its first temporary failure.
//
// The kinds whose period is open in the log were held when the last
// qmail-send stopped: heldAtStop, for releaseAtStart.
func (h *holdLog) startup(s *Sched, now int64) {
	h.started = now
	for c := range h.heldAtStop {
		h.heldAtStop[c] = h.open(c) >= 0
	}
	if h.heldAtStop[kindRemoteSome] {
		h.domsAtStop = lastHeldDomains(s.path("lock/sendstatus"))
	}
	s.holdLogAlert()
	hs := s.cf.hold
	var from [3]int64
	if hs.local {
		from[chanLocal] = s.heldFrom("holdlocal", now)
	}
	if hs.remoteAny() {
		from[kindRemoteSome] = s.heldFrom("holdremote", now)
		if hs.remoteAll {
			from[chanRemote] = from[kindRemoteSome]
		}
	}
	changed := false
	for c, t := range from {
		if t > 0 && t < now && h.open(c) < 0 {
			changed = h.set(c, true, t) || changed
		}
	}
	if changed {
		s.saveHoldLog()
	}
	s.recordHolds(hs, now)
}

// releaseAtStart makes due at once the deliveries of a channel whose hold
// was released while no qmail-send ran: its period was open at the last
// stop (or crash) and its flag is gone now (qmailctl release exits 3 and
// says the next start honours it; a link's up hook run before qmail
// starts). A live release does the same (applyHold), and qmailctl(8)
// promises it; without it held mail waited for its retry time, hours
// after the link came up (QA). Only such a release does it: a start
// without one keeps qmail's retry schedule. For a partial remote hold
// the log records no domains: the last sendstatus (read before this start
// writes its own) gives those that were held, and a domain dropped from
// the list while stopped is released as a live HUP would release it (the
// whole channel made due). Without a sendstatus that names them, only
// the end of the hold (or of a hold of everything) is seen, and such
// domains wait for their retry time.
func (s *Sched) releaseAtStart() {
	was, hs := s.holds.heldAtStop, s.cf.hold
	if was[chanLocal] && !hs.local {
		s.releaseChan(chanLocal)
		s.log.line("hold: local released, ", s.dueNow(chanLocal), " due now", s.heldByID(chanLocal))
	}
	dropped := false
	if was[kindRemoteSome] && !hs.remoteAll {
		for _, d := range s.holds.domsAtStop {
			dropped = dropped || !contains(hs.remoteDoms, d)
		}
	}
	if !(was[chanRemote] && !hs.remoteAll || was[kindRemoteSome] && !hs.remoteAny() || dropped) {
		return
	}
	s.forgetTimeouts()
	s.releaseChan(chanRemote)
	if hs.remoteAny() {
		s.log.line("hold: remote released except", s.holdDesc(chanRemote, hs)[4:], ", ", s.dueNow(chanRemote), " due now", s.heldByID(chanRemote))
	} else {
		s.log.line("hold: remote released, ", s.dueNow(chanRemote), " due now", s.heldByID(chanRemote))
	}
}

// lastHeldDomains reads the remote domains a sendstatus file says are
// held (its "holdremote" line): nil for "all", "no", no such line or a
// file that cannot be read.
func lastHeldDomains(name string) []string {
	b, err := qhome.ReadRegular(name)
	if err != nil {
		return nil
	}
	for _, l := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(l, "holdremote ")
		if !ok {
			continue
		}
		if v == "all" || v == "no" {
			return nil
		}
		return strings.Fields(v)
	}
	return nil
}

// heldFrom dates a hold flag found at start without an open period: the
// flag file's modification time, but not before the last qmail-send's
// last status write (queue/lock/sendstatus, rewritten at its TERM: until
// then it ran without the flag), nor after now.
func (s *Sched) heldFrom(flag string, now int64) int64 {
	fi, err := os.Stat(filepath.Join(s.ctl.Path, flag))
	if err != nil {
		return now
	}
	t := fi.ModTime().Unix()
	if st, err := os.Stat(s.path("lock/sendstatus")); err == nil {
		t = max(t, st.ModTime().Unix())
	}
	return min(t, now)
}

// holdLogAlert says that the hold log cannot be read, and what follows.
func (s *Sched) holdLogAlert() {
	if err := s.holds.err; err != nil {
		s.log.line("alert: unable to read bounce/", HoldLogName, ": ", qerr.Bare(err).Error(),
			"; no message is bounced for queuelifetime until it can be read (qmail-install -check -root ", safe(s.root), " says how; then send HUP)")
	}
}

// rereadHoldLog reads a hold log that could not be read before (at HUP).
// The periods it records are taken, and what happened since the start is
// recorded on top of them.
func (s *Sched) rereadHoldLog() {
	if s.holds.err == nil {
		return
	}
	h := loadHoldLog(s.queue)
	h.lifetime, h.oldest = s.cf.lifetime, s.holds.oldest
	if h.err != nil {
		s.holds.err = h.err
		s.holdLogAlert()
		return
	}
	// A period the file has open was open when the last qmail-send
	// stopped; this one's record of that kind starts at its start. Held
	// at the start too: one period, through the stop (as a readable file
	// gives at start); else it ended at the start. The periods must not
	// overlap, or their time would count twice.
	mem, started := s.holds.periods, s.holds.started
	used := make([]bool, len(mem))
	for c := range 3 {
		i := h.open(c)
		if i < 0 {
			continue
		}
		h.periods[i].end = max(started, h.periods[i].start)
		for j, p := range mem {
			if p.c == c && p.start == started {
				h.periods[i].end, used[j] = p.end, true
				break
			}
		}
	}
	for j, p := range mem {
		switch {
		case used[j]:
		case p.end == 0:
			h.set(p.c, true, p.start)
		default:
			h.periods = append(h.periods, p)
		}
	}
	h.started = started
	h.prune(s.now())
	h.squeeze()
	s.holds = h
	s.log.line("info: bounce/", HoldLogName, " read again; queuelifetime applies")
	s.saveHoldLog()
}

// recordHolds records the hold flags hs from time t on.
func (s *Sched) recordHolds(hs holdState, t int64) {
	if s.holds.change(hs, t) {
		s.saveHoldLog()
	}
}

// saveHoldLog writes the hold log (saveState).
func (s *Sched) saveHoldLog() {
	s.saveState(stateHoldLog, s.holds.save(), true)
}

// change sets the periods for the hold flags hs from time t on and
// reports whether they changed (to be saved). Only a hold of the whole
// remote channel stops the queuelifetime clock: a message to a dead host
// must bounce in time while some unrelated domain (a VPN's) is held, and
// the held domain's recipients are not tried, so not bounced, while held;
// after the release each gets its attempt.
func (h *holdLog) change(hs holdState, t int64) bool {
	changed := h.set(chanLocal, hs.local, t)
	changed = h.set(chanRemote, hs.remoteAll, t) || changed
	return h.set(kindRemoteSome, hs.remoteAny(), t) || changed
}

// heldAtAll reports whether anything on channel c is held.
func (s *Sched) heldAtAll(c int) bool {
	if c == chanRemote {
		return s.cf.hold.remoteAny()
	}
	return s.cf.hold.local
}

// logHeld logs the channels held at start.
func (s *Sched) logHeld() {
	for c := 0; c < 2; c++ {
		if s.heldAtAll(c) {
			s.log.line("hold: ", chanName[c], " held", s.holdDesc(c, s.cf.hold), ", ", plural(s.queued(c), "message"), " waiting")
		}
	}
}

// holdDesc names the held domains of a partial remote hold. They are
// valid domain names (pkg/hold keeps no other line), so safe to log as
// they are.
func (s *Sched) holdDesc(c int, hs holdState) string {
	if c == chanRemote && !hs.remoteAll && len(hs.remoteDoms) > 0 {
		return " for " + strings.Join(hs.remoteDoms, " ")
	}
	return ""
}

// dueNow is the count of a release's log line ("N messages"): the messages
// of channel c made due, without those held by id (qmailctl hold), which
// stay held.
func (s *Sched) dueNow(c int) string { return plural(s.queued(c)-s.heldByIDCount(c), "message") }

// heldByID is what a release's log line adds for the messages of channel c
// held by id: ", N held by id", or nothing.
func (s *Sched) heldByID(c int) string {
	if n := s.heldByIDCount(c); n > 0 {
		return ", " + itoa(n) + " held by id"
	}
	return ""
}

// heldByIDCount counts the messages of channel c held by id: those taken
// off the schedule (parked), and those still on it, not yet tried since
// their hold.
func (s *Sched) heldByIDCount(c int) int {
	n := s.mc.nparked(c)
	if s.mc == nil || len(s.mc.held) == 0 {
		return n
	}
	for _, e := range s.sched[c].h {
		if s.mc.isHeld(e.id) {
			n++
		}
	}
	return n
}

// queued counts messages on channel c: schedule entries plus open jobs.
func (s *Sched) queued(c int) int {
	n := s.sched[c].len() + s.mc.nparked(c)
	for j := range s.jobs {
		if s.jobs[j].used && s.jobs[j].channel == c {
			n++
		}
	}
	return n
}

// releaseChan makes every message of channel c due now.
func (s *Sched) releaseChan(c int) {
	s.sched[c].allDue(s.recent)
	for j := range s.jobs {
		if s.jobs[j].used && s.jobs[j].channel == c {
			s.jobs[j].retry = s.recent
		}
	}
}

func (s *Sched) handleALRM() {
	s.sched[chanLocal].allDue(s.recent)
	s.sched[chanRemote].allDue(s.recent)
	s.mc.parkedDue(s.recent)
	s.generation++
	s.writeStatus()
}

// handleHUP re-reads locals, virtualdomains and the hold flags
// (spec/scheduler.md §11, §13).
func (s *Sched) handleHUP() {
	s.generation++
	if s.opt.Trigger {
		s.openFIFOs() // the ones that were missing at start
	}
	s.rereadFailed = s.rereadFailed[:0]
	defer s.writeStatus()
	if st, err := os.Stat(s.root); err != nil || !st.IsDir() {
		s.log.line("alert: unable to reread controls: unable to switch to home directory")
		s.rereadFailed = append(s.rereadFailed, "controls")
		return
	}
	// As qmail: locals defaults to control/me as read at start; without
	// it a missing locals is a failed re-read, the old list stays.
	locals, ok, err := s.ctl.Locals(s.cf.me, s.cf.haveMe)
	if err != nil || !ok {
		s.log.line("alert: unable to reread control/locals", rereadWhy(err))
		s.rereadFailed = append(s.rereadFailed, "locals")
	} else if vd, err := readVdoms(s.ctl); err != nil {
		s.log.line("alert: unable to reread control/virtualdomains", rereadWhy(err))
		s.rereadFailed = append(s.rereadFailed, "virtualdomains")
	} else {
		s.cf.locals, s.cf.vdoms = locals, vd
	}
	s.rereadHoldLog()
	nh := s.cf.hold
	if l, err := readHoldLocal(s.ctl); err != nil {
		s.log.line("alert: unable to reread control/holdlocal", rereadWhy(err))
		s.rereadFailed = append(s.rereadFailed, "holdlocal")
	} else {
		nh.local = l
	}
	if all, doms, err := readHoldRemote(s.ctl); err != nil {
		s.rereadFailed = append(s.rereadFailed, "holdremote")
		if _, serr := os.Lstat(filepath.Join(s.ctl.Path, "holdremote")); serr == nil {
			// It is there but its domains cannot be known: the
			// safe side, as for a flag that lists nothing usable
			// and as qmail-rspawn reads it, is to hold them all.
			s.log.line("alert: unable to reread control/holdremote", rereadWhy(err),
				"; holding all remote delivery until it can be read")
			nh.remoteAll, nh.remoteDoms = true, nil
		} else {
			s.log.line("alert: unable to reread control/holdremote", rereadWhy(err))
		}
	} else {
		nh.remoteAll, nh.remoteDoms = all, doms
	}
	s.applyHold(nh)
}

// rereadWhy is what follows qmail's "alert: unable to reread control/X"
// (spec/scheduler.md, kept as the start of the line): the reason in
// qmail's words as the start alert gives it (readReason), ": access
// denied" for a file qmails may not read, ": not a regular file" for a
// FIFO; "" when there is no error to tell (locals missing without a
// control/me).
func rereadWhy(err error) string {
	if err == nil {
		return ""
	}
	return ": " + readReason(err)
}

// applyHold switches to new hold flags, logging each change and making
// released messages due at once.
func (s *Sched) applyHold(nh holdState) {
	old := s.cf.hold
	s.cf.hold = nh
	s.recordHolds(nh, s.recent)
	if old.local != nh.local {
		if nh.local {
			s.log.line("hold: local held, ", plural(s.queued(chanLocal), "message"), " waiting")
		} else {
			s.releaseChan(chanLocal)
			s.log.line("hold: local released, ", s.dueNow(chanLocal), " due now", s.heldByID(chanLocal))
		}
	}
	if old.remoteAll == nh.remoteAll && (nh.remoteAll || sameDomains(old.remoteDoms, nh.remoteDoms)) {
		// The same hold, whatever the order of the lines: no change
		// to log (spec/scheduler.md: one line per change).
		return
	}
	// Something is released when the new flags hold less: everything was
	// held and now only some domains are, or a held domain is no longer
	// listed. Going to "hold everything" releases nothing.
	released := false
	if !nh.remoteAll {
		released = old.remoteAll
		for _, d := range old.remoteDoms {
			if !contains(nh.remoteDoms, d) {
				released = true
			}
		}
	}
	n := plural(s.queued(chanRemote), "message")
	if released {
		s.forgetTimeouts()
	}
	switch {
	case !nh.remoteAny():
		s.releaseChan(chanRemote)
		s.log.line("hold: remote released, ", s.dueNow(chanRemote), " due now", s.heldByID(chanRemote))
	case released:
		s.releaseChan(chanRemote)
		s.log.line("hold: remote released except", s.holdDesc(chanRemote, nh)[4:], ", ", s.dueNow(chanRemote), " due now", s.heldByID(chanRemote))
	default:
		s.log.line("hold: remote held", s.holdDesc(chanRemote, nh), ", ", n, " waiting")
	}
}

// forgetTimeouts clears queue/lock/tcpto on a remote release: connect
// time-outs seen while the link was down say nothing about the hosts, and
// would make the released deliveries skip them for up to an hour. The
// table belongs to qmailr; qmail-install makes it writable by group qmail
// for this. A failure only warns: qmailctl release clears it too.
func (s *Sched) forgetTimeouts() {
	if err := tcptofile.Clear(filepath.Join(s.root, tcptofile.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.line("warning: unable to clear lock/tcpto; timed-out hosts may be skipped for a while")
	}
}

// sameDomains reports whether two domain lists hold the same domains, in
// any order, a duplicate counting once (compared as contains compares
// them, as releaseAtStart does).
func sameDomains(a, b []string) bool {
	for _, d := range a {
		if !contains(b, d) {
			return false
		}
	}
	for _, d := range b {
		if !contains(a, d) {
			return false
		}
	}
	return true
}

func contains(l []string, x string) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

// writeStatus rewrites queue/lock/sendstatus in place (qmails may not
// create files in lock/, so no rename). Anything but a regular file there
// is refused (openLockFile) and reported as a failed write.
func (s *Sched) writeStatus() {
	if s.mutex.displaced {
		return // the file is another qmail-send's now (checkMutex)
	}
	f, err := openLockFile(s.path("lock/sendstatus"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		s.statusFailed(err)
		return
	}
	defer f.Close()
	yn := "no"
	if s.cf.hold.local {
		yn = "yes"
	}
	var b strings.Builder
	b.WriteString("pid " + itoa(os.Getpid()) + "\n")
	b.WriteString("generation " + itoa(s.generation) + "\n")
	b.WriteString("holdlocal " + yn + "\n")
	b.WriteString("holdremote " + s.cf.hold.describeRemote() + "\n")
	b.WriteString("since-local " + strconv.FormatInt(s.holds.since(chanLocal), 10) + "\n")
	b.WriteString("since-remote " + strconv.FormatInt(s.holds.since(kindRemoteSome), 10) + "\n")
	b.WriteString("queued-local " + itoa(s.queued(chanLocal)) + "\n")
	b.WriteString("queued-remote " + itoa(s.queued(chanRemote)) + "\n")
	b.WriteString("started " + strconv.FormatInt(s.started, 10) + "\n")
	if s.holds != nil && s.holds.err != nil {
		// No message is bounced for its age meanwhile, and since-*
		// date only the holds since this start: qmailctl status says
		// so.
		b.WriteString("holdlog-unreadable yes\n")
	}
	for c := 0; c < 2; c++ {
		// What runs (the control value capped by the spawner's
		// limit) and the control value as read at start: qmailctl
		// compares the file with the second.
		b.WriteString("concurrency-" + chanName[c] + " " + itoa(s.concurrency[c]) + "\n")
		b.WriteString("control-concurrency" + chanName[c] + " " + itoa(s.cf.concurrency[c]) + "\n")
	}
	if len(s.rereadFailed) > 0 {
		b.WriteString("reread-failed " + strings.Join(s.rereadFailed, " ") + "\n")
	}
	if s.exitasap {
		b.WriteString("exiting yes\n") // TERM: nothing starts any more
	}
	b.WriteString(s.mc.statusLines())
	s.statusFailed(rewrite(f, b.String()))
}

// statusFailed logs why lock/sendstatus could not be written (a full disk,
// a quota), once until a write works again: qmailctl then finds no
// confirmation of a hold or release that qmail-send did apply, and its
// counts grow old, and this line is where the reason is told.
func (s *Sched) statusFailed(err error) {
	if err == nil {
		s.statusTrouble = ""
		return
	}
	why := qerr.Bare(err).Error()
	if why == s.statusTrouble {
		return
	}
	s.statusTrouble = why
	s.log.line("warning: unable to write lock/sendstatus: ", why,
		"; qmailctl cannot see what qmail-send holds, releases or counts until it can")
}

// openLockFile opens a file of queue/lock that qmail-send writes in place
// (sendstatus, sendmutex) like os.OpenFile, but never waits on something
// else put there: a FIFO would hold the open until a reader came, and
// qmail-send would stop there for good (QA). The open is non-blocking (a
// FIFO with no reader then fails at once, ENXIO, taken for what it is: no
// regular file), does not follow a symbolic link (qhome.ErrSymlink, as
// pkg/sendlock does not follow one when it reads sendmutex), and anything
// but a regular file is closed and refused with qhome.ErrNotRegular.
// O_NONBLOCK, meaningless for a regular file, is then cleared again. The
// qhome helpers (OpenRegular, OpenQueueFile) check the same but create a
// file with mode 0, not the 0644 sendstatus needs for qmailctl.
func openLockFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, perm)
	switch {
	case errors.Is(err, syscall.ENXIO):
		return nil, &os.PathError{Op: "open", Path: name, Err: qhome.ErrNotRegular}
	case errors.Is(err, syscall.ELOOP):
		return nil, &os.PathError{Op: "open", Path: name, Err: qhome.ErrSymlink}
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = &os.PathError{Op: "open", Path: name, Err: qhome.ErrNotRegular}
	}
	if err == nil {
		err = clearNonblock(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// clearNonblock puts the regular file f back in blocking mode. The Go
// runtime never polls a regular file, so the flag is only the kernel's.
func clearNonblock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = syscall.SetNonblock(int(fd), false) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.PathError{Op: "fcntl", Path: f.Name(), Err: err}
	}
	return nil
}

// rewrite replaces the contents of f (sendstatus, sendmutex) in place so
// that a reader never finds it empty: the new text goes over the old,
// padded with empty lines to the old length (readers skip them), and only
// then is the file cut to the new length.
// It returns the first error of the write or the cut.
func rewrite(f *os.File, text string) error {
	padded := text
	if fi, err := f.Stat(); err == nil && fi.Size() > int64(len(text)) {
		padded += strings.Repeat("\n", int(fi.Size())-len(text))
	}
	if _, err := f.WriteAt([]byte(padded), 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(text)))
}
