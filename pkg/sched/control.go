package sched

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Per-message control of a running qmail-send (qmailctl hold, release,
// delete, bounce).
//
// Requests arrive through the FIFO queue/lock/sendctl (pre-created by
// qmail-install, owner qmails, mode 0600: only root and qmails can write
// it), one line each:
//
//	TAG VERB ARG\n
//
// TAG is chosen by the client (1-64 bytes of [A-Za-z0-9._-]); VERB is hold,
// release, delete, bounce (ARG a message id) or hold-from, hold-to,
// release-from, release-to (ARG an address, "<>" for the empty one). A line
// is at most MaxRequest bytes; longer lines are discarded. The result is
// written into queue/lock/sendstatus as a line
//
//	ctl TAG ok|fail|defer TEXT
//
// (fail: the request cannot succeed, e.g. no such message; defer: try
// again later). The last keepResults results are kept there.
//
// A held message keeps its schedule entry (taken off the schedule with its
// due time when the pass would open it, "parked") and starts no delivery
// until released; the set of held ids is kept in queue/bounce/heldmsgs
// (HeldMsgsName) so that it survives a restart. delete and bounce mark
// every recipient not being delivered as done (bounce first appends a
// failure paragraph for it to bounce/ID), make the message due, and leave
// the rest to the normal path: the pass finds every record done, removes
// the channel file, and messDone sends the bounce and has qmail-clean
// remove the message. A delivery in flight finishes normally; if it ends
// in a deferral, the recipient is dropped (delete) or bounced (bounce).

// Request limits and names.
const (
	MaxRequest   = 1024
	maxTag       = 64
	keepResults  = 32
	maxHeld      = hold.MaxMsgs
	HeldMsgsName = hold.MsgsName // under queue/bounce/
	ctlFIFO      = "lock/sendctl"
)

// AdminBounceText is the failure text of every recipient of a message
// bounced with qmailctl bounce.
const AdminBounceText = "This message was returned by the postmaster of this host, undelivered. (#5.0.0)"

// Request verbs.
var verbs = map[string]bool{
	"hold": true, "release": true, "delete": true, "bounce": true,
	"hold-from": true, "hold-to": true, "release-from": true, "release-to": true,
}

// Request is one qmailctl request.
type Request struct {
	Tag  string
	Verb string
	Arg  string
	id   uint64
}

// Result words.
const (
	ResultOK    = "ok"
	ResultFail  = "fail"
	ResultDefer = "defer"
)

var (
	errBadTag  = errors.New("bad tag")
	errBadVerb = errors.New("unknown request")
	errBadArg  = errors.New("bad argument")
	errTooLong = errors.New("request too long")
)

// ValidTag reports whether t may tag a request.
func ValidTag(t string) bool {
	if t == "" || len(t) > maxTag {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Encode renders the request line; it fails for what ParseRequest would
// refuse.
func (r Request) Encode() ([]byte, error) {
	line := []byte(r.Tag + " " + r.Verb + " " + r.Arg + "\n")
	if _, err := ParseRequest(line); err != nil {
		return nil, err
	}
	return line, nil
}

// ParseRequest parses one request line (with or without its newline). On
// an error other than errBadTag the returned request carries the tag, so
// that the error can be answered.
func ParseRequest(line []byte) (Request, error) {
	if len(line) > MaxRequest {
		return Request{}, errTooLong
	}
	s := string(bytes.TrimSuffix(line, []byte("\n")))
	tag, rest, _ := strings.Cut(s, " ")
	if !ValidTag(tag) {
		return Request{}, errBadTag
	}
	r := Request{Tag: tag}
	verb, arg, ok := strings.Cut(rest, " ")
	if !ok || !verbs[verb] {
		return r, errBadVerb
	}
	r.Verb = verb
	if strings.HasSuffix(verb, "-from") || strings.HasSuffix(verb, "-to") {
		if arg == "" || strings.ContainsAny(arg, "\x00\n") {
			return r, errBadArg
		}
		r.Arg = arg
		return r, nil
	}
	id, ok := parseID(arg)
	if !ok {
		return r, errBadArg
	}
	r.Arg, r.id = arg, id
	return r, nil
}

// msgCtl is the scheduler's per-message control state.
type msgCtl struct {
	path    string
	held    map[uint64]bool
	parked  [2][]entry      // held messages off the schedule, with due time
	killed  map[uint64]byte // 'd' deleted, 'b' bounced: a deferral is final
	results []string
	// heldAs remembers, for the messages "hold from/to ADDRESS" held in
	// this run, the requests that held them, so that the matching
	// release finds a message whose matching recipient has been
	// delivered since: its delivery was running at the hold, and the
	// channel file went once all its records were done, leaving nothing
	// to match (the message stayed held for good). Not kept across a
	// restart, where the release names the messages it could not match.
	heldAs map[uint64][]addrHold
}

// addrHold is a "hold from/to ADDRESS" request that held a message.
type addrHold struct {
	to   bool
	addr string
}

// rememberHold records that "hold from/to addr" held message id.
func (m *msgCtl) rememberHold(id uint64, addr string, to bool) {
	if m.heldAs == nil {
		m.heldAs = map[uint64][]addrHold{}
	}
	m.heldAs[id] = append(m.heldAs[id], addrHold{to: to, addr: addr})
}

// heldFor reports whether message id was held by "hold from/to addr".
func (m *msgCtl) heldFor(id uint64, addr string, to bool) bool {
	for _, h := range m.heldAs[id] {
		if h.to == to && addrEqual(h.addr, addr) {
			return true
		}
	}
	return false
}

// LoadHeld reads the held-message file of the queue q (hold.ReadMsgs).
func LoadHeld(q string) (map[uint64]bool, error) { return hold.ReadMsgs(q) }

// loadMsgCtl reads the held set. A file that exists but cannot be read
// is an error: starting without it would deliver the messages an admin
// held, and the next save would replace the record.
func loadMsgCtl(q string) (*msgCtl, error) {
	held, err := LoadHeld(q)
	if err != nil {
		return nil, err
	}
	return &msgCtl{path: filepath.Join(q, "bounce", HeldMsgsName), held: held, killed: map[uint64]byte{}}, nil
}

// save writes the held set durably (qhome.ReplaceFile), as holdperiods is
// kept.
func (m *msgCtl) save() error {
	return qhome.ReplaceFile(m.path, hold.MsgsText(m.held), 0o600, nil)
}

// saveHeld writes the held set for a qmailctl request, which puts
// memory back as it was when the write fails (and answers defer).
func (s *Sched) saveHeld() error {
	err := s.mc.save()
	s.saveState(stateHeldMsgs, err, false)
	return err
}

func (m *msgCtl) isHeld(id uint64) bool { return m != nil && m.held[id] }

// park takes a held message off channel c's schedule, keeping its due time.
func (m *msgCtl) park(c int, e entry) { m.parked[c] = append(m.parked[c], e) }

// unpark puts a message's parked entries back on the schedules; due < 0
// keeps the saved due times.
func (s *Sched) unpark(id uint64, due int64) {
	m := s.mc
	for c := 0; c < 2; c++ {
		l := m.parked[c][:0]
		for _, e := range m.parked[c] {
			if e.id != id {
				l = append(l, e)
				continue
			}
			if due >= 0 {
				e.due = due
			}
			s.sched[c].insert(e.id, e.due)
		}
		m.parked[c] = l
	}
}

// unparkAll returns every parked entry to its schedule (at exit, so that
// writeBack stores the due times).
func (s *Sched) unparkAll() {
	if s.mc == nil {
		return
	}
	for c := 0; c < 2; c++ {
		for _, e := range s.mc.parked[c] {
			s.sched[c].insert(e.id, e.due)
		}
		s.mc.parked[c] = nil
	}
}

// parkedDue makes every parked entry due at t (ALRM).
func (m *msgCtl) parkedDue(t int64) {
	if m == nil {
		return
	}
	for c := 0; c < 2; c++ {
		for i := range m.parked[c] {
			m.parked[c][i].due = t
		}
	}
}

func (m *msgCtl) nparked(c int) int {
	if m == nil {
		return 0
	}
	return len(m.parked[c])
}

// prune drops held ids whose message is gone (at start).
func (s *Sched) pruneHeld() {
	changed := false
	for id := range s.mc.held {
		if s.msgState(id) == "" {
			delete(s.mc.held, id)
			changed = true
		}
	}
	if changed {
		s.saveState(stateHeldMsgs, s.mc.save(), true)
	}
}

// forget drops a finished message from the control state.
func (s *Sched) forget(id uint64) {
	if s.mc == nil {
		return
	}
	delete(s.mc.killed, id)
	delete(s.mc.heldAs, id)
	if s.mc.held[id] {
		delete(s.mc.held, id)
		s.saveState(stateHeldMsgs, s.mc.save(), true)
	}
}

// finalDeferral turns the deferral of a delivery of a deleted or bounced
// message into its final outcome: drop reports that the recipient is to be
// marked done without a bounce; otherwise letter and text are the bounce.
func (s *Sched) finalDeferral(id uint64, letter byte, text string) (byte, string, bool) {
	if letter != 'Z' || s.mc == nil {
		return letter, text, false
	}
	switch s.mc.killed[id] {
	case 'b':
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		return 'D', text + AdminBounceText + "\n", false
	case 'd':
		return letter, text, true
	}
	return letter, text, false
}

// statusLines renders the kept results for sendstatus.
func (m *msgCtl) statusLines() string {
	if m == nil {
		return ""
	}
	return strings.Join(m.results, "")
}

func (m *msgCtl) addResult(tag, word, text string) {
	m.results = append(m.results, "ctl "+tag+" "+word+" "+oneLine(text)+"\n")
	if len(m.results) > keepResults {
		m.results = append([]string(nil), m.results[len(m.results)-keepResults:]...)
	}
}

// oneLine keeps text on one line of sendstatus.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c == 127 {
			b[i] = '_'
		}
	}
	return string(b)
}

// watchCtl reads request lines from the FIFO and hands them to the loop;
// a request longer than MaxRequest is reported and skipped.
func (s *Sched) watchCtl(f *os.File) {
	r := bufio.NewReaderSize(f, MaxRequest)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err != nil || !s.send(event{kind: evCtl, err: errTooLong}) {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		if !s.send(event{kind: evCtl, data: append([]byte(nil), line...)}) {
			return
		}
	}
}

// control answers one request.
func (s *Sched) control(ev event) {
	if ev.err != nil {
		s.log.line("warning: qmailctl request too long, ignored")
		return
	}
	r, err := ParseRequest(ev.data)
	if err != nil {
		s.log.line("warning: bad qmailctl request: ", err.Error())
		if r.Tag != "" {
			s.mc.addResult(r.Tag, ResultFail, "qmail-send: "+err.Error())
			s.writeStatus()
		}
		return
	}
	word, text := ResultDefer, "qmail-send is exiting"
	if !s.exitasap {
		word, text = s.doRequest(r)
	}
	s.log.line("qmailctl: ", r.Verb, " ", safe(r.Arg), ": ", word, ": ", safe(text))
	s.mc.addResult(r.Tag, word, text)
	s.writeStatus()
}

func (s *Sched) doRequest(r Request) (string, string) {
	switch r.Verb {
	case "hold":
		return s.holdMsg(r.id)
	case "release":
		return s.releaseMsg(r.id)
	case "delete":
		return s.kill(r.id, false)
	case "bounce":
		return s.kill(r.id, true)
	}
	return s.byAddress(r.Verb, r.Arg)
}

// msgState is "todo" for a message still in todo/, "info" for a
// preprocessed one, "" for an id not in the queue. todo/ comes first: a
// message whose todo/ID is left after its preprocessing (qmail-clean could
// not remove it, or qmail-send stopped first) is preprocessed again by the
// next scan, its channel files made anew with every record pending, so a
// delete or bounce marked in them now would be undone.
//
// A message that has ended ("end msg") while its info file waits for a
// remover (remove.go) is not in the queue: forget has dropped its control
// state, and a hold taken now would stay in bounce/heldmsgs after it and
// hold the next message given its id (the inode). A todo/ID there is a
// new message on the freed inode (the ended one had none left).
func (s *Sched) msgState(id uint64) string {
	if _, err := os.Lstat(s.path(fnFlat("todo", id))); err == nil {
		return "todo"
	}
	if s.ended[id] {
		return ""
	}
	if _, err := os.Lstat(s.path(fnSplit("info", id))); err == nil {
		return "info"
	}
	return ""
}

// hasPending reports whether channel c's file of id has a record not yet
// done (or cannot be read: then it is treated as pending). A held message
// with nothing pending is let through, so that the pass removes it.
func (s *Sched) hasPending(c int, id uint64) bool {
	b, err := readBounded(s.path(fnChan(c, id)))
	if err != nil {
		return !isNoent(err)
	}
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], 0)
		if end < 0 || b[off] != 'D' {
			return true
		}
		off += end + 1
	}
	return false
}

// inFlight returns the positions of id's running deliveries per channel.
func (s *Sched) inFlight(id uint64) (pos [2]map[int64]bool, n int) {
	for c := 0; c < 2; c++ {
		pos[c] = map[int64]bool{}
		for _, d := range s.dels[c] {
			if d.used && s.jobs[d.job].id == id {
				pos[c][d.mpos] = true
				n++
			}
		}
	}
	return pos, n
}

// stopPasses closes any open pass of message id, so that no further record
// of it is read, and makes its open jobs due now when they close.
func (s *Sched) stopPasses(id uint64) {
	for c := 0; c < 2; c++ {
		if p := &s.passes[c]; p.open && p.id == id {
			s.jobs[p.job].retry = s.recent
			s.closePass(c, false)
		}
	}
	for j := range s.jobs {
		if s.jobs[j].used && s.jobs[j].id == id {
			s.jobs[j].retry = s.recent
		}
	}
}

func inflightNote(n int) string {
	if n == 0 {
		return ""
	}
	if n == 1 {
		return "; 1 delivery in progress finishes normally"
	}
	return "; " + itoa(n) + " deliveries in progress finish normally"
}

func (s *Sched) holdMsg(id uint64) (string, string) {
	st := s.msgState(id)
	if st == "" {
		return ResultFail, "message " + utoa(id) + " is not in the queue"
	}
	if s.mc.held[id] {
		return ResultOK, "message " + utoa(id) + " is already held"
	}
	if len(s.mc.held) >= maxHeld {
		return ResultFail, "too many messages held"
	}
	s.mc.held[id] = true
	if err := s.saveHeld(); err != nil {
		delete(s.mc.held, id)
		return ResultDefer, "unable to write bounce/" + HeldMsgsName + ": " + err.Error()
	}
	s.stopPasses(id)
	_, n := s.inFlight(id)
	text := "message " + utoa(id) + " held"
	if st == "todo" {
		text += " (not yet preprocessed)"
	}
	text += inflightNote(n)
	if st == "info" && n == 0 && !s.hasPending(chanLocal, id) && !s.hasPending(chanRemote, id) {
		text += "; nothing is left to deliver: it leaves the queue"
	}
	return ResultOK, text
}

func (s *Sched) releaseMsg(id uint64) (string, string) {
	if !s.mc.held[id] {
		if s.msgState(id) == "" {
			return ResultFail, "message " + utoa(id) + " is not in the queue"
		}
		return ResultOK, "message " + utoa(id) + " was not held"
	}
	delete(s.mc.held, id)
	if err := s.saveHeld(); err != nil {
		s.mc.held[id] = true
		return ResultDefer, "unable to write bounce/" + HeldMsgsName + ": " + err.Error()
	}
	delete(s.mc.heldAs, id)
	s.unpark(id, -1)
	return ResultOK, "message " + utoa(id) + " released"
}

// kill deletes (bounce false) or bounces message id.
func (s *Sched) kill(id uint64, bounce bool) (string, string) {
	what := "deleted"
	if bounce {
		what = "bounced"
	}
	sid := utoa(id)
	st := s.msgState(id)
	if st == "" {
		return ResultFail, "message " + sid + " is not in the queue"
	}
	if st == "todo" {
		s.preprocess(id)
		if s.msgState(id) != "info" {
			if why := s.damagedTodo[id]; why != "" {
				if bounce {
					return ResultFail, "message " + sid + ": " + why + ": not bounced; delete it instead"
				}
				return s.removeDamaged(id, why)
			}
			return ResultDefer, "message " + sid + " could not be preprocessed yet (see the log); try again later"
		}
	}
	if bounce {
		if _, _, ok := s.getinfo(id); !ok {
			return ResultFail, "message " + sid + ": info file damaged (no sender): not bounced; delete it instead"
		}
		if _, err := os.Stat(s.path(fnSplit("mess", id))); err != nil {
			return ResultFail, "message " + sid + ": message file missing: not bounced; delete it instead"
		}
	}
	s.stopPasses(id)
	flight, n := s.inFlight(id)
	total := 0
	var damaged []string
	for c := 0; c < 2; c++ {
		k, bad, err := s.markChannel(c, id, flight[c], bounce)
		total += k
		if err != nil {
			return ResultDefer, "message " + sid + ": " + err.Error() + " (" + plural(total, "recipient") + " " + what + " so far)"
		}
		if bad {
			damaged = append(damaged, fnChan(c, id))
		}
	}
	// A job of the message still open (a delivery in flight) has, in
	// effect, read its file to the end: every record is done or being
	// delivered. It ends the message when its last delivery does, held
	// channel or not (stopPasses closed its pass short of the end, and the
	// message stayed, done, until a release).
	for j := range s.jobs {
		if jb := &s.jobs[j]; jb.used && jb.id == id && !contains(damaged, fnChan(jb.channel, id)) {
			jb.hiteof, jb.skipped = true, false
		}
	}
	if n > 0 {
		if bounce {
			s.mc.killed[id] = 'b'
		} else {
			s.mc.killed[id] = 'd'
		}
	}
	if s.mc.held[id] {
		delete(s.mc.held, id)
		s.saveState(stateHeldMsgs, s.mc.save(), true)
	}
	note := ""
	if bounce {
		note = s.bounceNote(id)
	} else {
		note = s.dropUnsendableBounce(id)
	}
	s.unpark(id, s.recent)
	s.finishKilled(id, flight, damaged)
	text := "message " + sid + ": " + plural(total, "recipient") + " " + what + inflightNote(n) + note
	if len(damaged) > 0 {
		text += "; damaged records left in " + strings.Join(damaged, ", ")
	}
	return ResultOK, text
}

// removeDamaged deletes message id, whose todo file can never be
// preprocessed (why, from damagedTodo), as qmailctl delete asks. No
// recipient of it was ever scheduled, so nothing is delivered or bounced:
// what the failed preprocessing left (channel and info files) goes first,
// while todo/ID still stands for the message, so that a crash midway
// leaves it as damaged as before; then qmail-clean removes todo/ID (with
// intd/ID), and last the message file (foop/ID), as for a finished
// message. With the message file missing there is no foop/ID: inode ID is
// free, and once todo/ID and intd/ID are gone a new message may take it.
func (s *Sched) removeDamaged(id uint64, why string) (string, string) {
	sid := utoa(id)
	if s.ending(id) {
		// Removals of a message with this id are under way (remove.go);
		// foop/ID is theirs to ask.
		return ResultDefer, "message " + sid + " is being removed; try again later"
	}
	for _, n := range []string{fnChan(chanLocal, id), fnChan(chanRemote, id), fnSplit("info", id)} {
		if err := unlink(s.path(n)); err != nil && !isNoent(err) {
			s.log.line("warning: unable to unlink ", n)
			return ResultDefer, "message " + sid + ": " + why + ": unable to unlink " + n + "; try again later"
		}
	}
	todo := fnFlat("todo", id)
	if !s.cleanRequest("todo", id) {
		return ResultDefer, "message " + sid + ": " + why + ": qmail-clean could not remove " + todo + " (see the log); try again later"
	}
	delete(s.damagedTodo, id)
	s.forget(id)
	gone := todo + ", " + fnFlat("intd", id)
	note := ""
	if why != whyMessMissing {
		mn := fnSplit("mess", id)
		if s.cleanRequest("foop", id) {
			gone += ", " + mn
		} else {
			note = "; " + mn + " is left for the cleanup of stale messages"
		}
	}
	s.log.line("warning: message ", sid, " deleted unpreprocessed: ", why, "; removed ", gone)
	if why != whyMessMissing {
		// Its preprocessing just logged "new msg": the log closes it.
		s.log.line("end msg ", sid)
	}
	return ResultOK, "message " + sid + ": " + why + ", never preprocessed: deleted (" + gone + " removed)" + note
}

// bounceNote is what the answer to a bounce of message id adds when no
// bounce will be sent for it, as injectBounce decides: the message is
// itself a double bounce (a triple bounce is discarded, as in qmail), or
// a bounce while control/doublebounceto turns double bounces off.
func (s *Sched) bounceNote(id uint64) string {
	sender, _, _ := s.getinfo(id)
	sender = strings.TrimSuffix(sender, "-@[]")
	switch {
	case sender == "#@[]":
		return "; it is a double bounce, so no bounce is sent (a triple bounce is discarded)"
	case sender == "" && s.cf.doublebounceto == "":
		return "; it is a bounce and control/doublebounceto turns double bounces off, so no bounce is sent"
	}
	return ""
}

// dropUnsendableBounce removes, when message id is deleted, the bounce
// of its earlier failures (bounce/ID) if it can never be sent
// (UnsendableBounce). qmail-send would otherwise try to send it every
// pass and keep the message for good (qmailctl bounce refuses such a
// message and says to delete it). It returns what the answer adds.
func (s *Sched) dropUnsendableBounce(id uint64) string {
	why := UnsendableBounce(s.queue, id)
	if why == "" {
		return ""
	}
	bn := fnFlat("bounce", id)
	if err := unlink(s.path(bn)); err != nil && !isNoent(err) {
		s.log.line("warning: unable to unlink ", bn)
		return "; its earlier failures cannot be reported (" + why + ") and " + bn + " could not be removed"
	}
	s.log.line("warning: ", bn, " removed unsent: ", why, "; the earlier failures of message ", utoa(id), " are not reported")
	return "; its earlier failures are not reported (" + why + ": " + bn + " removed)"
}

// UnsendableBounce says why the bounce of the earlier failures of message
// id in queue directory q (its bounce/ID) can never be made: "message
// file missing", or "info file damaged (no sender)" for an info file read
// whole whose first record is no sender. "" when there is no bounce/ID,
// or nothing stops it (a file that cannot be read now may be read later).
// qmail-send uses it for a delete while it runs, qmailctl for one while
// it is stopped.
func UnsendableBounce(q string, id uint64) string {
	if _, err := os.Lstat(filepath.Join(q, fnFlat("bounce", id))); err != nil {
		return ""
	}
	if _, err := os.Lstat(filepath.Join(q, fnSplit("mess", id))); errors.Is(err, fs.ErrNotExist) {
		return "message file missing"
	}
	info, err := qhome.ReadQueueFile(filepath.Join(q, fnSplit("info", id)))
	if err == nil && (len(info) == 0 || info[0] != 'F' || bytes.IndexByte(info, 0) < 0) {
		return "info file damaged (no sender)"
	}
	return ""
}

// finishKilled removes the channel files of a deleted or bounced message
// that no job is working on, as jobClose removes a file whose records are
// all done (so that a held channel does not keep the message), and queues
// the message for completion; otherwise its schedule entries become due.
func (s *Sched) finishKilled(id uint64, flight [2]map[int64]bool, damaged []string) {
	busy := false
	for c := 0; c < 2; c++ {
		n := fnChan(c, id)
		open := false
		for j := range s.jobs {
			if s.jobs[j].used && s.jobs[j].id == id && s.jobs[j].channel == c {
				open = true
			}
		}
		switch {
		case open || len(flight[c]) > 0 || contains(damaged, n):
			s.sched[c].setDue(id, s.recent)
			busy = true
		case s.sched[c].remove(id):
			if err := unlink(s.path(n)); err != nil && !isNoent(err) {
				s.log.line("warning: unable to unlink ", n, "; will try again later")
				s.sched[c].insert(id, s.recent+sleepSysfail)
				busy = true
			}
		default:
			if _, err := os.Stat(s.path(n)); err == nil {
				busy = true // on the fail list; handled when it comes back
			}
		}
	}
	if !busy {
		s.done.insert(id, s.recent)
	}
}

// markChannel marks every pending record of message id on channel c done,
// except those being delivered; with bounce, a failure paragraph for each
// is appended to bounce/ID first. bad reports a record that could not be
// parsed (the walk stops there).
func (s *Sched) markChannel(c int, id uint64, flight map[int64]bool, bounce bool) (n int, bad bool, err error) {
	name := fnChan(c, id)
	f, err := qhome.OpenRegular(s.path(name), os.O_RDWR)
	if err != nil {
		if isNoent(err) {
			return 0, false, nil
		}
		return 0, false, errors.New("unable to open " + name)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, false, errors.New("unable to read " + name)
	}
	var todo []int64
	var report []byte
	var ends []int // with bounce: where each record's paragraph ends in report
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], 0)
		if end < 0 {
			bad = true
			break
		}
		switch b[off] {
		case 'T':
			if !flight[int64(off)] {
				todo = append(todo, int64(off))
				if bounce {
					report = append(report, BounceParagraph(s.cf.unvirtual(string(b[off+1:off+end])), AdminBounceText)...)
					ends = append(ends, len(report))
				}
			}
		case 'D':
		default:
			bad = true
		}
		if bad {
			break
		}
		off += end + 1
	}
	bname := fnFlat("bounce", id)
	var before int64 // bounce/ID's size before this channel's paragraphs
	if len(report) > 0 {
		if st, err := os.Lstat(s.path(bname)); err == nil {
			before = st.Size()
		} else if !isNoent(err) {
			return 0, bad, errors.New("unable to stat " + bname)
		}
		// All of the channel's paragraphs or none, and no waiting: a
		// full disk answers the request (defer) instead of stopping
		// qmail-send in addBounce's retries.
		if err := qhome.AppendWhole(s.path(bname), report, 0o600, nil); err != nil {
			return 0, bad, errors.New("unable to write bounce/" + utoa(id) + ": " + qerr.Bare(err).Error())
		}
	}
	for i, pos := range todo {
		if err := writeMark(f, pos); err != nil {
			if len(report) > 0 {
				// Only the recipients marked keep their paragraphs:
				// the others are still pending (and a retry of the
				// bounce would write theirs twice).
				keep := before
				if i > 0 {
					keep += int64(ends[i-1])
				}
				s.cutBounce(bname, keep)
			}
			return n, bad, errors.New("unable to mark " + name)
		}
		n++
	}
	if err := f.Sync(); err != nil {
		return n, bad, errors.New("unable to sync " + name)
	}
	return n, bad, nil
}

// writeMark marks the record at pos of a channel file done (a variable
// for the tests).
var writeMark = func(f *os.File, pos int64) error {
	_, err := f.WriteAt([]byte{'D'}, pos)
	return err
}

// cutBounce cuts the bounce file name back to size bytes, flushed (a file
// cut to nothing is removed); a failure is logged.
func (s *Sched) cutBounce(name string, size int64) {
	p := s.path(name)
	var err error
	if size == 0 {
		err = unlink(p)
	} else {
		var f *os.File
		if f, err = qhome.OpenRegular(p, os.O_WRONLY); err == nil {
			if err = f.Truncate(size); err == nil {
				err = f.Sync()
			}
			f.Close()
		}
	}
	if err != nil && !isNoent(err) {
		s.log.line("warning: unable to cut back ", name, ": ", qerr.Bare(err).Error())
	}
}

// setDue makes id's entry due at t if it is on the queue.
func (q *prioq) setDue(id uint64, t int64) {
	for i := range q.h {
		if q.h[i].id == id {
			q.h[i].due = t
			heap.Fix(&q.h, i)
			return
		}
	}
}

// remove takes id's entry off the queue; false if it is not there.
func (q *prioq) remove(id uint64) bool {
	for i := range q.h {
		if q.h[i].id == id {
			heap.Remove(&q.h, i)
			return true
		}
	}
	return false
}

// addrEqual compares addresses without regard to the case of their ASCII
// letters (only those, as qmail folds a local part: strings.EqualFold
// took "\u017fam" for "sam" and "\u212aevin" for "kevin"), and their
// domains as qmail-remote reaches them: either spelling of an
// internationalized name, a trailing dot or not (hold.CanonDomain).
func addrEqual(a, b string) bool {
	if address.EqualFoldASCII(a, b) {
		return true
	}
	la, da, oka := address.Split(a)
	lb, db, okb := address.Split(b)
	return oka && okb && address.EqualFoldASCII(la, lb) && hold.CanonDomain(da) == hold.CanonDomain(db)
}

// byAddress holds or releases every message from or to an address.
func (s *Sched) byAddress(verb, addr string) (string, string) {
	if addr == "<>" {
		addr = ""
	}
	hold := strings.HasPrefix(verb, "hold-")
	to := strings.HasSuffix(verb, "-to")
	var ids []uint64
	if hold {
		ids = s.allMessages()
	} else {
		for id := range s.mc.held {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	}
	n, already := 0, 0
	var changed []uint64
	// undo puts memory back as it was when the request fails midway:
	// a message held in memory only would be parked until the next
	// restart, which does not hold it (bounce/heldmsgs never had it).
	undo := func() {
		for _, id := range changed {
			if hold {
				delete(s.mc.held, id)
			} else {
				s.mc.held[id] = true
			}
		}
	}
	for _, id := range ids {
		if !s.matches(id, addr, to) && (hold || !s.mc.heldFor(id, addr, to)) {
			continue
		}
		switch {
		case hold && s.mc.held[id]:
			already++
			if !s.mc.heldFor(id, addr, to) {
				// Remembered too: the release of this address must
				// find it however it was held.
				s.mc.rememberHold(id, addr, to)
			}
			continue
		case hold:
			if len(s.mc.held) >= maxHeld {
				undo()
				return ResultFail, "too many messages held"
			}
			s.mc.held[id] = true
		default:
			delete(s.mc.held, id)
		}
		changed = append(changed, id)
		n++
	}
	if n > 0 {
		if err := s.saveHeld(); err != nil {
			// Memory as it was. (It was read back from the file,
			// and a read that failed too left no held set at all:
			// the next hold panicked on the nil map.)
			undo()
			return ResultDefer, "unable to write bounce/" + HeldMsgsName + ": " + err.Error()
		}
	}
	for _, id := range changed {
		if !hold {
			delete(s.mc.heldAs, id)
			continue
		}
		s.mc.rememberHold(id, addr, to)
	}
	dir := "from"
	if to {
		dir = "to"
	}
	who := "<" + addr + ">"
	if hold {
		for _, id := range ids {
			if s.mc.held[id] {
				s.stopPasses(id)
			}
		}
		flying := 0
		for _, id := range changed {
			_, k := s.inFlight(id)
			flying += k
		}
		text := plural(n, "message") + " " + dir + " " + who + " held"
		if already > 0 {
			verb := " were"
			if already == 1 {
				verb = " was"
			}
			text += " (" + itoa(already) + verb + " held already)"
		}
		return ResultOK, text + inflightNote(flying)
	}
	for _, id := range ids {
		if !s.mc.held[id] {
			s.unpark(id, -1)
		}
	}
	text := plural(n, "message") + " " + dir + " " + who + " released"
	if n == 0 && len(s.mc.held) > 0 {
		// A message held "to" an address whose delivery has been made
		// since, before a restart, has nothing left to match.
		stay := " stay held (qmailctl queue shows them as msgheld; release them by id)"
		if len(s.mc.held) == 1 {
			stay = " stays held (qmailctl queue shows it as msgheld; release it by id)"
		}
		text += "; " + plural(len(s.mc.held), "message") + stay
	}
	return ResultOK, text
}

// allMessages lists the ids in info/ and todo/, less the messages that
// have ended (an info file a remover has yet to unlink: msgState).
func (s *Sched) allMessages() []uint64 {
	var ids []uint64
	dirs := []string{"todo"}
	for i := 0; i < qhome.Split; i++ {
		dirs = append(dirs, "info/"+itoa(i))
	}
	seen := map[uint64]bool{}
	for _, d := range dirs {
		f, err := os.Open(s.path(d))
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, n := range names {
			if id, ok := parseID(n); ok && !seen[id] && (d == "todo" || !s.ended[id]) {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// matches reports whether message id is from (to false) or to addr: the
// sender of info/ID or todo/ID, or a recipient of its channel files (any
// record; virtual-domain prepends are also removed) or of todo/ID.
func (s *Sched) matches(id uint64, addr string, to bool) bool {
	var files []string
	if s.msgState(id) == "todo" {
		files = []string{fnFlat("todo", id)}
	} else if !to {
		files = []string{fnSplit("info", id)}
	} else {
		files = []string{fnChan(0, id), fnChan(1, id)}
	}
	for _, n := range files {
		b, err := readBounded(s.path(n))
		if err != nil {
			continue
		}
		for _, rec := range bytes.Split(b, []byte{0}) {
			if len(rec) == 0 {
				continue
			}
			a := string(rec[1:])
			switch {
			case !to && rec[0] == 'F':
				if addrEqual(a, addr) {
					return true
				}
			case to && (rec[0] == 'T' || rec[0] == 'D'):
				if addrEqual(a, addr) || addrEqual(s.cf.unvirtual(a), addr) {
					return true
				}
			}
		}
	}
	return false
}

// readBounded reads a queue file of at most 64 MB.
func readBounded(path string) ([]byte, error) {
	f, err := qhome.OpenRegular(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<20))
}

// plural renders "1 message", "2 messages".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return itoa(n) + " " + word + "s"
}
