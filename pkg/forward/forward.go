// Package forward delivers a message to a list of sendmail-style targets on
// behalf of fastforward(8) (targets from the aliases database) and
// dot-forward(8) (targets from a user's ~/.forward). Both run as
// qmail-local programs: in the delivering user's home, with the message on
// stdin and qmail-local's environment (SENDER, NEWSENDER, LOCAL, HOST,
// USER, DTLINE, RPLINE, UFLINE).
//
// Order, as qmail-local does for .qmail files: files, Maildirs and
// programs first, in order, the first failure stopping everything; then all
// forwarded addresses together in one qmail-queue run, with the message
// preceded by DTLINE so that a forwarding loop is caught by qmail-local's
// Delivered-To check.
package forward

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/maildir"
	"github.com/hqmail/hqmail/pkg/mbox"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// MaxIncludeDepth bounds nested :include: files.
const MaxIncludeDepth = 10

// MaxIncludeSize bounds an :include: file; a larger one defers the
// delivery (it is never cut short: a cut list loses members and mangles
// the last address). A variable for tests.
var MaxIncludeSize = 64 << 20

// Plan is what a target list expands to.
type Plan struct {
	Files    []string // mbox files
	Maildirs []string
	Programs []string
	Forwards []string
	Here     bool // "\user" naming the delivering user: deliver to the default mailbox too
	// Refused holds one line for each target of an :include: file that
	// was left out: a program or file target because the file (or one
	// above it) belongs to neither root nor the delivering user, or is
	// writable by its group; a target with a syntax error, named by
	// file:line. The mains print them as warnings, which qmail-local
	// passes into the log.
	Refused []string

	seen map[string]bool // targets already in the plan
}

// Empty reports whether the plan delivers nowhere.
func (p *Plan) Empty() bool {
	return len(p.Files) == 0 && len(p.Maildirs) == 0 && len(p.Programs) == 0 && len(p.Forwards) == 0 && !p.Here
}

// Env is the delivery's view of qmail-local's environment.
type Env struct {
	Root                   string // qmail tree (for qmail-queue)
	User, Local, Host      string
	Sender                 string // envelope sender for forwards
	DTLine, RPLine, UFLine string
	// Locals are the local domains (control/locals, else me), lowercased;
	// user@any of them is the delivering user too.
	Locals map[string]bool
	// NoAtHost is the domain a bare forwarded name gets (envnoathost,
	// else me), lowercased.
	NoAtHost string
}

// EnvFromOS reads qmail-local's environment variables.
func EnvFromOS(root string) Env {
	sender := os.Getenv("NEWSENDER")
	if _, ok := os.LookupEnv("NEWSENDER"); !ok {
		sender = os.Getenv("SENDER")
	}
	return Env{
		Root: root, User: os.Getenv("USER"), Local: os.Getenv("LOCAL"), Host: os.Getenv("HOST"),
		Sender: sender, DTLine: os.Getenv("DTLINE"), RPLine: os.Getenv("RPLINE"), UFLine: os.Getenv("UFLINE"),
		Locals: readLocals(root), NoAtHost: readNoAtHost(root),
	}
}

// readNoAtHost reads control/envnoathost, else me; "" when neither.
func readNoAtHost(root string) string {
	h, err := control.Open(root).LineOrMe("envnoathost")
	if err != nil || h == "envnoathost" {
		return ""
	}
	return strings.ToLower(h)
}

// readLocals reads control/locals (else me); nil when neither can be read.
func readLocals(root string) map[string]bool {
	d := control.Open(root)
	me, haveMe, err := d.Me()
	if err != nil {
		return nil
	}
	set, _, err := d.Locals(me, haveMe)
	if err != nil {
		return nil
	}
	return set
}

// IsSelf reports whether an address names the delivering user (its bare
// name, or name@HOST or name@ any local domain), which sendmail treats as
// "deliver here". (With HOST alone, "user@other-local-name" in a
// .forward was forwarded, came back, and its other targets got a second
// copy.)
func (e *Env) IsSelf(addr string) bool {
	a := strings.ToLower(addr)
	u := strings.ToLower(e.User)
	if u == "" {
		return false
	}
	if a == u {
		return true
	}
	local, dom, ok := address.Split(a)
	return ok && local == u && (dom == strings.ToLower(e.Host) || e.Locals[dom])
}

// geteuid is the delivering user's uid (fastforward runs as the alias
// user, dot-forward as the recipient); a variable for tests.
var geteuid = os.Geteuid

// Expand classifies targets, reading :include: files (which must be
// absolute, regular, and not writable by others: one that is defers the
// delivery). A target named twice
// (in the list and in an :include: file, say) is delivered once, as
// sendmail and Postfix do; /dev/null takes the message and keeps nothing.
// Addresses come out in the form the envelope carries them (a quoted
// local part without its quotes).
//
// Programs and files (mbox or Maildir) named in an :include: file are
// taken only when that file and every :include: file above it belong to
// root or to the delivering user and are not writable by their group:
// anyone else who can write such a file would otherwise run commands as
// the delivering user. Otherwise each is left out and named in
// Plan.Refused, and the addresses of the file are still taken; /dev/null,
// which keeps nothing, is taken from any file.
//
// A target of an :include: file with a syntax error is left out the same
// way, named by file:line, and the other targets are delivered to (as
// sendmail fails only the bad address of a list): one typo in a list
// kept by someone else no longer bounces every message to it.
//
// A plan left with nothing to deliver because of either is a permanent
// failure with the first refusal as its text.
func Expand(targets []string, env *Env) (*Plan, error) {
	p := &Plan{seen: map[string]bool{}}
	if err := p.add(targets, env, 0, nil); err != nil {
		return p, err
	}
	if p.Empty() && len(p.Refused) > 0 {
		return p, qerr.Perm("%s", p.Refused[0])
	}
	return p, nil
}

// untrusted names the first :include: file of a chain that belongs to
// neither root nor the delivering user, or that its group can write.
type untrusted struct {
	file string
	why  string // what is wrong with file: "belongs to uid 1001, ..."
	inc  string // the :include: file the target is in
}

// distrust returns why an :include: file may not give programs and
// files, or "" when it may: it belongs to someone other than root and
// the delivering user, or members of its group can change it (any of
// them could then run commands as the delivering user). sendmail takes
// neither kind of file as safe.
func distrust(owner, group int, mode fs.FileMode) string {
	if owner != 0 && owner != geteuid() {
		return fmt.Sprintf("belongs to uid %d, not to root or the delivering user", owner)
	}
	if mode.Perm()&0o020 != 0 {
		return fmt.Sprintf("is writable by its group (gid %d)", group)
	}
	return ""
}

func (u *untrusted) refuse(target string) string {
	why := "it " + u.why
	if u.inc != u.file {
		why = fmt.Sprintf("it is included from %s, which %s", u.file, u.why)
	}
	return fmt.Sprintf("%q skipped: program and file targets in :include: %s are ignored: %s (#5.7.1)",
		target, u.inc, why)
}

// once reports whether target (of kind k) is new to the plan. Addresses
// compare case-insensitively; a bare name is name@envnoathost, as
// qmail-send qualifies it, and name@ any local domain is one mailbox
// (qmail-local delivers by the local part alone).
func (p *Plan) once(k aliases.Kind, target string, env *Env) bool {
	key := target
	if k == aliases.Local || k == aliases.Address {
		k = aliases.Address // "\user" and "user" both forward to user
		local, dom, has := address.Split(strings.ToLower(target))
		if !has {
			dom = env.NoAtHost
		}
		if env.Locals[dom] {
			dom = "" // the local mailbox of local
		}
		key = local + "@" + dom
	}
	key = fmt.Sprint(int(k), " ", key)
	if p.seen[key] {
		return false
	}
	p.seen[key] = true
	return true
}

// add adds targets to the plan; from is nil for targets of the aliases
// database or the .forward, else the include file they are in when it
// (or one above it) is not to be trusted with programs and files.
func (p *Plan) add(targets []string, env *Env, depth int, from *untrusted) error {
	for _, t := range targets {
		k, arg := aliases.Classify(t)
		if k == aliases.Address {
			arg = aliases.Envelope(arg)
		}
		if from != nil && (k == aliases.Program || k == aliases.Maildir || (k == aliases.File && arg != os.DevNull)) {
			p.Refused = append(p.Refused, from.refuse(t))
			continue
		}
		if k != aliases.Include && !p.once(k, arg, env) {
			continue
		}
		switch k {
		case aliases.Program:
			p.Programs = append(p.Programs, arg)
		case aliases.File:
			if arg != os.DevNull {
				p.Files = append(p.Files, arg)
			}
		case aliases.Maildir:
			p.Maildirs = append(p.Maildirs, arg)
		case aliases.Local:
			if env.IsSelf(arg) {
				p.Here = true
			} else {
				p.Forwards = append(p.Forwards, arg)
			}
		case aliases.Include:
			if depth >= MaxIncludeDepth {
				return qerr.Perm("Too many nested :include: files at %s. (#5.4.6)", arg)
			}
			inc, err := readInclude(arg)
			if err != nil {
				return err
			}
			p.Refused = append(p.Refused, inc.bad...)
			next := from
			if next != nil {
				next = &untrusted{file: from.file, why: from.why, inc: arg}
			} else if why := distrust(inc.owner, inc.group, inc.mode); why != "" {
				next = &untrusted{file: arg, why: why, inc: arg}
			}
			if err := p.add(inc.targets, env, depth+1, next); err != nil {
				return err
			}
		default:
			if env.IsSelf(arg) {
				p.Here = true
			} else {
				p.Forwards = append(p.Forwards, arg)
			}
		}
	}
	return nil
}

// include is what an :include: file gives.
type include struct {
	targets      []string
	bad          []string // one line for each target skipped for its syntax
	owner, group int      // as opened: a symbolic link counts as the file it leads to
	mode         fs.FileMode
}

// readInclude reads an :include: file: one or more targets a line, '#'
// comments. A missing or unsafe file is a temporary failure, so the mail
// stays queued while the admin fixes it. A target with a syntax error is
// left out and named in bad (file:line and what is wrong). It does not
// judge the file's owner and mode: Expand does.
func readInclude(path string) (*include, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s: file does not exist. (#4.2.1)", path))
		}
		return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s: %v. (#4.2.1)", path, errors.Unwrap(err)))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to stat include file %s. (#4.3.0)", path))
	}
	if !st.Mode().IsRegular() {
		return nil, qerr.Temp("Include file %s is not a regular file. (#4.7.0)", path)
	}
	if st.Mode().Perm()&0002 != 0 {
		return nil, qerr.Temp("Uh-oh: include file %s is writable by others. (#4.7.0)", path)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, qerr.Temp("Unable to find the owner of include file %s. (#4.3.0)", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(MaxIncludeSize)+1))
	if err != nil {
		return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s. (#4.3.0)", path))
	}
	if len(b) > MaxIncludeSize {
		return nil, qerr.Temp("Include file %s is larger than %d MB. (#4.3.0)", path, MaxIncludeSize>>20)
	}
	inc := &include{owner: int(sys.Uid), group: int(sys.Gid), mode: st.Mode()}
	var bad []badTarget
	inc.targets, bad = scanList(string(b))
	for _, e := range bad {
		inc.bad = append(inc.bad, fmt.Sprintf("%s:%d: syntax error in :include: file, target skipped: %s (#5.2.4)", path, e.line, e.msg))
	}
	return inc, nil
}

// badTarget is a target of a forwarding list with a syntax error.
type badTarget struct {
	line int
	msg  string
}

// scanList reads a .forward or :include: file: comma-separated targets
// on any number of lines, lines starting with '#' ignored. It returns the
// good targets and, with its line, each bad one.
func scanList(s string) (targets []string, bad []badTarget) {
	for i, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		good, errs := aliases.ScanTargets(line)
		for _, g := range good {
			targets = append(targets, g.Text)
		}
		for _, e := range errs {
			bad = append(bad, badTarget{i + 1, e.Msg})
		}
	}
	return targets, bad
}

// ParseList parses a .forward file: comma-separated targets on any number
// of lines, lines starting with '#' ignored. Any bad target is a
// permanent error naming its line, and nothing of the file is used.
func ParseList(s string) ([]string, error) {
	return parseFile("", s)
}

// parseFile is ParseList for the file name (its errors say name:line).
// A .forward is the user's own: as qmail's dot-forward did, a syntax
// error in it delivers nothing, rather than a part of what it asks.
func parseFile(name, s string) ([]string, error) {
	ts, bad := scanList(s)
	if len(bad) == 0 {
		return ts, nil
	}
	where := fmt.Sprintf("line %d", bad[0].line)
	if name != "" {
		where = fmt.Sprintf("%s:%d", name, bad[0].line)
	}
	more := ""
	if len(bad) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(bad)-1)
	}
	return nil, qerr.Perm("Syntax error in forwarding list: %s: %s%s. (#5.2.4)", where, bad[0].msg, more)
}

// Message gives repeated access to the message from its start.
type Message interface {
	io.Reader
	io.Seeker
}

// Seekable returns stdin if it can be rewound, else a copy of it in an
// unlinked temporary file. Either way the message is returned at its
// first byte: a caller may hand it to a program at once (condredirect(1)
// runs its test program before anything rewinds it).
func Seekable(in *os.File) (Message, error) {
	if _, err := in.Seek(0, io.SeekStart); err == nil {
		return in, nil
	}
	tmp, err := os.CreateTemp("", "forward-*")
	if err != nil {
		return nil, qerr.Wrap(err, false, "Unable to create a temporary file. (#4.3.0)")
	}
	os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return nil, qerr.Wrap(err, false, "Unable to read message. (#4.3.0)")
	}
	if err := rewind(tmp); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}

func rewind(m Message) error {
	if _, err := m.Seek(0, io.SeekStart); err != nil {
		return qerr.Wrap(err, false, "Unable to rewind message. (#4.3.0)")
	}
	return nil
}

// Deliver carries out a plan. It returns the pid of the forwarding
// qmail-queue (0 if none ran).
func Deliver(p *Plan, msg Message, env *Env, out io.Writer) (int, error) {
	for _, f := range p.Files {
		if err := rewind(msg); err != nil {
			return 0, err
		}
		if err := appendMbox(f, env, msg); err != nil {
			return 0, err
		}
	}
	for _, d := range p.Maildirs {
		if err := rewind(msg); err != nil {
			return 0, err
		}
		if err := maildir.Deliver(d, []byte(env.RPLine+env.DTLine), msg); err != nil {
			return 0, err
		}
	}
	for _, prog := range p.Programs {
		if err := rewind(msg); err != nil {
			return 0, err
		}
		if err := runProgram(prog, msg, out); err != nil {
			return 0, err
		}
	}
	if len(p.Forwards) == 0 {
		return 0, nil
	}
	if err := rewind(msg); err != nil {
		return 0, err
	}
	full := io.MultiReader(strings.NewReader(env.DTLine), msg)
	pid, err := qq.Queue(qq.Options{Root: env.Root}, full, &qq.Envelope{Sender: env.Sender, Recipients: p.Forwards})
	if err != nil {
		var qe *qerr.Error
		if errors.As(err, &qe) {
			return 0, &qerr.Error{Perm: qe.Perm, Text: "Unable to forward message: " + qe.Text + ".", Err: err}
		}
		return 0, err
	}
	return pid, nil
}

// runProgram runs /bin/sh -c prog with the message on stdin and its output
// on out; exit codes as qmail-local maps them.
func runProgram(prog string, msg io.Reader, out io.Writer) error {
	cmd := exec.Command("/bin/sh", "-c", prog)
	cmd.Stdin = msg
	cmd.Stdout = out
	cmd.Stderr = out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return qerr.Wrap(err, false, fmt.Sprintf("Unable to run /bin/sh: %v. (#4.3.0)", err))
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return qerr.Temp("Aack, child crashed. (#4.3.0)")
	}
	switch ws.ExitStatus() {
	case 100, 64, 65, 70, 76, 77, 78, 112:
		return qerr.Perm("Program %q failed permanently (exit %d).", prog, ws.ExitStatus())
	}
	return qerr.Temp("Program %q failed temporarily (exit %d).", prog, ws.ExitStatus())
}

// appendMbox appends the message to an mbox file with qmail-local's From_,
// Return-Path and Delivered-To lines.
func appendMbox(path string, env *Env, msg io.Reader) error {
	return mbox.Deliver(path, []byte(env.UFLine+env.RPLine+env.DTLine), msg)
}
