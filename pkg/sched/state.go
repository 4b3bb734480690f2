package sched

import "github.com/hqmail/hqmail/pkg/qerr"

// qmail-send keeps two state files of its own in bounce/: holdperiods
// (holdLog) and heldmsgs (msgCtl). Each is rewritten whole from memory
// at every change. A write that fails (a full disk, no descriptor left)
// leaves the file behind memory, and nothing would write it again until
// the next change, which for holdperiods can be days away: a restart
// meanwhile counted the time since as held, or not, as the stale file
// said. So a failed write is tried again every sleepSysfail seconds
// until one succeeds. The failure is logged once, and the success that
// ends it once.
type stateFile int

const (
	stateHoldLog stateFile = iota
	stateHeldMsgs
)

var stateName = [2]string{HoldLogName, HeldMsgsName}

// saveState takes the result of a write of state file f. A failure marks
// it for a retry (the first one of a run is logged); a success clears
// the mark. fromMemory false means the caller put memory back as it was
// after its failed write (a qmailctl request answered defer): the file is
// then no further behind memory than before, and the mark stays as it is.
func (s *Sched) saveState(f stateFile, err error, fromMemory bool) {
	switch {
	case err == nil:
		if s.stateRetry[f] {
			s.stateRetry[f] = false
			s.log.line("info: bounce/", stateName[f], " written after an earlier failure")
		}
	case !fromMemory:
	case !s.stateRetry[f]:
		s.stateRetry[f] = true
		s.stateRetryAt = s.recent + sleepSysfail
		switch f {
		case stateHoldLog:
			s.log.line("warning: unable to write bounce/", HoldLogName, ": ", qerr.Bare(err).Error())
		default:
			s.log.line("warning: unable to write bounce/", HeldMsgsName)
		}
	}
}

// retryState writes again, once their time has come, the state files
// whose last write failed.
func (s *Sched) retryState() {
	if !s.stateRetry[stateHoldLog] && !s.stateRetry[stateHeldMsgs] {
		return
	}
	if s.recent < s.stateRetryAt && !s.exitasap {
		return
	}
	if s.stateRetry[stateHoldLog] {
		s.saveState(stateHoldLog, s.holds.save(), true)
	}
	if s.stateRetry[stateHeldMsgs] {
		s.saveState(stateHeldMsgs, s.mc.save(), true)
	}
	s.stateRetryAt = s.recent + sleepSysfail
}

// stateWake is when retryState next has work; 0 when none.
func (s *Sched) stateWake() int64 {
	if !s.stateRetry[stateHoldLog] && !s.stateRetry[stateHeldMsgs] {
		return 0
	}
	return s.stateRetryAt
}
