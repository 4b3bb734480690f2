// Command qmail-send is the scheduler: it preprocesses new messages,
// schedules local and remote deliveries, bounces failures and removes
// finished messages.
//
// Privilege contract: runs as qmails (group qmail), started only by
// qmail-start, cwd irrelevant (it finds QMAILHOME with qhome.Root). No
// arguments. fd 0: log lines (write); fd 1/2: qmail-lspawn requests/reports;
// fd 3/4: qmail-rspawn requests/reports; fd 5/6: qmail-clean
// requests/replies; fd 7: a pipe to qmail-start, closed as soon as the
// signals below are caught (qmail-start holds back what it would forward
// until then; sched.SignalsReady). Signals: TERM (finish running
// deliveries, exit), ALRM (retry everything now), HUP (re-read locals,
// virtualdomains, holdlocal, holdremote). Exit 0 after TERM, 111 if it
// cannot start or it lost a spawner or qmail-clean without a TERM (an
// "alert:" line says why).
package main

import (
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sched"
	"github.com/hqmail/hqmail/pkg/threads"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: qmail-send
  The scheduler: delivers the queue through qmail-lspawn, qmail-rspawn and
  qmail-clean. Started only by qmail-start, which wires its descriptors;
  not to be run by hand. See qmail-send(8), qmail-start(8).
`

func main() {
	usage.NoArgs(os.Args[1:], help)
	// First: until the handlers are in place a HUP or TERM kills
	// qmail-send, so qmail-start forwards nothing before SignalsReady.
	sigs := sched.Notify()
	sched.SignalsReady()
	// What qmail-send keeps per queued message is small (well under 100
	// bytes); its peak RSS is mostly garbage from scanning the queue,
	// which the collector lets reach 4 MB before its first cycle at the
	// default GOGC=100. Half that keeps the peak with 5,000 queued near
	// 8 MB instead of 10 (docs/performance.md); the live heap is small,
	// so the extra cycles cost little.
	debug.SetGCPercent(50)
	signal.Ignore(syscall.SIGPIPE)
	syscall.Umask(0o077)
	// The pipes to the spawners and qmail-clean are qmail-start's, private
	// to each pair of programs, so they wait in the poller (pollfd); the
	// log descriptor may be shared (a terminal, a logger's pipe) and is
	// left as it is.
	fd := func(n int, name string) *os.File { return pollfd.File(n, name) }
	logFile := os.NewFile(0, "log")
	// fd 2 is the read end of qmail-lspawn's report pipe, where the
	// runtime's crash trace would be lost (EBADF): send it to the log too.
	_ = debug.SetCrashOutput(logFile, debug.CrashOptions{})
	// After the crash output: a thread refused here must leave its trace.
	threads.Reserve(threads.Daemon) // a full process table must not end the scheduler
	os.Exit(sched.Run(sched.Options{
		Root:     qhome.Root(),
		Log:      logFile,
		SpawnReq: [2]io.Writer{fd(1, "lspawn-req"), fd(3, "rspawn-req")},
		SpawnRep: [2]io.Reader{fd(2, "lspawn-rep"), fd(4, "rspawn-rep")},
		CleanReq: fd(5, "clean-req"),
		CleanRep: fd(6, "clean-rep"),
		Signals:  sigs,
		Trigger:  true,
	}))
}
