package sched

import (
	"os"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// messWalk walks mess/0..22 one entry at a time.
type messWalk struct {
	sub int
	dir *os.File
}

// next returns the next message id; ok is false at the end of the walk.
func (w *messWalk) next(s *Sched) (uint64, bool) {
	for w.sub < qhome.Split {
		if w.dir == nil {
			f, err := os.Open(s.path("mess/" + itoa(w.sub)))
			if err != nil {
				s.sleepRetry("alert: unable to opendir mess/" + itoa(w.sub) + ", sleeping...")
				return 0, true
			}
			w.dir = f
		}
		names, err := w.dir.Readdirnames(1)
		if err != nil || len(names) == 0 {
			w.dir.Close()
			w.dir = nil
			w.sub++
			continue
		}
		if id, ok := parseID(names[0]); ok {
			return id, true
		}
		return 0, true
	}
	return 0, false
}

// cleanupStep removes one stale message (mess file older than 36 h by
// atime, with neither info nor todo) per iteration, through qmail-clean.
// A message whose removal is under way (remove.go) is skipped: between
// its remover's unlink of info/ID and that remover's own foop/ID it looks
// stale, and a second foop/ID would free the inode early, so that the
// remover's foop/ID then removed a new message queued on it.
func (s *Sched) cleanupStep() {
	if s.cleanupWalk == nil {
		if s.recent < s.cleanupNext {
			return
		}
		s.cleanupWalk = &messWalk{}
	}
	id, ok := s.cleanupWalk.next(s)
	if !ok {
		s.cleanupWalk = nil
		s.cleanupNext = s.recent + sleepCleanup
		return
	}
	if id == 0 || s.ending(id) {
		return
	}
	mn := fnSplit("mess", id)
	var st syscall.Stat_t
	if err := syscall.Stat(s.path(mn), &st); err != nil {
		if err != syscall.ENOENT {
			s.log.line("warning: unable to stat ", mn)
		}
		return
	}
	if s.recent <= int64(st.Atim.Sec)+ossified {
		return
	}
	for _, n := range []string{fnSplit("info", id), fnFlat("todo", id)} {
		if _, err := os.Stat(s.path(n)); err == nil {
			return
		} else if !isNoent(err) {
			s.log.line("warning: unable to stat ", n)
			return
		}
	}
	s.cleanRequest("foop", id)
}

// writeBack stores each scheduled message's due time as the mtime of its
// channel file, so a restart keeps the retry schedule (§11, TERM).
func (s *Sched) writeBack() {
	s.unparkAll()
	for c := 0; c < 2; c++ {
		for _, e := range s.sched[c].h {
			n := fnChan(c, e.id)
			t := time.Unix(e.due, 0)
			if err := os.Chtimes(s.path(n), t, t); err != nil {
				s.log.line("warning: unable to utime ", n, "; message will be retried too soon")
			}
		}
	}
}
