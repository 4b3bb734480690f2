package ctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/sched"
	"github.com/hqmail/hqmail/pkg/sendlock"
)

// status prints the state of qmail-send, the hold flags and the queue.
// Exit: 0 when qmail-send runs, 3 when it does not, 111 when the control
// directory cannot be read or the report cannot be written.
func (c *cmd) status() int { return c.reporting(c.statusReport) }

// reporting runs report, a command whose output is its result, with
// c.out kept as a stickyWriter: when a write failed, the command says so
// and exits 111, whatever report returned.
func (c *cmd) reporting(report func() int) int {
	out := &stickyWriter{w: c.out}
	c.out = out
	defer func() { c.out = out.w }()
	code := report()
	if out.err != nil {
		return c.fail(ExitTemp, "unable to write output: %v", out.err)
	}
	return code
}

// stickyWriter passes writes on until one fails and keeps that error,
// so that a report of many Fprintf calls is checked once at its end.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

func (c *cmd) statusReport() int {
	code := ExitOK
	proc, err := sendlock.Find(c.root)
	pid := proc.PID
	var st Status
	switch {
	case errors.Is(err, ErrNotRunning):
		fmt.Fprintln(c.out, "qmail-send: not running")
		code = ExitNotRunning
	case err != nil:
		fmt.Fprintf(c.out, "qmail-send: unknown (%v)\n", err)
		code = ExitTemp
	default:
		st, err = ReadStatus(c.root)
		if err != nil {
			fmt.Fprintf(c.out, "qmail-send: running, pid %d (unable to read %s: %v)\n", pid, StatusFile, err)
		} else {
			if st["exiting"] == "yes" {
				fmt.Fprintf(c.out, "qmail-send: exiting (TERM), pid %d: deliveries in progress finish, none start\n", pid)
			} else {
				fmt.Fprintf(c.out, "qmail-send: running, pid %d, generation %s\n", pid, orDash(st["generation"]))
			}
		}
	}

	dir := control.Open(c.root).Path
	holds := map[string]hold.Flag{}
	for _, ch := range []string{"remote", "local"} {
		name := "hold" + ch
		// qmail-send found the flag at its last HUP but could not read
		// it (qmailctl, as root, may read it all the same): a reload
		// cannot help until the file is made readable.
		unread := name == hold.RemoteFile && st != nil && holdsAllUnread(st)
		unreadWarning := func() {
			if unread {
				fmt.Fprintf(c.out, "warning: qmail-send cannot read control/%s and holds all remote delivery until it can: %s\n",
					name, holdremoteFix)
			}
		}
		h, err := hold.Read(dir, name)
		if err != nil && name == hold.LocalFile {
			// qmail-send holds local delivery as long as the name
			// exists (os.Stat, as it looks), whatever is there.
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				fmt.Fprintf(c.out, "%s: held (control/%s cannot be read: %v; qmail-send holds local delivery while it exists; qmailctl release local removes it)\n",
					ch, name, qerr.Bare(err))
				holds[ch] = hold.ParseFile(name, nil)
				continue
			}
		}
		if err != nil {
			fmt.Fprintf(c.out, "%s: unknown (unable to read control/%s: %v)\n", ch, name, err)
			unreadWarning()
			code = ExitTemp
			continue
		}
		holds[ch] = h
		line := ch + ": " + describeHold(h)
		if h.Set {
			line += c.since(st, ch, filepath.Join(dir, name))
		}
		fmt.Fprintln(c.out, line)
		for _, w := range h.JunkWarnings(name) {
			fmt.Fprintf(c.out, "warning: %s\n", w)
		}
		if unread {
			unreadWarning()
		} else if st != nil {
			if _, ok := st[name]; ok && !agrees(st, name, h) {
				fmt.Fprintf(c.out, "warning: qmail-send has not acted on control/%s yet (it reports %s %q); run qmailctl reload\n",
					name, name, st[name])
			}
		}
	}

	if st != nil && st["holdlog-unreadable"] == "yes" {
		fmt.Fprintf(c.out, "warning: qmail-send cannot read queue/bounce/%s: no message is bounced for its age until it can, and a hold's start shown above may be later than the hold's (its log says why; qmail-install -check)\n",
			sched.HoldLogName)
	}
	if st != nil && holdsAllUnread(st) {
		// What qmail-send holds, whatever the file says to qmailctl.
		holds["remote"] = hold.Flag{Set: true, All: true}
	}

	if st != nil {
		// A status of another pid is the qmail-send before a restart,
		// whose concurrency is not the running one's.
		// (It writes the pid it knows itself by: proc.Named.)
		if p, ok := st.Int("pid"); !ok || int(p) == proc.Named {
			c.statusConcurrency(st)
		}
	}

	q := c.queueDir()
	counts, cerr := qread.Count(q)
	if cerr != nil {
		fmt.Fprintf(c.out, "queue: unknown (%v)\n", cerr)
	} else {
		fmt.Fprintf(c.out, "queue: %s, %d not yet preprocessed\n", plural(counts.Messages, "message"), counts.Todo)
	}
	inTodo := todoIDs(q)
	// Counted as the queue is read: memory does not grow with it.
	var lm, rm, held, trouble int
	err = qread.ScanEach(q, func(m *qread.Message) {
		if inTodo[m.ID] {
			return // not preprocessed yet: its info file is stale
		}
		if m.Err != nil {
			trouble++
			return
		}
		l, r := m.Pending()
		if l > 0 {
			lm++
		}
		if r > 0 {
			rm++
		}
		for _, rec := range m.Remote {
			if !rec.Done && holds["remote"].HoldsAddress(rec.Addr) {
				held++
			}
		}
	})
	if err != nil {
		fmt.Fprintf(c.out, "pending: unknown (%v)\n", err)
	} else {
		heldBy := plural(held, "remote recipient") + " held by control/holdremote"
		if _, ok := holds["remote"]; !ok {
			// Unreadable (said above), and qmail-send does not report
			// holding everything for it: a count of 0 would be a guess.
			heldBy = "held remote recipients unknown: control/holdremote cannot be read"
		}
		fmt.Fprintf(c.out, "pending: local %s, remote %s (%s)\n",
			plural(lm, "message"), plural(rm, "message"), heldBy)
		if trouble > 0 {
			fmt.Fprintf(c.out, "warning: %s could not be read (see qmail-qread)\n", plural(trouble, "message"))
		}
		// The message files that neither todo/ nor info/ accounts for:
		// being queued right now, or left alone by a qmail-queue or
		// qmail-clean that was killed, or by a crash of qmail-send
		// between a message's info file and its message file.
		if n, err := unlisted(q, inTodo); err != nil {
			fmt.Fprintf(c.out, "unlisted: unknown (%v)\n", err)
		} else if n > 0 {
			fmt.Fprintf(c.out, "unlisted: %s with a message file only (being queued now, or left by a killed qmail-queue or a crash; qmail-send removes those after 36 hours)\n", plural(n, "message"))
		}
	}
	if held, err := sched.LoadHeld(q); err != nil {
		fmt.Fprintf(c.out, "held messages: unknown (%v)\n", err)
	} else if n := queued(q, held); n > 0 {
		fmt.Fprintf(c.out, "held messages: %d (qmailctl hold ID; see qmailctl queue)\n", n)
	}
	if st != nil {
		if ql, ok := st["queued-local"]; ok {
			// The counts are as of qmail-send's last status write (after a
			// HUP or ALRM), so say when that was.
			when := ""
			if fi, err := os.Stat(filepath.Join(c.root, StatusFile)); err == nil {
				when = " (" + qdate.Qread(fi.ModTime()) + ")"
			}
			fmt.Fprintf(c.out, "qmail-send reported at its last status write%s: queued-local %s, queued-remote %s\n", when, ql, orDash(st["queued-remote"]))
		}
	}
	return code
}

// unlisted counts the message files of queue q (mess/S/ID) that neither
// todo/ nor info/ accounts for, each looked at by its own id: a count of
// all files less the listed ones would let a listed message whose message
// file is gone, or a name in todo/ that is no id, cancel a real orphan
// out. inTodo (todoIDs, read before) spares most todo/ID lookups; a
// message found in neither is looked for in todo/ once more, as it may
// have been queued since. Names that are no message id are no message and
// are not counted. Memory is one subdirectory's names.
func unlisted(q string, inTodo map[uint64]bool) (int, error) {
	n := 0
	for s := 0; s < qhome.Split; s++ {
		dir := filepath.Join(q, "mess", strconv.Itoa(s))
		ents, err := os.ReadDir(dir)
		if err != nil {
			return n, fmt.Errorf("unable to read %s: %w", dir, qerr.Bare(err))
		}
		for _, e := range ents {
			id, err := strconv.ParseUint(e.Name(), 10, 64)
			if err != nil || id == 0 || !e.Type().IsRegular() || inTodo[id] {
				continue
			}
			if _, err := os.Lstat(filepath.Join(q, "info", qread.Sub(id), e.Name())); !errors.Is(err, fs.ErrNotExist) {
				continue // listed (or there and unreadable: qmail-qread's trouble)
			}
			if _, err := os.Lstat(filepath.Join(q, "todo", e.Name())); !errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if _, err := os.Lstat(filepath.Join(dir, e.Name())); err != nil {
				continue // gone meanwhile: delivered and cleaned up
			}
			n++
		}
	}
	return n, nil
}

// queued counts the ids of held that are still in queue q (have a message
// file): heldmsgs may name messages that have left since (deleted, or
// delivered while qmail-send did not run), which hold nothing.
func queued(q string, held map[uint64]bool) int {
	n := 0
	for id := range held {
		name := strconv.FormatUint(id, 10)
		if _, err := os.Lstat(filepath.Join(q, "mess", qread.Sub(id), name)); err == nil {
			n++
		}
	}
	return n
}

// describeHold is h.Describe, but a hold of everything that lists
// domains below its "*" line (qmailctl hold remote over domains held by
// name) also names them: they stay held when everything is released.
func describeHold(h hold.Flag) string {
	if !h.Set || !h.All || len(h.Domains) == 0 {
		return h.Describe()
	}
	stay := h.Domains[0] + " stays"
	if n := len(h.Domains) - 1; n > 0 {
		stay = fmt.Sprintf("%s and %d more stay", h.Domains[0], n)
	}
	return "held (all destinations; " + stay + " held after a release)"
}

// since describes when a hold began: qmail-send's since-CHANNEL when it
// reports one, else the flag file's modification time. qmail-send dates
// one hold period per channel, whatever its form, so a hold that was
// widened or narrowed later (held.example, then everything) is dated from
// its first form; the flag's own time then says when it took this one.
func (c *cmd) since(st Status, ch, path string) string {
	fi, ferr := os.Stat(path)
	if st != nil {
		if t, ok := st.Int("since-" + ch); ok && t > 0 {
			began := time.Unix(t, 0)
			d := c.now().Sub(began)
			s := " since " + qdate.Qread(began) + " (for " + age(d) + ")"
			if d <= -time.Second {
				s = " since " + qdate.Qread(began) + " (" + ago(d) + ")"
			}
			if ferr == nil && fi.ModTime().Sub(began) > 2*time.Second {
				s += "; control/hold" + ch + " last changed " + qdate.Qread(fi.ModTime())
				if d := c.now().Sub(fi.ModTime()); d <= -time.Second {
					// Marked as the "flag written" form marks it.
					s += " (" + ago(d) + ")"
				}
			}
			return s
		}
	}
	if ferr == nil {
		return " (flag written " + qdate.Qread(fi.ModTime()) + ", " + ago(c.now().Sub(fi.ModTime())) + ")"
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age renders a duration in the largest two units: "3d4h", "2h5m", "40s".
// A negative d (a date in the future: the clock went back, or a file was
// dated ahead) is shown with a '-': such a message waits for the clock.
func age(d time.Duration) string {
	if d < 0 && d > -time.Second {
		d = 0
	}
	if d < 0 {
		return "-" + age(negate(d))
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + "s"
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	}
}

// negate is -d, but the least Duration, which time.Time.Sub gives for a
// date some 292 years or more ahead and which is its own negation, becomes
// the greatest: age would call itself on it for ever.
func negate(d time.Duration) time.Duration {
	if d == math.MinInt64 {
		return math.MaxInt64
	}
	return -d
}

// ago is "AGE ago" for a time d in the past, "AGE in the future" for one
// ahead of the clock. A date some 292 years or more away shows as
// 106751d23h, the most a Duration holds.
func ago(d time.Duration) string {
	if d <= -time.Second {
		return age(negate(d)) + " in the future"
	}
	return age(d) + " ago"
}

// queue prints one line per message:
//
//	ID AGE SIZE RCPTS STATE <SENDER>
//
// RCPTS is "pending/total" recipients. STATE is one of todo (not yet
// preprocessed: todo/ID exists, whatever info file it has), queued, held
// (every pending recipient is on a held channel or domain), partly-held,
// msgheld (held by qmailctl hold ID),
// bouncing (a bounce is being sent),
// done (nothing pending: about to be removed) or trouble (see qmail-qread).
// A hold flag or heldmsgs that cannot be read is warned about and the
// listing goes on (listingHolds).
func (c *cmd) queue() int {
	q := c.queueDir()
	local, remote, held, err := c.listingHolds()
	if err != nil {
		return c.fail(ExitTemp, "unable to read the hold flags: %v", err)
	}
	// todo/ before info/: a message preprocessed between the two reads
	// is then seen in one or the other, never in neither.
	todo, err := qread.ScanTodo(q)
	if err != nil {
		return c.fail(ExitTemp, "%v", err)
	}
	inTodo := map[uint64]bool{}
	for _, t := range todo {
		inTodo[t.ID] = true
	}
	now := c.now()
	// Each message's line is made as the queue is read and only the lines
	// are kept for sorting by id: about a tenth of the memory of the
	// messages themselves.
	type line struct {
		id   uint64
		text string
	}
	var lines []line
	err = qread.ScanEach(q, func(m *qread.Message) {
		if inTodo[m.ID] {
			// qmail-send preprocesses it (again) from todo/ID and
			// ignores this info file (spec/queue.md §6): it is
			// listed below, as todo, with what todo/ID says.
			return
		}
		if m.Err != nil {
			lines = append(lines, line{m.ID, fmt.Sprintf("%d - - - trouble (%v)\n", m.ID, m.Err)})
			return
		}
		pending, _ := counts(m, local, remote)
		state := messageState(m, local, remote)
		if held[m.ID] && pending > 0 {
			state = "msgheld"
			if m.Bouncing {
				state += ",failures"
			}
		}
		lines = append(lines, line{m.ID, fmt.Sprintf("%d %s %d %d/%d %s <%s>\n", m.ID, age(now.Sub(m.Birth)), m.Size,
			pending, len(m.Local)+len(m.Remote), state, qread.Safe(m.Sender))})
	})
	if err != nil {
		return c.fail(ExitTemp, "%v", err)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].id < lines[j].id })
	for _, l := range lines {
		if _, err := io.WriteString(c.out, l.text); err != nil {
			return c.fail(ExitTemp, "unable to write output: %v", err)
		}
	}
	for _, t := range todo {
		if t.Err != nil {
			fmt.Fprintf(c.out, "%d - - - trouble (%v)\n", t.ID, t.Err)
			continue
		}
		state := "todo"
		if held[t.ID] {
			state = "todo,msgheld"
		}
		fmt.Fprintf(c.out, "%d %s %d %d/%d %s <%s>\n", t.ID, age(now.Sub(t.Queued)), t.Size,
			t.Recipients, t.Recipients, state, qread.Safe(t.Sender))
	}
	return ExitOK
}

// listingHolds reads what queue and queue ID mark as held: the hold
// flags and the messages held by id. Only a control directory that is
// there but no directory, or cannot be looked at, is an error (exit 111,
// as for every command). Trouble with the files stops no listing
// (qmail-qread lists with a warning too); each is warned about on stderr,
// and a flag that is there but cannot be read (a directory, a FIFO, a
// file qmailctl may not read) is taken as qmail-send takes it:
// control/holdlocal holds all local delivery as long as it exists, and a
// control/holdremote qmail-send cannot read holds all remote delivery
// from its next re-read (it does not start with one). A flag whose
// existence cannot be told either, and an unreadable heldmsgs, mark
// nothing.
func (c *cmd) listingHolds() (local, remote hold.Flag, held map[uint64]bool, err error) {
	dir := control.Open(c.root).Path
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return local, remote, nil, &os.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return local, remote, nil, err
	}
	read := func(name, shown string) hold.Flag {
		h, err := hold.Read(dir, name)
		if err == nil {
			return h
		}
		// Looked for as qmail-send looks: holdlocal by os.Stat (a
		// symbolic link counts by its target), holdremote by os.Lstat.
		look := os.Stat
		if name == hold.RemoteFile {
			look = os.Lstat
		}
		if _, serr := look(filepath.Join(dir, name)); serr == nil {
			fmt.Fprintf(c.err, "qmailctl: warning: unable to read control/%s: %v; %s\n", name, qerr.Bare(err), shown)
			return hold.ParseFile(name, nil)
		}
		fmt.Fprintf(c.err, "qmailctl: warning: unable to read control/%s: %v; what it holds is not marked\n", name, qerr.Bare(err))
		return hold.Flag{}
	}
	local = read(hold.LocalFile, "local recipients are shown held, as qmail-send holds local delivery while it exists")
	remote = read(hold.RemoteFile, "remote recipients are shown held, as qmail-send holds all remote delivery while it cannot read it")
	held, herr := sched.LoadHeld(c.queueDir())
	if herr != nil {
		fmt.Fprintf(c.err, "qmailctl: warning: unable to read queue/bounce/%s: %v; messages held by id are not shown as held\n",
			sched.HeldMsgsName, qerr.Bare(herr))
	}
	return local, remote, held, nil
}

// counts returns the recipients of m not yet done, and how many of them are
// on a held channel or domain.
func counts(m *qread.Message, local, remote hold.Flag) (pending, held int) {
	for _, r := range m.Local {
		if !r.Done {
			pending++
			if local.Set {
				held++
			}
		}
	}
	for _, r := range m.Remote {
		if !r.Done {
			pending++
			if remote.HoldsAddress(r.Addr) {
				held++
			}
		}
	}
	return pending, held
}

// messageState is the STATE column of qmailctl queue.
//
// A message with failures recorded (bounce/ID) is "bouncing" only once
// nothing is pending, when its bounce goes out; before that its bounce
// waits for the other recipients, and the state says what they do, with
// ",failures" after it.
func messageState(m *qread.Message, local, remote hold.Flag) string {
	pending, held := counts(m, local, remote)
	state := "queued"
	switch {
	case pending == 0 && m.Bouncing:
		return "bouncing"
	case pending == 0:
		return "done"
	case held == pending:
		state = "held"
	case held > 0:
		state = "partly-held"
	}
	if m.Bouncing {
		state += ",failures"
	}
	return state
}
