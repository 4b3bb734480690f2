// Package threads keeps a reserve of idle OS threads in a long-running
// daemon, so that a full process table does not kill it.
//
// The Go runtime runs goroutines on OS threads it makes as it needs them:
// one for each goroutine blocked in a system call (a fork, until the child
// has called exec), one for each P, and a few of its own. When it cannot
// make one (clone(2) fails with EAGAIN: the tasks of the cgroup are at
// pids.max, or of the user at RLIMIT_NPROC) it does not fail the call that
// needed it: the whole process dies ("fatal error: newosproc"). qmail's C
// daemons are single-threaded; for them a full process table only makes a
// fork fail, and the delivery is deferred. For a spawner it is the
// children, each a Go program of eight or nine threads, that fill the
// table, and the spawner that needs its ninth thread a moment later dies
// with every delivery it runs: qmail-send loses its spawner and exits, and
// the deliveries in flight are made again at the next start.
//
// The runtime never ends an idle thread: one that has run out of work
// waits for more, and is the first to be given it. Reserve therefore makes
// n threads at once, at start while the process table has room, and lets
// them go idle. Later bursts (a burst of forks when a hold is released)
// run on those, and only a need beyond them asks the kernel for more. An
// idle thread costs a few pages of kernel memory and its small stack.
package threads

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Daemon is the reserve of the daemons that start processes: qmail-send,
// qmail-lspawn, qmail-rspawn and qmail-smtpd -listen. Each of them peaks at
// nine to thirteen threads in the integration tests' hold releases (200
// deliveries at concurrency 10 and 20); 16 covers that with room to spare,
// and costs about 40 tasks more for an idle system.
const Daemon = 16

// share is the part of the room left under a task limit that one reserve
// may take: the daemons start one after the other, and the deliveries
// need the rest.
const share = 8

// Reserve makes sure the process has at least n OS threads besides the
// one it runs on, leaving them idle for the runtime to use, and returns
// how many it made. It returns when they exist.
//
// Under a task limit (the pids.max of the process's cgroup or of one above
// it, or RLIMIT_NPROC for a user without privilege) it makes no more than
// an eighth of the room it finds (Fit): a reserve of its own must never be
// what keeps the mail system from starting under a limit it ran under
// before (QA: an idle system went from 47 tasks to 89, and one limited to
// 60-85 tasks no longer started). A thread the kernel refuses all the
// same ends the process, as it would have later.
//
// How: n goroutines each lock themselves to a thread and wait until all n
// are running. A goroutine locked to a thread owns it while it waits, so
// the n of them are on n distinct threads; once all are there they unlock
// and return, and the threads go idle.
func Reserve(n int) int {
	n = Fit(n)
	if n <= 0 {
		return 0
	}
	var running, done sync.WaitGroup
	release := make(chan struct{})
	running.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			running.Done()
			<-release
			runtime.UnlockOSThread() // back to the runtime, idle, not ended
		}()
	}
	running.Wait()
	close(release)
	done.Wait()
	return n
}

// Fit returns n, or less under a task limit: an eighth of the tasks the
// limits still allow. With no limit found (or none readable) it is n.
func Fit(n int) int {
	room, ok := cgroupRoom(cgroupRoot, procSelfCgroup)
	if lim, ok2 := nprocRoom(); ok2 && (!ok || lim < room) {
		room, ok = lim, true
	}
	if ok {
		n = min(n, int(max(room, 0)/share))
	}
	return n
}

// Where the cgroup file systems and this process's list of its cgroups
// are; variables for tests.
var (
	cgroupRoot     = "/sys/fs/cgroup"
	procSelfCgroup = "/proc/self/cgroup"
)

// cgroupRoom returns the tasks still allowed by the pids controller: the
// least pids.max - pids.current of the process's pids cgroup and its
// ancestors, in the v1 hierarchy (root/pids/PATH, from the line
// "N:pids:PATH" of /proc/self/cgroup) or the v2 one (the line "0::PATH",
// under root, or root/unified in a hybrid layout). ok is false when no
// limit is found.
func cgroupRoom(root, self string) (room int64, ok bool) {
	f, err := os.Open(self)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var dirs []string // a pids cgroup's directory, and the mount it is below
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			dirs = append(dirs, root, parts[2], filepath.Join(root, "unified"), parts[2])
		case contains(strings.Split(parts[1], ","), "pids"):
			dirs = append(dirs, filepath.Join(root, "pids"), parts[2])
		}
	}
	for i := 0; i+1 < len(dirs); i += 2 {
		mount, path := dirs[i], filepath.Clean("/"+dirs[i+1])
		for {
			if r, has := limitRoom(filepath.Join(mount, path)); has && (!ok || r < room) {
				room, ok = r, true
			}
			if path == "/" {
				break
			}
			path = filepath.Dir(path)
		}
	}
	return room, ok
}

// limitRoom reads dir's pids.max and pids.current: how many more tasks it
// allows, and whether it has a limit ("max" is none).
func limitRoom(dir string) (int64, bool) {
	m, err := os.ReadFile(filepath.Join(dir, "pids.max"))
	if err != nil {
		return 0, false
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(string(m)), 10, 64)
	if err != nil {
		return 0, false // "max"
	}
	c, err := os.ReadFile(filepath.Join(dir, "pids.current"))
	if err != nil {
		return 0, false
	}
	cur, err := strconv.ParseInt(strings.TrimSpace(string(c)), 10, 64)
	if err != nil {
		return 0, false
	}
	return limit - cur, true
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// nprocRoom is the room RLIMIT_NPROC leaves a user without privilege. How
// many tasks the user has is not known cheaply, so the whole limit counts
// as the room: a limit in the thousands leaves the reserve whole, a small
// one cuts it. Root (and whoever holds CAP_SYS_RESOURCE or CAP_SYS_ADMIN)
// is not bound by it; the capabilities are not looked at, root's uid is.
func nprocRoom() (int64, bool) {
	if os.Geteuid() == 0 {
		return 0, false
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NPROC, &lim) != nil || lim.Cur == unix.RLIM_INFINITY || lim.Cur > 1<<40 {
		return 0, false
	}
	return int64(lim.Cur), true
}

// Exiting runs f on a thread of its own that exits when f returns.
// Never on the process's main thread: Go does not end that one when a
// goroutine locked to it ends, so a private descriptor table made there
// would stay for good (and /proc/self/fd, which shows the main thread's
// table, would show it). A goroutine that finds itself on the main thread
// starts f's goroutine while it holds that thread, so that the new one
// runs elsewhere, and lets the main thread go once the new one holds its
// own. Go never starts a thread from a locked one (it has a template
// thread for that), so no other thread shares a table made here.
func Exiting(f func()) {
	runtime.LockOSThread() // never unlocked but on the main thread
	if unix.Gettid() != unix.Getpid() {
		f()
		return
	}
	locked := make(chan struct{})
	go func() {
		runtime.LockOSThread() // not the main thread: this goroutine holds it
		close(locked)
		f()
	}()
	<-locked
	runtime.UnlockOSThread()
}
