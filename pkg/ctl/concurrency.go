package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sched"
)

// qmail-send reads control/concurrencylocal and control/concurrencyremote
// only at start, as qmail does; a HUP (qmailctl reload) leaves them alone
// (qmail-send(8)). Its sendstatus carries, for each channel, the
// concurrency it runs with (concurrency-CH: the control value capped by
// the spawner's limit) and the control value as it read it at start
// (control-concurrencyCH). status shows the first and compares the file
// with the second; status and reload warn when they differ, so that an
// edited file is not taken for one in force. A sendstatus without the
// keys (a qmail-send from before they were written) says nothing of
// concurrency, and nothing is said.

// The values qmail-send takes for a missing file, or one whose first
// line does not start with a digit.
var concurrencyDefault = map[string]int{"local": qhome.DefConcurrencyLocal, "remote": qhome.DefConcurrencyRemote}

// chanConcurrency is what sendstatus says of one channel's concurrency.
type chanConcurrency struct {
	ch      string // "local" or "remote"
	running int    // deliveries that may run at once
	control int    // the control file's value as read at start (at most 500)
}

// sendConcurrency returns what st says of the local and the remote
// channel's concurrency, in that order; ok is false when a key is
// missing or malformed.
func sendConcurrency(st Status) (cc []chanConcurrency, ok bool) {
	for _, ch := range []string{"local", "remote"} {
		running, ok1 := st.Int("concurrency-" + ch)
		ctl, ok2 := st.Int("control-concurrency" + ch)
		if !ok1 || !ok2 || running < 0 || ctl < 0 {
			return nil, false
		}
		cc = append(cc, chanConcurrency{ch, int(running), int(ctl)})
	}
	return cc, true
}

// readConcurrency reads control/concurrencyCH as qmail-send does at start
// (control.ReadInt with its default, capped at sched.MaxConcurrency) and
// says how the value came about: "says 7", "says more than 500 (taken as
// 500)", "is missing (the default, 20)". An error is a file qmail-send
// could not read: it would not start.
func readConcurrency(d *control.Dir, ch string) (int, string, error) {
	name := "concurrency" + ch
	def := concurrencyDefault[ch]
	raw, err := d.ReadInt(name, def)
	if err != nil {
		return 0, "", err
	}
	n := min(raw, sched.MaxConcurrency)
	// The line again, only for the words: whether the default was taken.
	line, found, err := d.ReadLine(name)
	if err != nil {
		return 0, "", err
	}
	_, digits := control.ScanUlong(line)
	switch {
	case !found:
		return n, fmt.Sprintf("is missing (the default, %d)", n), nil
	case digits == 0:
		return n, fmt.Sprintf("does not start with a number (the default, %d)", n), nil
	case raw > n:
		return n, fmt.Sprintf("says more than %d (taken as %d)", n, n), nil
	}
	return n, "says " + strconv.Itoa(n), nil
}

// concurrencyChanged returns a warning for each concurrency file that now
// gives another value than qmail-send read at start (cc, from its
// sendstatus), or that cannot be read: by qmailctl, or, when qmailctl
// runs as root (which reads any file), by qmail-send (sendCannotRead).
// exiting: qmail-send is finishing after TERM, and its next start reads
// the file anyway.
func (c *cmd) concurrencyChanged(cc []chanConcurrency, exiting bool) []string {
	d := control.Open(c.root)
	apply := "restart qmail-send to apply it"
	if exiting {
		apply = "its next start applies it"
	}
	var warn []string
	for _, x := range cc {
		name := "control/concurrency" + x.ch
		n, says, err := readConcurrency(d, x.ch)
		if err == nil {
			if why := c.sendCannotRead(filepath.Join(d.Path, "concurrency"+x.ch)); why != "" {
				err = errors.New(why)
			}
		}
		switch {
		case err != nil:
			warn = append(warn, fmt.Sprintf("unable to read %s (%v): qmail-send goes on with %d, read at start, but would not start again with the file as it is",
				name, err, x.control))
		case n != x.control:
			warn = append(warn, fmt.Sprintf("%s %s, but qmail-send read %d at start and reads it only then: %s",
				name, says, x.control, apply))
		}
	}
	return warn
}

// statusConcurrency prints status's concurrency line: each channel's
// running concurrency, with the control value when the spawner limits it
// below that; a warning for a channel that runs nothing; and the warnings
// of concurrencyChanged.
func (c *cmd) statusConcurrency(st Status) {
	cc, ok := sendConcurrency(st)
	if !ok {
		return
	}
	var parts []string
	for _, x := range cc {
		p := x.ch + " " + strconv.Itoa(x.running)
		if x.running < x.control {
			p += fmt.Sprintf(" (control %d, limited by the spawner)", x.control)
		}
		parts = append(parts, p)
	}
	fmt.Fprintf(c.out, "concurrency: %s\n", strings.Join(parts, ", "))
	for _, x := range cc {
		switch {
		case x.running > 0:
		case x.control == 0:
			fmt.Fprintf(c.out, "warning: %s delivery stopped: qmail-send started with control/concurrency%s 0\n", x.ch, x.ch)
		default:
			fmt.Fprintf(c.out, "warning: %s delivery stopped: its spawner runs none at once\n", x.ch)
		}
	}
	printWarnings(c.out, "warning: ", c.concurrencyChanged(cc, st["exiting"] == "yes"))
}

// reloadConcurrency is what reload adds after qmail-send confirmed its
// HUP: the warnings of concurrencyChanged, on stderr, as qmailctl's other
// warnings.
func (c *cmd) reloadConcurrency(st Status) {
	if cc, ok := sendConcurrency(st); ok {
		printWarnings(c.err, "qmailctl: warning: ", c.concurrencyChanged(cc, st["exiting"] == "yes"))
	}
}

// sendCannotRead says why qmail-send could not read the file at p, which
// qmailctl, run as root, reads: qmail-send runs as qmails with exactly
// group qmail (qmail-start; pkg/install's runners), and the file's owner,
// group and mode do not let that user read it, as qmail-install -check
// reports it ("not readable by qmails"). "" when it could; when qmailctl
// does not run as root (its own read already failed as qmail-send's
// would, or not, for the same reasons); when the file is missing; or when
// the tree has no etc/ids or is a shared tree (one user, whose groups are
// not known here). Only the file itself is checked, not the directories
// on its way.
func (c *cmd) sendCannotRead(p string) string {
	if os.Geteuid() != 0 {
		return ""
	}
	ids, err := qhome.LoadIDs(c.root)
	if err != nil || ids.Shared {
		return ""
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return ""
	}
	m := uint32(st.Mode)
	switch {
	case int(st.Uid) == ids.Qmails.UID:
		m >>= 6
	case int(st.Gid) == ids.Qmail:
		m >>= 3
	}
	if m&0o4 != 0 {
		return ""
	}
	return fmt.Sprintf("not readable by qmails: mode %04o, uid %d, gid %d; chmod 644",
		st.Mode&0o7777, st.Uid, st.Gid)
}

func printWarnings(w io.Writer, prefix string, warn []string) {
	for _, s := range warn {
		fmt.Fprintf(w, "%s%s\n", prefix, s)
	}
}
