package sched

import (
	"errors"
	"io"
	"os"
	"sync"
)

// Removing finished files off the loop (docs/performance.md, "Removing
// without waiting, waiting without spinning").
//
// Unlinking a queue file can wait on the disk: a file system mounted with
// online discard (ext4 "-o discard" without a journal, as on the benchmark
// machine) trims the freed block inside unlink(2), a round trip to the
// device for every file that held data. The loop used to make those calls
// itself, two per message (the channel file, then info), and then wait for
// qmail-clean's third (mess), so during a hold release it spent most of its
// time waiting for the disk while both CPUs idled.
//
// Now the loop hands each removal to one of a few remover goroutines and
// goes on; a removal ends with an event (evRemoved) that the loop handles
// exactly where the synchronous call used to return. The order of
// spec/scheduler.md §8 is kept for every message: its channel file goes,
// then (after the loop has seen that, checked the message is finished and
// logged "end msg") its info file, and only after that qmail-clean is asked
// to remove the message. Removals of different messages overlap, which is
// what keeps the disk's round trips out of the loop's time.
//
// The removers can fall behind the deliveries (a drain at disk speed of
// trims: 40,000 delivered messages were still queued after a release of
// 99,000). The info removals, which end messages, go first and at most
// infoBacklog are out at once; the finished messages wait in the done list
// meanwhile. At the exit only the removals under way are waited for, and
// the channel files not yet begun are left for the next start
// (stopRemovals): TERM took 27 s when every queued removal was waited for.
//
// inflight counts, per message, the removals handed out and not yet seen
// back by the loop: while it is non-zero the message is ending, and a
// second messDone for it (the done list may hold it twice) does nothing.
//
// ended marks the messages that messDone has finished ("end msg", their
// control state forgotten) and whose info file and foop/ID are in a
// remover's hands: until the loop sees that removal through, the info
// file may still be there, but the message is gone, and a qmailctl hold
// of it would outlive it (msgState).

// removers is the number of remover goroutines (each one waits in a
// system call, on a thread of its own, while the disk works).
const removers = 4

// infoBacklog bounds the info removals handed out and not seen back: the
// done list is worked (messDone, which logs "end msg" and hands the info
// removal out) only while fewer are (doneOpen). The rest of the finished
// messages wait in the done list, on disk as they are (channel files
// gone, info/ID there), which the next start finds as well.
const infoBacklog = 2 * removers

// unlinkHook performs one unlink of a remover; rel names the file relative
// to queue/. It is a package variable so that tests can record the order
// of removals and clean requests, slow them down and make one fail.
var unlinkHook = func(rel string, unlink func() error) error { return unlink() }

// removalsStopped is called (tests only) when the loop, ending, drops the
// channel-file removals not begun (stopRemovals), with their number.
var removalsStopped = func(dropped int) {}

// removal is one unit of work for a remover.
type removal struct {
	id   uint64
	c    int  // the channel whose file to remove (when !info)
	info bool // false: remove channel file c; true: remove info, then ask qmail-clean for foop/ID
}

// removed is a removal as it ended.
type removed struct {
	removal
	err      error // the unlink failed (ENOENT is success)
	cleaned  bool  // info: qmail-clean answered '+'
	cleanErr error // info: the qmail-clean pipe failed
}

// removeQueue hands removals to the removers. The loop never blocks on it:
// the channel-file queue grows instead (a removal is a few words), and the
// removers report through the loop's event channel. The info removals are
// a queue of their own, taken first: at most infoBacklog of them are out
// (doneOpen), each of a message whose "end msg" is logged, and the exit
// waits for them; a channel file's removal only ends a pass, and one not
// begun is left for the next start (stopRemovals).
type removeQueue struct {
	mu    sync.Mutex
	info  []removal
	chans []removal
	// started counts the channel-file removals a remover has taken whose
	// end the loop has not seen yet.
	started int
	// stopped is set when the loop ends: the channel-file removals
	// queued then are dropped, later ones are not queued, none is taken.
	stopped bool
	wake    chan struct{}
}

// cleanPipe is qmail-clean's pipe pair, used by the loop and the removers:
// qmail-clean answers each request in order, so one caller at a time
// writes a request and reads its answer.
type cleanPipe struct {
	mu  sync.Mutex
	req io.Writer
	rep io.Reader
	buf [1]byte
}

// call sends name ("todo/ID", "foop/ID") and returns qmail-clean's answer.
func (p *cleanPipe) call(name string) (byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.req.Write(append([]byte(name), 0)); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(p.rep, p.buf[:]); err != nil {
		return 0, err
	}
	return p.buf[0], nil
}

// startRemovers starts the remover goroutines; they end with s.stop.
func (s *Sched) startRemovers() {
	s.rq = &removeQueue{wake: make(chan struct{}, 1)}
	s.inflight = make(map[uint64]int)
	s.ended = make(map[uint64]bool)
	for i := 0; i < removers; i++ {
		go s.remover()
	}
}

// remove hands r to a remover.
func (s *Sched) remove(r removal) {
	s.inflight[r.id]++
	if r.info {
		s.ended[r.id] = true
		s.infoOut++
	}
	s.rq.mu.Lock()
	switch {
	case r.info:
		s.rq.info = append(s.rq.info, r)
	case !s.rq.stopped:
		s.rq.chans = append(s.rq.chans, r)
	default:
		// Ending: dropped as the queued ones were (stopRemovals).
	}
	s.rq.mu.Unlock()
	select {
	case s.rq.wake <- struct{}{}:
	default:
	}
}

// ending reports whether removals of message id are under way.
func (s *Sched) ending(id uint64) bool { return s.inflight[id] > 0 }

// doneOpen reports whether the done list may be worked now: fewer than
// infoBacklog info removals are out, and the loop is not ending. While it
// is false the done list's entries wait (wakeup leaves them out; the end
// of an info removal, an event, wakes the loop).
func (s *Sched) doneOpen() bool { return s.infoOut < infoBacklog && !s.removalsStopped }

// stopRemovals is called when the loop could end (TERM, or a helper lost,
// and no delivery runs on a live channel). It drops the channel-file
// removals no remover has begun, and reports whether a removal must still
// be waited for: a channel file's removal a remover has begun, or an info
// removal (its message's "end msg" is logged; at most infoBacklog of
// them). From then on the done list is not worked (doneOpen): qmail's loop
// would have ended here.
//
// Dropping is safe: a channel file is removed only when its pass read it
// to the end with every recipient marked done (jobClose), and it stays so
// on disk. The next start schedules it at its mtime (scanInfo, pqadd: at
// once, as the last mark set it, unless the file was found done already
// and keeps a retry time an earlier exit wrote), its pass reads only done records to the
// end and removes it, and the message ends then as it would have now
// (spec/scheduler.md §6, §8); with its channel held the start removes it
// (dropDoneHeld). Nothing is delivered again, and "end msg" is logged
// once, at the next start. A message whose recipients could not all be
// marked ("message will be delivered twice!") keeps that record, as after
// a crash.
func (s *Sched) stopRemovals() bool {
	s.rq.mu.Lock()
	if !s.rq.stopped {
		s.rq.stopped = true
		s.removalsStopped = true
		n := len(s.rq.chans)
		s.rq.chans = nil
		removalsStopped(n)
	}
	busy := s.rq.started > 0
	s.rq.mu.Unlock()
	return busy || s.infoOut > 0
}

func (s *Sched) remover() {
	for {
		s.rq.mu.Lock()
		var r removal
		switch {
		case len(s.rq.info) > 0:
			r = s.rq.info[0]
			s.rq.info[0] = removal{}
			s.rq.info = s.rq.info[1:]
		case len(s.rq.chans) > 0 && !s.rq.stopped:
			r = s.rq.chans[0]
			s.rq.chans[0] = removal{}
			s.rq.chans = s.rq.chans[1:]
			s.rq.started++
		default:
			s.rq.mu.Unlock()
			select {
			case <-s.rq.wake:
				continue
			case <-s.stop:
				return
			}
		}
		if len(s.rq.info) > 0 || len(s.rq.chans) > 0 {
			// Another remover may take the next one at once.
			select {
			case s.rq.wake <- struct{}{}:
			default:
			}
		}
		s.rq.mu.Unlock()
		if !s.send(event{kind: evRemoved, removed: s.doRemoval(r)}) {
			return
		}
	}
}

// doRemoval runs in a remover: it touches only the files of r and
// qmail-clean's pipe.
func (s *Sched) doRemoval(r removal) *removed {
	done := &removed{removal: r}
	n := fnChan(r.c, r.id)
	if r.info {
		if s.cleanGone.Load() {
			done.cleanErr = errCleanGone // keep info: redone at the next start
			return done
		}
		n = fnSplit("info", r.id)
	}
	if err := unlinkHook(n, func() error { return unlink(s.path(n)) }); err != nil && !isNoent(err) {
		done.err = err
		return done
	}
	if r.info {
		var a byte
		a, done.cleanErr = s.clean.call("foop/" + utoa(r.id))
		done.cleaned = done.cleanErr == nil && a == '+'
		if done.cleanErr != nil {
			s.cleanGone.Store(true)
		}
	}
	return done
}

// errCleanGone is a removal not made because qmail-clean is gone.
var errCleanGone = errors.New("qmail-clean is gone")

// removedEvent is the loop's half of a removal: what followed the
// synchronous unlink before.
func (s *Sched) removedEvent(d *removed) {
	id := d.id
	if s.inflight[id]--; s.inflight[id] <= 0 {
		delete(s.inflight, id)
	}
	if !d.info {
		s.rq.mu.Lock()
		s.rq.started--
		s.rq.mu.Unlock()
	}
	if d.info {
		s.infoOut--
		if d.err == nil {
			// Info is gone (and foop/ID asked, or left to the
			// cleanup when qmail-clean is gone). After a failed
			// unlink the message stays ended until messDone's
			// next try removes it.
			delete(s.ended, id)
		}
		n := fnSplit("info", id)
		switch {
		case d.err != nil:
			s.log.line("warning: unable to unlink ", n, "; will try again later")
			s.done.insert(id, s.now()+sleepSysfail)
		case d.cleanErr != nil:
			s.lostClean()
		case !d.cleaned:
			s.log.line("warning: qmail-clean unable to clean up foop/", utoa(id))
		}
		return
	}
	c := d.c
	if d.err != nil {
		s.log.line("warning: unable to unlink ", fnChan(c, id), "; will try again later")
		s.sched[c].insert(id, s.now()+sleepSysfail)
		return
	}
	if s.ending(id) {
		return // the other channel's file is on its way out; its event goes on
	}
	o := fnChan(1-c, id)
	if _, err := os.Stat(s.path(o)); err == nil {
		return // the other channel is still going
	} else if !isNoent(err) {
		s.log.line("warning: unable to stat ", o)
	}
	s.done.insert(id, s.now())
}
