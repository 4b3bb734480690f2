package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/inject"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/sched"
	"github.com/hqmail/hqmail/pkg/sendmail"
	"golang.org/x/sys/unix"
)

// CtlFIFO is the request FIFO of a running qmail-send (pkg/sched
// control.go): qmailctl writes "TAG VERB ARG\n", qmail-send answers with a
// line "ctl TAG ok|fail|defer TEXT" in sendstatus.
const CtlFIFO = "queue/lock/sendctl"

// HeldFile is the list of held message ids, owned by qmails.
const HeldFile = "queue/bounce/" + sched.HeldMsgsName

// Result is qmail-send's answer to one request.
type Result struct {
	Word string // sched.ResultOK, ResultFail or ResultDefer
	Text string
}

// Code maps a result to qmailctl's exit code.
func (r Result) Code() int {
	switch r.Word {
	case sched.ResultOK:
		return ExitOK
	case sched.ResultFail:
		return ExitUsage
	}
	return ExitTemp
}

// FindResult looks for the answer tagged tag in sendstatus contents.
func FindResult(status []byte, tag string) (Result, bool) {
	text := string(status)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i] // a last line without newline may be half written
	} else {
		return Result{}, false
	}
	for _, l := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(l, "ctl "+tag+" ")
		if !ok {
			continue
		}
		word, msg, _ := strings.Cut(rest, " ")
		return Result{Word: word, Text: msg}, true
	}
	return Result{}, false
}

var tagSeq int

// Request sends one request to the running qmail-send of root and waits,
// at most timeout, for its answer. Concurrent qmailctl runs take turns
// (an exclusive flock on the FIFO). ErrNotRunning means no qmail-send runs.
func Request(root, verb, arg string, timeout time.Duration) (Result, int, error) {
	deadline := time.Now().Add(timeout)
	pid, err := LocateSend(root)
	if err != nil {
		return Result{}, 0, err
	}
	tagSeq++
	tag := fmt.Sprintf("q%d-%d-%d", os.Getpid(), time.Now().UnixNano(), tagSeq)
	line, err := (sched.Request{Tag: tag, Verb: verb, Arg: arg}).Encode()
	if err != nil {
		return Result{}, pid, usageError("cannot send %s %q to qmail-send: %v", verb, arg, err)
	}
	path := filepath.Join(root, CtlFIFO)
	var f *os.File
	for {
		// queue/ and queue/lock are qmailq's: the FIFO is reached
		// without following a link (queue/lock swapped for one while
		// this loop waits, or sendctl itself), walked again at each
		// try, so that a request is never written to a FIFO qmailq
		// chose.
		f, err = qhome.OpenQueueFIFO(path, os.O_WRONLY)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return Result{}, pid, fmt.Errorf("%s does not exist; qmail-install creates it, then qmailctl reload makes qmail-send open it", path)
		case !errors.Is(err, syscall.ENXIO):
			return Result{}, pid, openError(path, err)
		}
		// No reader: qmail-send is starting, or predates the interface.
		if time.Now().After(deadline) {
			return Result{}, pid, fmt.Errorf("qmail-send (pid %d) does not read %s (it was missing or replaced when qmail-send opened it: qmailctl reload opens it again; an older qmail-send: restart it)", pid, CtlFIFO)
		}
		time.Sleep(pollEvery)
	}
	defer f.Close()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK {
			return Result{}, pid, fmt.Errorf("unable to lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return Result{}, pid, fmt.Errorf("another qmailctl kept %s locked for %v", path, timeout)
		}
		time.Sleep(pollEvery)
	}
	if _, err := f.Write(line); err != nil {
		return Result{}, pid, fmt.Errorf("unable to write to %s: %w", path, err)
	}
	// qmail-send answers within a millisecond or two when idle: the first
	// looks come soon, then every pollEvery. A fixed 20 ms sleep made
	// each id of "qmailctl delete ID..." cost 20 ms (1000 ids: 21 s).
	wait := time.Millisecond
	for i := 1; ; i++ {
		if b, err := qhome.ReadQueueFile(filepath.Join(root, StatusFile)); err == nil {
			if r, ok := FindResult(b, tag); ok {
				return r, pid, nil
			}
		}
		if i%10 == 0 {
			if p, err := LocateSend(root); err != nil || p != pid {
				return Result{}, pid, fmt.Errorf("qmail-send (pid %d) exited before answering", pid)
			}
		}
		if time.Now().After(deadline) {
			return Result{}, pid, fmt.Errorf("qmail-send (pid %d) did not answer within %v", pid, timeout)
		}
		time.Sleep(wait)
		wait = min(2*wait, pollEvery)
	}
}

// parseIDs parses message ids: decimal digits (leading zeros allowed),
// not 0. Every command that takes ids reads them with it.
func parseIDs(args []string) ([]uint64, error) {
	var ids []uint64
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 || strings.Trim(a, "0123456789") != "" {
			return nil, usageError("not a message id: %q", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// idStrings writes ids as qmail-send reads them.
func idStrings(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatUint(id, 10)
	}
	return out
}

func isID(s string) bool {
	_, err := parseIDs([]string{s})
	return err == nil
}

// viaSend sends verb for every id to the running qmail-send and prints
// its answers.
func (c *cmd) viaSend(verb string, args []string) int {
	code := ExitOK
	byAddress := strings.Contains(verb, "-") // hold-from, release-to, ...
	// left says which ids of a list were not done when qmail-send went
	// away in the middle of it.
	left := func(i int) string {
		if byAddress || len(args) == 1 {
			return ""
		}
		return fmt.Sprintf(" (%d of the %d ids, from %s on)", len(args)-i, len(args), args[i])
	}
	for i, a := range args {
		r, _, err := Request(c.root, verb, a, c.timeout)
		var ue *usageErr
		switch {
		case errors.As(err, &ue):
			c.fail(ExitUsage, "%v", err)
			code = max(code, ExitUsage)
			continue
		case errors.Is(err, ErrNotRunning):
			if byAddress {
				return c.fail(ExitNotRunning, "qmail-send is not running; holding by address needs it (hold or release the ids instead)")
			}
			return c.fail(ExitNotRunning, "qmail-send stopped meanwhile; run the command again%s", left(i))
		case err != nil:
			if !byAddress && len(args) > 1 {
				return c.fail(ExitTemp, "%v; not confirmed%s: look with qmailctl queue before running the command again for them", err, left(i))
			}
			return c.fail(ExitTemp, "%v", err)
		}
		if r.Word == sched.ResultOK {
			fmt.Fprintln(c.out, r.Text)
		} else {
			c.fail(r.Code(), "%s", r.Text)
		}
		code = max(code, r.Code())
	}
	return code
}

// msgHold is "hold|release ID..." and "hold|release from|to ADDR".
func (c *cmd) msgHold(hold bool, args []string) int {
	verb := "release"
	if hold {
		verb = "hold"
	}
	if args[0] == "from" || args[0] == "to" {
		if len(args) != 2 {
			return c.fail(ExitUsage, "usage: qmailctl %s %s ADDRESS", verb, args[0])
		}
		rw, err := treeRewriter(c.root)
		if err != nil {
			return c.fail(ExitTemp, "%s %s: %v", verb, args[0], err)
		}
		addrs, err := envelopeAddress(rw, args[0] == "from", args[1])
		if err != nil {
			return c.fail(ExitUsage, "%s %s: %v", verb, args[0], err)
		}
		return c.viaSend(verb+"-"+args[0], addrs)
	}
	ids, err := parseIDs(args)
	if err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	unlock, err := lockOutSend(c.root)
	if errors.Is(err, errSendRunning) {
		return c.viaSend(verb, idStrings(ids))
	}
	if err != nil {
		return c.fail(ExitTemp, "%v", err)
	}
	defer unlock()
	return c.holdStopped(hold, ids)
}

// envelopeAddress reads the ADDRESS of hold|release from|to the way
// sendmail reads an address argument, so that it is the address as it
// stands in the envelope. First its syntax (pkg/sendmail SplitRecipients:
// angle brackets, comments and the quotes of quoted strings go, a group
// gives its members): '"joe smith"@a.test' is the recipient
// joe smith@a.test and '<root@localhost>', as qmailctl queue prints a
// sender, is root@localhost. Then qmail-inject's rewriting, which sendmail
// applies to its recipient arguments and to its -f address alike (rw,
// treeRewriter): carol is carol@defaulthost.defaultdomain and
// carol@localhost carol@localhost.defaultdomain, as sendmail queued them.
// A sender (from) of MAILER-DAEMON, in any case and without a domain, is
// the empty address, as sendmail reads -f MAILER-DAEMON. No address at all
// ("", "<>", an empty group) is the empty address, which qmail-send's
// request names "<>".
//
// The addresses to ask qmail-send for are returned: the rewritten one,
// then the one before the rewriting when qmail-send would not take them
// for the same (a domain without a dot, no @): mail that came by SMTP or
// straight through qmail-queue is queued as its client wrote it, not
// rewritten, and qmailctl queue prints it so. More than one address, or
// one sendmail refuses, is an error saying why.
func envelopeAddress(rw *inject.Rewriter, from bool, arg string) ([]string, error) {
	list, err := sendmail.SplitRecipients([]string{arg})
	switch {
	case err != nil:
		return nil, err
	case len(list) == 0:
		return []string{"<>"}, nil
	case len(list) > 1:
		// The addresses as qmailctl queue shows them: bytes outside
		// 32..126 (a terminal's escape sequences) become '_'.
		for i, a := range list {
			list[i] = qread.Safe(a)
		}
		return nil, fmt.Errorf("%q is %d addresses (%s); name one", arg, len(list), strings.Join(list, ", "))
	case list[0] == "<>":
		// '"<>"' is a mailbox named <>; the request has no way to say it.
		return nil, fmt.Errorf("%q: an address <> cannot be named (<> alone is the empty address)", arg)
	}
	written := list[0]
	var a string
	if from && strings.EqualFold(written, "MAILER-DAEMON") {
		a = "<>"
	} else {
		// qmail-inject's reading of a recipient argument or -f value
		// (pkg/inject parseArg): the local part quoted, then the
		// whole rewritten as one address.
		toks, ok := inject.Tokenize(address.Quote(written))
		if !ok {
			return nil, fmt.Errorf("unable to parse address %q: the domain after its last @ cannot be read", arg)
		}
		if a = inject.Unquote(rw.Rewrite(toks)); a == "" {
			a = "<>"
		}
	}
	if a == "<>" || sameAddress(a, written) {
		return []string{a}, nil
	}
	return []string{a, written}, nil
}

// sameAddress reports whether qmail-send matches a and b alike (pkg/sched
// addrEqual): the case of ASCII letters aside, and the domains as
// hold.CanonDomain writes them (a trailing dot, an internationalized
// name's spellings).
func sameAddress(a, b string) bool {
	if address.EqualFoldASCII(a, b) {
		return true
	}
	la, da, oka := address.Split(a)
	lb, db, okb := address.Split(b)
	return oka && okb && address.EqualFoldASCII(la, lb) && hold.CanonDomain(da) == hold.CanonDomain(db)
}

// treeRewriter is the address rewriting sendmail (qmail-inject) applies
// with the tree's control files: defaulthost, defaultdomain and
// plusdomain, each defaulting to me, then to its own name (pkg/inject
// controls), with the domain's UTF-8 words bare as sendmail asks. The
// QMAILDEFAULTHOST, QMAILDEFAULTDOMAIN and QMAILPLUSDOMAIN of a caller's
// environment are not read: they rewrote only what that caller sent, and
// the tree's files name what the queue holds.
func treeRewriter(root string) (*inject.Rewriter, error) {
	d := control.Open(root)
	var v [3]string
	for i, name := range []string{"defaulthost", "defaultdomain", "plusdomain"} {
		s, err := d.LineOrMe(name)
		if err != nil {
			return nil, fmt.Errorf("unable to read control/%s: %v", name, err)
		}
		v[i] = s
	}
	rw := inject.NewRewriter(v[0], v[1], v[2])
	rw.BareUTF8Domain = true
	return rw, nil
}

// holdStopped changes the held set while qmail-send is stopped (the caller
// holds the sendmutex lock); qmail-send reads it at its next start.
func (c *cmd) holdStopped(hold bool, ids []uint64) int {
	q := c.queueDir()
	// A symbolic link in place of the held file (queue/bounce is qmails')
	// is refused by LoadHeld, not read as root.
	held, err := sched.LoadHeld(q)
	if err != nil {
		return c.fail(ExitTemp, "unable to read %s: %v", HeldFile, err)
	}
	code := ExitOK
	changed := false
	for _, id := range ids {
		name := strconv.FormatUint(id, 10)
		_, e1 := os.Lstat(filepath.Join(q, "info", strconv.FormatUint(id%qhome.Split, 10), name))
		_, e2 := os.Lstat(filepath.Join(q, "todo", name))
		switch {
		case e1 != nil && e2 != nil && !held[id]:
			c.fail(ExitUsage, "message %d is not in the queue", id)
			code = max(code, ExitUsage)
		case hold && held[id]:
			fmt.Fprintf(c.out, "message %d is already held\n", id)
		case hold:
			held[id] = true
			changed = true
			fmt.Fprintf(c.out, "message %d held\n", id)
		case !held[id]:
			fmt.Fprintf(c.out, "message %d was not held\n", id)
		default:
			delete(held, id)
			changed = true
			fmt.Fprintf(c.out, "message %d released\n", id)
		}
	}
	if changed {
		if err := writeHeld(c.root, held); err != nil {
			return c.fail(ExitTemp, "unable to write %s: %v", HeldFile, err)
		}
	}
	if code != ExitOK {
		return code
	}
	return c.fail(ExitNotRunning, "qmail-send is not running; the change applies at its next start")
}

// writeHeld replaces the held file durably (qhome.ReplaceFileDir), giving
// it to the owner of queue/bounce (qmails) when run as root: the owner of
// the directory it is written in, as reached, not of whatever queue/bounce
// names by then (queue/ is qmailq's, who can rename in it).
func writeHeld(root string, held map[uint64]bool) error {
	path := filepath.Join(root, HeldFile)
	var chown func(*os.File, *unix.Stat_t) error
	if os.Geteuid() == 0 {
		chown = func(f *os.File, dir *unix.Stat_t) error {
			return f.Chown(int(dir.Uid), int(dir.Gid))
		}
	}
	return qhome.ReplaceFileDir(path, hold.MsgsText(held), 0o600, chown)
}
