// Package oomadj lets a delivery agent offer itself to the kernel's OOM
// killer ahead of the daemons.
//
// When memory runs out (a memory cgroup's limit, most often) the kernel
// kills the process with the highest badness: its share of the memory,
// plus its oom_score_adj in thousandths of the whole. With every process
// at the default 0 the largest one goes, and that is usually a daemon:
// qmail-send or a spawner, whose loss stops the whole mail system
// (qmail-send exits when it loses a spawner, and under make run or the rc
// script nothing starts it again). A delivery agent killed instead
// (qmail-local, qmail-remote, qmail-getpw) costs one delivery, which
// qmail-send defers and tries again.
//
// Volunteer therefore raises the calling process's oom_score_adj to
// Score. Raising it needs no privilege (lowering does), so the agents do
// it themselves and the daemons are left as they are.
//
// Score is 500: above the daemons' default 0 (and above any negative
// value a supervisor gives the whole service, such as systemd's
// OOMScoreAdjust=), so an agent goes first unless a daemon holds more
// than half of the memory (of the cgroup's limit, or of RAM and swap)
// beyond what the agent holds: a daemon that large has leaked and is then
// the better victim. It is below the maximum 1000, at which any agent
// would be taken first even when it is tiny and killing it frees almost
// nothing.
//
// A value already at or above Score (set by an administrator or a
// supervisor) is never lowered. Every error (no /proc, a read-only one,
// EACCES) is ignored: this is a hint to the kernel, never a reason to fail
// a delivery. It costs one open, one read and at most one write, and no
// goroutine; the programs a delivery agent starts (a .qmail |command)
// inherit the value.
//
// Non-dumpable processes. In a tree installed as root the agents are
// execute-only files (mode 0711) run by users who cannot read them, and
// the kernel makes such a process non-dumpable: its /proc/self files then
// belong to root and it cannot open its own oom_score_adj for writing
// (EACCES), so the hint would be lost in exactly the installations it is
// meant for. On that EACCES, and only when the process is non-dumpable,
// Volunteer makes it dumpable for the one open (PR_SET_DUMPABLE 1) and
// non-dumpable again at once, before reading anything: a second open and
// three prctl calls. During that window, at program start, before the
// program has read its input or any control file, only processes of the
// same uid gain access to it (ptrace, /proc/PID/fd, /proc/PID/mem), and
// what they get then lasts beyond it (a tracer stays attached, an open
// mem file stays readable; QA won the race 91 times in 400 starts); they
// are the agent's own kind (the recipient for qmail-local, qmailr for
// qmail-remote, qmailp for qmail-getpw), which can already read
// everything the agent will and gain only an image of its binary. A fs.suid_dumpable of 2 is restored as 0, the stricter value
// (prctl sets only 0 and 1).
package oomadj

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Score is the oom_score_adj a delivery agent asks for (range -1000..1000).
const Score = 500

// path is the file read and written; tests point it at a file of their own.
var path = "/proc/self/oom_score_adj"

// Volunteer raises the process's oom_score_adj to Score if it is lower.
func Volunteer() {
	fd, err := open()
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var buf [32]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n <= 0 {
		return
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || cur >= Score {
		return
	}
	// At offset 0: the kernel ignores the offset, a test's plain file
	// does not.
	unix.Pwrite(fd, []byte(strconv.Itoa(Score)+"\n"), 0)
}

// open opens path for reading and writing, through a dumpable window when
// the process is non-dumpable (see the package comment).
func open() (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != unix.EACCES {
		return fd, err
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d == 1 {
		return -1, unix.EACCES // refused for another reason
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return -1, err
	}
	fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	return fd, err
}
