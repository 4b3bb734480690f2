// Package ctl is qmailctl, the control command of a running hqmail: it sets
// and clears the hold flags (control/holdlocal, control/holdremote), makes
// every deferred delivery due (flush), shows the state of qmail-send and
// the queue, and holds, releases, deletes and bounces single messages
// (msgctl.go: requests to the running qmail-send through queue/lock/sendctl,
// or queue changes under the sendmutex lock while it is stopped), and
// records, reads and applies control/linkwant for the network hooks
// (linkwant.go).
//
// Invariants:
//   - Flag files (and control/linkwant) are changed under an exclusive
//     flock on control/lock (mode 0600, so that no other user can hold
//     it: lockDir) and replaced atomically (write
//     NAME.tmp, fsync, rename, fsync the directory), so concurrent runs
//     never lose each other's changes and qmail-send never reads a
//     half-written file.
//   - qmail-send is found only through queue/lock/sendmutex: it runs when
//     the flock on that file is held, and the pid in the file must be the
//     lock's holder (/proc/locks). No process is ever found or signalled by
//     name.
//   - After a signal, qmailctl waits (bounded) until qmail-send rewrites
//     queue/lock/sendstatus with a higher generation, so that a hook script
//     can rely on the new state when qmailctl returns. The one exception
//     is linkwant apply nowait, which only signals (a down hook's hold,
//     made before the hook returns; its wait runs in the background).
package ctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcptofile"
)

// Exit codes.
const (
	ExitOK         = 0
	ExitNotRunning = 3   // the flags are as asked, but no qmail-send runs to act on them
	ExitUsage      = 100 // bad usage or a change that cannot be made
	ExitTemp       = 111 // I/O trouble, time-out, refusing to signal a stranger
)

// DefaultTimeout bounds the wait for qmail-send's confirmation.
const DefaultTimeout = 10 * time.Second

type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usageError(format string, a ...any) error { return &usageErr{fmt.Sprintf(format, a...)} }

const usage = `usage: qmailctl [-t SECONDS] COMMAND
  hold remote [DOMAIN...]     hold remote delivery (all, or only these domains)
  hold local                  hold local delivery
  boot                        the start-up hold: hold remote delivery, unless
                              qmail-send runs or a network hook has released it
                              since the machine booted
  release remote [DOMAIN...]  release remote delivery (all, or these domains)
  release local               release local delivery
  flush                       make every deferred delivery due now (SIGALRM)
  reload                      make qmail-send re-read its controls (SIGHUP)
  status                      hold state, held domains, queue counts, pid
  queue                       one line per queued message
  queue ID...                 one message in detail: every recipient and its state
  pid                         print qmail-send's pid
  hold ID...                  hold messages: no delivery starts until released
  release ID...               release held messages
  hold from|to ADDRESS        hold every queued message from/to ADDRESS
  release from|to ADDRESS     release every held message from/to ADDRESS
  delete ID...                drop messages (deliveries in progress finish)
  bounce ID...                return messages to their senders now
  linkwant [hold|release]     record (or print) what the last link event wants
                              (control/linkwant; for the network hooks)
  linkwant apply [nowait]     hold or release remote delivery as linkwant says,
                              read under the lock; nowait: signal qmail-send,
                              do not wait for its confirmation
`

// Main runs qmailctl for the tree at root with args (without argv[0]) and
// returns the exit code.
func Main(root string, args []string, stdout, stderr io.Writer) int {
	c := &cmd{root: root, out: stdout, err: stderr, timeout: DefaultTimeout, now: time.Now}
	return c.run(args)
}

type cmd struct {
	root     string
	out, err io.Writer
	timeout  time.Duration
	now      func() time.Time
}

func (c *cmd) fail(code int, format string, a ...any) int {
	fmt.Fprintf(c.err, "qmailctl: "+format+"\n", a...)
	return code
}

// commands are qmailctl's commands (an unknown one is a usage error
// wherever qmailctl runs).
var commands = map[string]bool{"hold": true, "release": true, "boot": true, "flush": true, "reload": true,
	"status": true, "queue": true, "linkwant": true, "delete": true, "bounce": true, "pid": true}

func (c *cmd) run(args []string) int {
options:
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch {
		case args[0] == "-t" && len(args) > 1:
			n, err := strconv.ParseFloat(args[1], 64)
			// !(n >= 0.001) also refuses NaN; below a millisecond no
			// answer could come. Only decimal digits and a point: Go's
			// 1_0 and 0x1p3 are no way to write seconds.
			if err != nil || strings.Trim(args[1], "0123456789.") != "" || !(n >= 0.001) || n > 3600 {
				return c.fail(ExitUsage, "bad timeout %q (seconds, 0.001 to 3600)", args[1])
			}
			c.timeout = time.Duration(n * float64(time.Second))
			args = args[2:]
		case strings.HasPrefix(args[0], "-t") && len(args[0]) > 2:
			args = append([]string{"-t", args[0][2:]}, args[1:]...) // -t5
		case args[0] == "-h" || args[0] == "--help":
			io.WriteString(c.out, usage)
			return ExitOK
		case args[0] == "--":
			args = args[1:]
			break options
		case args[0] == "-t":
			fmt.Fprintf(c.err, "qmailctl: -t needs a number of seconds\n")
			io.WriteString(c.err, usage)
			return ExitUsage
		default:
			fmt.Fprintf(c.err, "qmailctl: unknown option %q\n", args[0])
			io.WriteString(c.err, usage)
			return ExitUsage
		}
	}
	if len(args) == 0 {
		fmt.Fprintln(c.err, "qmailctl: no command")
		io.WriteString(c.err, usage)
		return ExitUsage
	}
	if why := qhome.Uninstalled(c.root, "qmailctl"); why != "" && commands[args[0]] {
		// A source checkout's bin/qmailctl: without this every command
		// would report a state ("not held") of a tree that is not there.
		return c.fail(ExitTemp, "%s", why)
	}
	if commands[args[0]] {
		// Before anything is read or changed: too few descriptors
		// would stop a change halfway.
		if code := c.checkDescriptors(); code != ExitOK {
			return code
		}
	}
	noArgs := func() bool {
		if len(args) == 1 {
			return true
		}
		fmt.Fprintf(c.err, "qmailctl: %s takes no arguments\n", args[0])
		return false
	}
	switch args[0] {
	case "hold", "release":
		if len(args) > 1 && (args[1] == "from" || args[1] == "to" || isID(args[1])) {
			return c.msgHold(args[0] == "hold", args[1:])
		}
		if len(args) > 1 && args[1] != "remote" && args[1] != "local" {
			fmt.Fprintf(c.err, "qmailctl: %s %q: not remote, local, from, to or a message id\n", args[0], args[1])
			break
		}
		return c.hold(args[0] == "hold", args[1:])
	case "boot":
		if !noArgs() {
			break
		}
		return c.boot()
	case "flush":
		if !noArgs() {
			break
		}
		return c.signal(syscall.SIGALRM, "every deferred delivery is due now")
	case "reload":
		if !noArgs() {
			break
		}
		return c.signal(syscall.SIGHUP, "controls re-read")
	case "status":
		if !noArgs() {
			break
		}
		return c.status()
	case "queue":
		if len(args) == 1 {
			return c.queue()
		}
		return c.reporting(func() int { return c.show(args[1:]) })
	case "linkwant":
		return c.linkWant(args[1:])
	case "delete":
		return c.del(args[1:])
	case "bounce":
		return c.bounce(args[1:])
	case "pid":
		if !noArgs() {
			break
		}
		pid, err := LocateSend(c.root)
		if errors.Is(err, ErrNotRunning) {
			return c.fail(ExitNotRunning, "qmail-send is not running")
		} else if err != nil {
			return c.fail(ExitTemp, "%v", err)
		}
		if _, err := fmt.Fprintln(c.out, pid); err != nil {
			return c.fail(ExitTemp, "unable to write output: %v", err)
		}
		return ExitOK
	default:
		fmt.Fprintf(c.err, "qmailctl: unknown command %q\n", args[0])
		if hint, ok := lwqVerbs[args[0]]; ok {
			fmt.Fprintf(c.err, "qmailctl: this is hqmail's qmailctl, not Life with qmail's script: for its %s, %s\n", args[0], hint)
		}
	}
	io.WriteString(c.err, usage)
	return ExitUsage
}

// lwqVerbs are the commands of Life with qmail's qmailctl script that an
// admin used to it types, and what does that here (docs/migrating.md).
var lwqVerbs = map[string]string{
	"stat":    "use qmailctl status (and svstat, under supervise)",
	"start":   "start the service: svc -u /service/qmail-send /service/qmail-smtpd, systemctl start qmail.service, or /etc/init.d/qmail start",
	"stop":    "stop the service: svc -d /service/qmail-send /service/qmail-smtpd, systemctl stop qmail.service, or /etc/init.d/qmail stop",
	"restart": "restart the service: svc -t /service/qmail-send, systemctl restart qmail.service, or /etc/init.d/qmail restart",
	"doqueue": "use qmailctl flush",
	"alrm":    "use qmailctl flush",
	"hup":     "use qmailctl reload",
	"pause":   "use qmailctl hold local and qmailctl hold remote (qmailctl release local, release remote to go on)",
	"cont":    "use qmailctl release local and qmailctl release remote",
	"cdb":     "rebuild the rules with tcprules, as that script did (hqmail's qmail-smtpd -listen reads control/relayclients instead)",
	"help":    "see qmailctl -h and qmailctl(8)",
}

// boot is the hold qmail.service and the rc script make before qmail
// starts, so that a host that boots offline never dials for mail: remote
// delivery held, unless a network hook released it since the machine
// booted (the link came up before qmail did, or qmail is restarted while
// online): no later link event would release it then.
// With qmail-send known to run it holds nothing: that qmail-send is past
// its start, and the link event that would release a hold made now may
// have come long ago (qmail.service runs boot before every start, also one
// that then fails because qmail-send runs).
//
// Known to run means that LocateSend names it (the holder of sendmutex's
// lock, named in the file, running as qmail-send's uid), as for
// qmail-start's startheld. Any other answer (a sendmutex locked by a
// process that is not qmail-send: queue/lock is qmailq's, who can lock a
// file of its own there; one that names another process, or another
// tree's qmail-send through a hard link; one that cannot be tested) is no
// qmail-send known to run: boot holds, the safe side, and a warning says
// why (QA rsec3: it held nothing on a locked sendmutex).
//
// The look at the link's last event and the hold are made under the
// control directory's lock (control/lock) the hooks take too, with a
// take-back for a release recorded meanwhile without it (bootHold, shared
// with qmail-start's control/startheld).
func (c *cmd) boot() int {
	pid, err := LocateSend(c.root)
	switch {
	case err == nil:
		fmt.Fprintf(c.out, "qmail-send is already running (pid %d): boot holds nothing (qmailctl hold remote holds now)\n", pid)
		return ExitOK
	case !errors.Is(err, ErrNotRunning):
		fmt.Fprintf(c.err, "qmailctl: warning: no qmail-send known to run (%v): boot holds all the same, the safe side\n", err)
	}
	code := ExitOK
	err = bootHold(c.root, c.timeout+lockWait, bootSteps{
		released: func(dir string) {
			h, err := hold.Read(dir, hold.RemoteFile)
			if err != nil {
				// Not "not held": qmail-send cannot start with it.
				fmt.Fprintf(c.err, "qmailctl: a network hook released remote delivery since the machine booted, but %v: qmail-send does not start until control/%s is a file or is removed\n",
					err, hold.RemoteFile)
				code = ExitTemp
				return
			}
			if h.Set {
				// The admin's own hold stays; boot adds none.
				fmt.Fprintf(c.out, "remote delivery %s, as control/%s says; a network hook released the boot hold since the machine booted\n",
					h.Describe(), hold.RemoteFile)
				return
			}
			fmt.Fprintln(c.out, "remote delivery not held: a network hook released it since the machine booted")
		},
		refused: func(err error) {
			fmt.Fprintf(c.err, "qmailctl: note: %v\n", err)
		},
		hold: func(dir string) error {
			code = c.holdLocked(dir, "remote", true, nil, true, nil)
			return nil
		},
		takeBack: func(dir string) error {
			// A hook recorded a release while boot held (bootHold): no
			// later event would release the hold boot just made, or the
			// one an ip-down left. Only the hold of everything goes:
			// domains held by name (a VPN's hook) stay held, as release
			// remote keeps them.
			fmt.Fprintln(c.out, "a network hook released remote delivery meanwhile; the boot hold is taken back")
			code = c.holdLocked(dir, "remote", false, nil, true, nil)
			return nil
		},
	})
	if err != nil {
		return c.fail(ExitTemp, "unable to change control/%s: %v", hold.RemoteFile, err)
	}
	return code
}

func (c *cmd) hold(holding bool, args []string) int {
	if len(args) == 0 || (args[0] != "remote" && args[0] != "local") {
		verb := "release"
		if holding {
			verb = "hold"
		}
		fmt.Fprintf(c.err, "qmailctl: %s needs remote, local, from, to or message ids\n", verb)
		io.WriteString(c.err, usage)
		return ExitUsage
	}
	channel, domains := args[0], args[1:]
	if channel == "local" && len(domains) > 0 {
		return c.fail(ExitUsage, "local delivery is held or released as a whole; no domains")
	}
	name := hold.RemoteFile
	if channel == "local" {
		name = hold.LocalFile
	}
	if err := checkDomains(domains); err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	// The lock is held until qmail-send has confirmed, so that concurrent
	// runs take turns for the whole change: each one then checks that
	// qmail-send's view is exactly the file it wrote.
	dir := control.Open(c.root).Path
	unlock, err := lockDir(dir, c.timeout+lockWait)
	if err != nil {
		return c.fail(ExitTemp, "unable to change control/%s: %v", name, err)
	}
	defer unlock()
	return c.holdLocked(dir, channel, holding, domains, true, nil)
}

// holdLocked is hold for a caller holding the control directory's lock
// (lockDir), with the arguments checked. Without wait (linkwant apply
// nowait) qmail-send is signalled but its confirmation is not awaited:
// the flag file is the state, and qmail-send acts on it when it handles
// the signal.
//
// letGo, when not nil, lets the control directory's lock go once the flag
// is written, before the wait for qmail-send's confirmation: a link
// hook's release must not make a later down event wait (and be killed
// waiting) until qmail-send answers. A flag changed again meanwhile by
// someone else is then no disagreement: the later change has its own
// confirmation to wait for.
func (c *cmd) holdLocked(dir, channel string, holding bool, domains []string, wait bool, letGo func()) int {
	name := hold.RemoteFile
	if channel == "local" {
		name = hold.LocalFile
	}
	res, err := editHold(dir, name, holding, domains)
	var ue *usageErr
	switch {
	case errors.As(err, &ue), errors.Is(err, errAllHeld):
		return c.fail(ExitUsage, "%v", err)
	case err != nil:
		return c.fail(ExitTemp, "unable to change control/%s: %v", name, err)
	}
	if res.ReplacedLink != "" {
		// Not written through: the link may share one list among hosts
		// or trees, and a change here is this tree's alone.
		became := "it is a file of its own now"
		if !res.After.Set {
			became = "the link is removed"
		}
		fmt.Fprintf(c.err, "qmailctl: note: control/%s was a symbolic link to %s: %s, and %s is left as it was\n",
			name, res.ReplacedLink, became, res.ReplacedLink)
	}
	for _, w := range res.After.JunkWarnings(name) {
		fmt.Fprintf(c.err, "qmailctl: warning: %s\n", w)
	}
	if !holding && len(domains) > 0 && res.After.All {
		// A domain that was held by name leaves the list and flows once
		// everything is released; one that never was was held only by
		// the hold of everything, which this release leaves as it is.
		var named, unnamed []string
		for _, d := range domains {
			if recorded(res.Before, []string{d}) {
				named = append(named, d)
			} else {
				unnamed = append(unnamed, d)
			}
		}
		if len(named) > 0 {
			fmt.Fprintf(c.err, "qmailctl: every destination is still held; %s will flow once that is released (qmailctl release remote)\n",
				strings.Join(named, " "))
		}
		if len(unnamed) > 0 {
			fmt.Fprintf(c.err, "qmailctl: %s %s not held by name; every destination is still held (release everything with: qmailctl release remote)\n",
				strings.Join(unnamed, " "), wasWere(len(unnamed)))
		}
	}
	if holding && len(domains) > 0 && res.After.All {
		if recorded(res.After, domains) {
			fmt.Fprintf(c.err, "qmailctl: every destination is held already; %s stays held when that is released\n",
				strings.Join(domains, " "))
		} else {
			// A hand-written file that names no domain: left alone.
			fmt.Fprintf(c.err, "qmailctl: every destination is held already by control/%s, which names no domain; %s is not recorded in it and is not held once that is released\n",
				name, strings.Join(domains, " "))
		}
	}
	if !holding && len(domains) == 0 && res.After.Set && !res.After.All {
		fmt.Fprintf(c.err, "qmailctl: domains held by name stay held; release them by name: qmailctl release remote %s\n",
			strings.Join(res.After.Domains, " "))
	}
	state := channel + " delivery " + res.After.Describe()
	if !res.Changed {
		state += " (unchanged)"
	}
	if !holding && channel == "remote" {
		// Timeouts seen while the link was down say nothing about the
		// hosts: forget them, so the released deliveries try every host.
		if err := tcptofile.Clear(filepath.Join(c.root, tcptofile.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(c.err, "qmailctl: warning: unable to clear queue/lock/tcpto: %v\n", err)
		}
	}
	notRunning := func() int {
		fmt.Fprintf(c.out, "%s\n", state)
		if !res.After.Set {
			return c.fail(ExitNotRunning, "qmail-send is not running; the flag is removed and the next start honours it")
		}
		return c.fail(ExitNotRunning, "qmail-send is not running; the flag is set and the next start honours it")
	}
	// untold is the failure to have qmail-send act on the flag file
	// (it could not be found or signalled, or did not confirm): the
	// file stays as asked, and the message says so.
	untold := func(err error) int {
		fmt.Fprintf(c.out, "%s\n", state)
		stands := "is changed all the same"
		if !res.Changed {
			stands = "says so already"
		}
		if errors.Is(err, ErrUnconfirmed) {
			return c.fail(ExitTemp, "%v; control/%s %s (%s delivery %s), and the signal makes qmail-send re-read it",
				err, name, stands, channel, res.After.Describe())
		}
		return c.fail(ExitTemp, "%v; control/%s %s (%s delivery %s): qmail-send honours it at its next re-read (qmailctl reload) or start",
			err, name, stands, channel, res.After.Describe())
	}
	if !wait {
		pid, err := Signal(c.root, syscall.SIGHUP)
		switch {
		case errors.Is(err, ErrNotRunning):
			return notRunning()
		case err != nil:
			return untold(err)
		}
		fmt.Fprintf(c.out, "%s; qmail-send (pid %d) signalled, its confirmation not awaited\n", state, pid)
		return ExitOK
	}
	if letGo != nil {
		letGo()
	}
	// pid as qmailctl sees it (qmailctl pid, status), which is not the
	// one sendstatus holds for a qmail-send in another pid namespace.
	pid, st, err := c.hupUntilAgreed(name, res.After)
	if letGo != nil && (err != nil || !agrees(st, name, res.After)) {
		if now, rerr := hold.Read(dir, name); rerr == nil && now.SendForm() != res.After.SendForm() {
			fmt.Fprintf(c.out, "%s; control/%s changed again since (%s), by a later change that waits for its own confirmation\n",
				state, name, now.Describe())
			return ExitOK
		}
	}
	switch {
	case errors.Is(err, ErrNotRunning):
		return notRunning()
	case err != nil:
		return untold(err)
	}
	if !agrees(st, name, res.After) {
		fmt.Fprintf(c.out, "%s\n", state)
		return c.fail(ExitTemp, "qmail-send (pid %d) re-read its controls but reports %s %q, not what control/%s says (%s); "+
			"look for \"alert: unable to reread control/%s\" in its log", pid, name, st[name], name, res.After.SendForm(), name)
	}
	if !holding && !res.Changed && len(domains) == 0 {
		// Nothing was held: the link came up without having been seen
		// to go down (no hook ran at the drop, or pppd's hook came
		// late). What failed meanwhile waits for its retry time; a
		// release means "go now", so make it due, as flush does.
		if _, _, err := SignalAndWait(c.root, syscall.SIGALRM, c.timeout); err != nil {
			fmt.Fprintf(c.out, "%s\n", state)
			return c.fail(ExitTemp, "deferred deliveries not retried: %v", err)
		}
		state += "; deferred deliveries retried now"
	}
	if st["exiting"] == "yes" {
		fmt.Fprintf(c.out, "%s; qmail-send (pid %d) confirmed, but it is exiting: nothing starts until the next start, which honours the flag\n", state, pid)
		return ExitOK
	}
	fmt.Fprintf(c.out, "%s; qmail-send (pid %d) confirmed\n", state, pid)
	return ExitOK
}

// hupUntilAgreed signals qmail-send to re-read the flags and returns the
// pid it signalled and its status once it has. A generation that moved for another reason (a flush's
// ALRM handled between our reading of the generation and our HUP) can show
// the old flags: then it signals again, a few times; a HUP that changes
// nothing does nothing. A failed re-read is not retried.
func (c *cmd) hupUntilAgreed(name string, h hold.Flag) (int, Status, error) {
	for try := 0; ; try++ {
		pid, st, err := SignalAndWait(c.root, syscall.SIGHUP, c.timeout)
		if err != nil || agrees(st, name, h) || st["reread-failed"] != "" || try == 3 {
			return pid, st, err
		}
	}
}

// agrees reports whether qmail-send's view of a hold flag in sendstatus is
// the hold h. A status without the key cannot be checked and agrees.
func agrees(st Status, name string, h hold.Flag) bool {
	v, ok := st[name]
	if !ok {
		return true
	}
	if name == hold.LocalFile || !h.Set {
		return st.Flag(name) == h.Set
	}
	if h.All {
		return v == "all"
	}
	a, b := strings.Fields(v), strings.Fields(h.SendForm())
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

func (c *cmd) signal(sig syscall.Signal, what string) int {
	pid, st, err := SignalAndWait(c.root, sig, c.timeout)
	switch {
	case errors.Is(err, ErrNotRunning):
		return c.fail(ExitNotRunning, "qmail-send is not running")
	case err != nil:
		return c.fail(ExitTemp, "%v", err)
	}
	if failed := st["reread-failed"]; sig == syscall.SIGHUP && failed != "" {
		return c.fail(ExitTemp, "%s", rereadFailure(pid, st))
	}
	if st["exiting"] == "yes" {
		fmt.Fprintf(c.out, "qmail-send (pid %d) confirmed, but it is exiting: nothing starts until the next start\n", pid)
		return ExitOK
	}
	fmt.Fprintf(c.out, "%s; qmail-send (pid %d) confirmed\n", what, pid)
	if sig == syscall.SIGHUP {
		// A HUP does not re-read the concurrency files.
		c.reloadConcurrency(st)
	}
	if sig == syscall.SIGALRM {
		dir := control.Open(c.root).Path
		for _, n := range []string{hold.LocalFile, hold.RemoteFile} {
			if h, err := hold.Read(dir, n); err == nil && h.Set {
				fmt.Fprintf(c.out, "note: control/%s is set: held deliveries stay held\n", n)
			}
		}
	}
	return ExitOK
}

// rereadFailure says what follows a HUP that could not re-read the
// control files sendstatus names in reread-failed: each keeps its old
// value, except a holdremote that exists but cannot be read, for which
// qmail-send holds all remote delivery (it reports holdremote "all")
// until a HUP can read it.
func rereadFailure(pid int, st Status) string {
	failed := strings.Fields(st["reread-failed"])
	var names, old []string
	for _, f := range failed {
		// "controls": qmail-send could not reach its home directory,
		// so it re-read none of them.
		name := "control/" + f
		if f == "controls" {
			name = "its control files"
		}
		names = append(names, name)
		if !(f == hold.RemoteFile && holdsAllUnread(st)) {
			old = append(old, name)
		}
	}
	s := fmt.Sprintf("qmail-send (pid %d) could not re-read %s (see its log); ", pid, strings.Join(names, ", "))
	if len(old) == len(failed) {
		return s + "the old values stay in force"
	}
	if len(old) > 0 {
		s += "the old values of " + strings.Join(old, ", ") + " stay in force, and "
	}
	return s + "it holds all remote delivery until it can read control/holdremote: " + holdremoteFix
}

// holdremoteFix is what to do about a control/holdremote qmail-send
// cannot read: a file of a mode qmails may not read is mended by chmod; a
// directory (made by mistake, or by mkdir as a flag) is not, it has to
// go, and a file, empty or listing domains, holds in its place.
const holdremoteFix = "chmod 644 a file qmails may not read; remove a directory (rm -r control/holdremote) " +
	"and, to keep remote delivery held, put a file in its place, empty or listing the domains to hold " +
	"(qmailctl hold remote [DOMAIN...] writes one); then run qmailctl reload; qmail-install -check names the cause"

// holdsAllUnread reports whether st says that qmail-send holds all remote
// delivery because its last HUP found control/holdremote but could not
// read it.
func holdsAllUnread(st Status) bool {
	return st[hold.RemoteFile] == "all" && slices.Contains(strings.Fields(st["reread-failed"]), hold.RemoteFile)
}

// queueDir is ROOT/queue.
func (c *cmd) queueDir() string { return filepath.Join(c.root, "queue") }

// wasWere is "was" for one, "were" for more.
func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// recorded reports whether every one of domains is listed in h.
func recorded(h hold.Flag, domains []string) bool {
	for _, d := range domains {
		if !slices.Contains(h.Domains, hold.CanonDomain(d)) {
			return false
		}
	}
	return true
}
