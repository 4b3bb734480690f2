package sched

import (
	"os"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// mutexWatch is qmail-send's hold on queue/lock/sendmutex after the start
// (takeMutex took the first lock).
type mutexWatch struct {
	f    *os.File    // the file locked, the one the name gave when last checked
	info os.FileInfo // f's identity
	said string      // the last trouble logged ("" when none), said once
	// displaced is set once another qmail-send was found holding the
	// file the name gives: this one is stopping and writes no
	// sendstatus, which is the other's now.
	displaced bool
}

// checkMutex runs before each step of the loop. It notices a sendmutex
// replaced while qmail-send runs: a backup restored over the live queue
// (migrating.md forbids it, QA did it) or a copy of queue/ over itself.
// The lock held is then on a file nobody looks at: qmailctl finds no
// qmail-send running, and a second qmail-start runs another qmail-send on
// the same queue, each delivering what the other delivers (QA move: 150
// duplicates). qmail has the same weakness.
//
// The file the name gives now is locked too and gets this pid, so that
// every probe sees this qmail-send again and a later start is refused.
// If another qmail-send holds it already, this one stops as at TERM (its
// deliveries under way end first) and leaves the queue to the one the
// file names; deliveries this one had started before it could see the
// replacement may still be made twice, which the alert says. A
// sendmutex that is gone or no longer a regular file is warned about
// once: no second qmail-send can start then, but qmailctl cannot find
// this one either.
func (s *Sched) checkMutex() {
	m := &s.mutex
	if m.info == nil || m.displaced {
		return
	}
	name := filepath.Join(s.queue, "lock", "sendmutex")
	st, err := os.Lstat(name)
	if err == nil && os.SameFile(st, m.info) {
		m.said = ""
		return
	}
	f, err := openLockFile(name, os.O_WRONLY, 0)
	if err != nil {
		m.trouble(s, qerr.Bare(err).Error())
		return
	}
	if err := lockMutex(int(f.Fd())); err != nil {
		f.Close()
		m.displaced = true
		s.log.line("alert: queue/lock/sendmutex was replaced while qmail-send ran and another qmail-send holds the new one:",
			" this one is stopping; a message delivered by both in the meantime was delivered twice")
		if !s.exitasap {
			s.exitasap = true
		}
		return
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		m.trouble(s, qerr.Bare(err).Error())
		return
	}
	rewrite(f, itoa(os.Getpid())+"\n")
	m.f.Close()
	m.f, m.info, m.said = f, info, ""
	s.log.line("warning: queue/lock/sendmutex was replaced while qmail-send ran (a queue restored or copied over the live one?);",
		" locked the new one")
}

// trouble logs why the file the name gives cannot be locked, once for
// each new reason.
func (m *mutexWatch) trouble(s *Sched, why string) {
	if why == m.said {
		return
	}
	m.said = why
	s.log.line("warning: unable to lock queue/lock/sendmutex again: ", why,
		"; qmailctl cannot find qmail-send running until it can (qmail-install -root makes a missing one again)")
}
