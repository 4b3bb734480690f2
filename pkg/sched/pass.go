package sched

import (
	"bufio"
	"io"
	"math"
	"os"
	"strings"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// nextretry is qmail's retry schedule (spec/scheduler.md §7).
func nextretry(birth, recent int64, c int) int64 {
	var n int64
	if birth <= recent {
		n = int64(math.Sqrt(float64(recent - birth)))
		// Correct float rounding so that n = floor(sqrt(age)) exactly.
		for n*n > recent-birth {
			n--
		}
		for (n+1)*(n+1) <= recent-birth {
			n++
		}
	}
	if c == chanLocal {
		n += 10
	} else {
		n += 20
	}
	return birth + n*n
}

// getinfo reads info/S/ID: the sender and the birth time (its mtime).
func (s *Sched) getinfo(id uint64) (string, int64, bool) {
	f, err := qhome.OpenRegular(s.path(fnSplit("info", id)), os.O_RDONLY)
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, false
	}
	rec, err := bufio.NewReader(f).ReadString(0)
	if err != nil || rec[0] != 'F' {
		return "", 0, false
	}
	return rec[1 : len(rec)-1], st.ModTime().Unix(), true
}

func (s *Sched) jobOpen(id uint64, c int) int {
	for j := range s.jobs {
		if !s.jobs[j].used {
			s.jobs[j] = job{used: true, refs: 1, id: id, channel: c}
			return j
		}
	}
	panic("sched: jobOpen without a free job")
}

// jobClose releases one reference (spec/scheduler.md §6).
func (s *Sched) jobClose(j int) {
	jb := &s.jobs[j]
	if jb.refs--; jb.refs > 0 {
		return
	}
	id, c, due := jb.id, jb.channel, jb.retry
	done := jb.hiteof && jb.numtodo == 0 && !jb.skipped
	*jb = job{}
	if done {
		s.remove(removal{id: id, c: c}) // then removedEvent
		return
	}
	s.sched[c].insert(id, due)
}

// closePass ends the pass of channel c; hiteof says it read to the end.
func (s *Sched) closePass(c int, hiteof bool) {
	p := &s.passes[c]
	p.f.Close()
	j := p.job
	*p = pass{}
	if hiteof {
		s.jobs[j].hiteof = true
	}
	s.jobClose(j)
}

// passStep makes up to rounds pass rounds (at least one), fewer when a
// round finds nothing to do. The loop gives it the number of messages its
// todo step preprocessed: qmail's loop preprocesses one message and makes
// one round per iteration, and preprocessing in batches (todo.go) with one
// round after each batch started about one delivery per channel for every
// 30-90 messages preprocessed while a burst lasted, the channels idle. A
// round is what an iteration without todo work does, so the extra rounds
// change nothing but the pace.
func (s *Sched) passStep(rounds int) {
	for i := 0; i < max(rounds, 1); i++ {
		if !s.passRound() {
			return
		}
	}
}

// passRound advances the pass of each channel by at most one record, then
// handles one entry of the fail list and one of the done list (while the
// removals keep up: doneOpen). It reports whether it did anything.
func (s *Sched) passRound() bool {
	did := false
	for c := 0; c < 2; c++ {
		if s.passChan(c) {
			did = true
		}
	}
	if e, ok := s.fail.min(); ok && e.due <= s.recent {
		s.fail.delmin()
		s.pqadd(e.id)
		did = true
	}
	if e, ok := s.done.min(); ok && e.due <= s.recent && s.doneOpen() {
		s.done.delmin()
		s.messDone(e.id)
		did = true
	}
	return did
}

// passChan advances the pass of channel c by at most one record (a held
// channel: past its done records); it reports whether it did anything.
func (s *Sched) passChan(c int) bool {
	if s.exitasap {
		return false
	}
	p := &s.passes[c]
	if s.cf.hold.held(c) {
		// No delivery starts, but a pass suspended (every slot busy)
		// with only done records before the end of its file reads
		// past them and sees that end: else a message whose
		// deliveries all finished would stay in the queue, done, for
		// the whole hold. A record still to deliver waits for the
		// release.
		did := false
		for p.open {
			b, err := p.r.Peek(1)
			if err == io.EOF {
				s.closePass(c, true)
				return true
			}
			if err != nil || b[0] != 'D' {
				break
			}
			rec, err := p.r.ReadString(0)
			if err == io.EOF { // a torn last record ends the file, as below
				s.closePass(c, true)
				return true
			}
			if err != nil {
				s.log.line("warning: trouble reading ", fnChan(c, p.id), "; will try again later")
				s.closePass(c, false)
				return true
			}
			p.pos += int64(len(rec))
			did = true
		}
		return did
	}
	opened := false
	if !p.open {
		if !s.jobAvail() {
			return false
		}
		e, ok := s.sched[c].min()
		if !ok || e.due > s.recent {
			return false
		}
		s.sched[c].delmin()
		s.sched[c].shrink()
		if s.mc.isHeld(e.id) && s.hasPending(c, e.id) {
			s.mc.park(c, e) // held by qmailctl: keeps its due time
			return true
		}
		n := fnChan(c, e.id)
		f, err := qhome.OpenRegular(s.path(n), os.O_RDONLY)
		if err != nil {
			s.log.line("warning: trouble opening ", n, "; will try again later")
			s.sched[c].insert(e.id, s.recent+sleepSysfail)
			return true
		}
		sender, birth, ok := s.getinfo(e.id)
		if !ok {
			// Named as qmail does: the info file is the one in trouble.
			f.Close()
			s.log.line("warning: trouble opening ", fnSplit("info", e.id), "; will try again later")
			s.sched[c].insert(e.id, s.recent+sleepSysfail)
			return true
		}
		j := s.jobOpen(e.id, c)
		jb := &s.jobs[j]
		jb.retry = nextretry(birth, s.recent, c)
		jb.dying = s.holds.err == nil && s.recent > birth+s.cf.lifetime+s.holds.heldWithin(c, birth, s.recent)
		jb.sender = sender
		*p = pass{open: true, id: e.id, job: j, f: f, r: bufio.NewReaderSize(f, 1024)}
		opened = true
	}
	if !s.canStart(c) {
		return opened
	}
	rec, err := p.r.ReadString(0)
	if err == io.EOF {
		s.closePass(c, true)
		return true
	}
	if err != nil {
		s.log.line("warning: trouble reading ", fnChan(c, p.id), "; will try again later")
		s.closePass(c, false)
		return true
	}
	switch rec[0] {
	case 'T':
		addr := rec[1 : len(rec)-1]
		if c == chanRemote && s.cf.hold.domainHeld(addr) {
			s.jobs[p.job].skipped = true
			break
		}
		s.jobs[p.job].numtodo++
		s.startDelivery(c, p.job, p.pos, addr)
	case 'D':
	default:
		s.log.line("warning: unknown record type in ", fnChan(c, p.id), "!")
		s.closePass(c, false)
		return true
	}
	p.pos += int64(len(rec))
	return true
}

// startDelivery takes a free slot and hands the request to the writer.
func (s *Sched) startDelivery(c, j int, pos int64, recip string) {
	slot := -1
	for i := range s.dels[c] {
		if !s.dels[c][i].used {
			slot = i
			break
		}
	}
	if slot < 0 {
		return
	}
	jb := &s.jobs[j]
	jb.refs++
	s.masterDelid++
	s.dels[c][slot] = delivery{used: true, job: j, delid: s.masterDelid, mpos: pos, recip: recip}
	s.used[c]++
	req := &spawnproto.Request{Slot: slot, Mess: split(jb.id) + "/" + utoa(jb.id),
		Sender: verp(jb.sender, recip), Recipient: recip}
	s.pending[c]++ // canStart keeps it at most reqQueue: the send does not block
	s.reqCh[c] <- req.EncodeWidth(s.width[c])
	s.log.line("starting delivery ", utoa(s.masterDelid), ": msg ", utoa(jb.id),
		" to ", chanName[c], " ", safe(recip))
	s.status()
}

const tooLong = "I'm not going to try again; this message has been in the queue too long.\n"

// report handles one delivery report (spec/scheduler.md §6).
func (s *Sched) report(c int, r spawnproto.Report) {
	if r.Slot >= s.concurrency[c] || !s.dels[c][r.Slot].used {
		s.log.line("warning: internal error: delivery report out of range")
		return
	}
	d := &s.dels[c][r.Slot]
	j := d.job
	jb := &s.jobs[j]
	delid := utoa(d.delid)
	letter, text := r.Letter, r.Text
	mangled := letter != 'K' && letter != 'Z' && letter != 'D'
	if mangled {
		// qmail defers a report it cannot read. For a message deleted
		// or bounced meanwhile that deferral is final as any other
		// (finalDeferral), or the recipient would be delivered again
		// after the delete; the report's text means nothing.
		s.log.line("delivery ", delid, ": report mangled, will defer")
		letter, text = 'Z', ""
	}
	// The qmailctl request comes before queuelifetime: a deleted
	// message's deferral drops the recipient, a bounced message's
	// bounces it with the postmaster's line, old or not. (Turning the Z
	// of a dying job into D first hid it, and a deleted message was
	// bounced.) A mangled report stays a deferral when dying, as in
	// qmail.
	letter, text, drop := s.finalDeferral(jb.id, letter, text)
	if letter == 'Z' && !drop && jb.dying && !mangled {
		letter = 'D'
		text += tooLong
	}
	switch letter {
	case 'K':
		s.log.line("delivery ", delid, ": success: ", safe(text))
		s.markDone(c, jb.id, d.mpos)
		jb.numtodo--
	case 'Z':
		if !mangled {
			s.log.line("delivery ", delid, ": deferral: ", safe(text))
		}
		if drop { // deleted by qmailctl while in flight
			s.markDone(c, jb.id, d.mpos)
			jb.numtodo--
		}
	case 'D':
		s.log.line("delivery ", delid, ": failure: ", safe(text))
		s.addBounce(jb.id, d.recip, text)
		s.markDone(c, jb.id, d.mpos)
		jb.numtodo--
	}
	*d = delivery{}
	s.used[c]--
	s.jobClose(j)
	s.status()
}

// markDone overwrites the record's T with D.
func (s *Sched) markDone(c int, id uint64, pos int64) {
	n := fnChan(c, id)
	f, err := qhome.OpenRegular(s.path(n), os.O_WRONLY)
	if err == nil {
		_, err = f.WriteAt([]byte{'D'}, pos)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.log.line("warning: trouble marking ", n, "; message will be delivered twice!")
	}
}

// BounceParagraph formats one failure for bounce/ID (spec/scheduler.md §8).
// A CR, LF or NUL of the recipient becomes '_' (noLineBreak), as in the
// bounce's header lines: an address injected locally (sendmail, qmail-queue)
// may hold them, and qmail copies them into the text, where a LF could
// forge a line or a paragraph of the report and a bare CR makes the
// bounce one that strict SMTP servers refuse (RFC 5321 §2.3.8).
func BounceParagraph(recip, text string) []byte {
	var b strings.Builder
	b.WriteString("<")
	b.WriteString(noLineBreak(recip))
	b.WriteString(">:\n")
	b.WriteString(text)
	if text != "" && !strings.HasSuffix(text, "\n") {
		b.WriteByte('\n')
	}
	p := []byte(b.String())
	// No empty line inside a paragraph: every '\n' that follows another
	// becomes '/', the paragraph's last byte aside. From the end, so that
	// each byte is compared with the one before it as it was ("\n\n\n"
	// -> "\n//"), as qmail does.
	for i := len(p) - 2; i > 0; i-- {
		if p[i] == '\n' && p[i-1] == '\n' {
			p[i] = '/'
		}
	}
	return append(p, '\n')
}
