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
// Delivered-To check. A program gets the message preceded by the From_,
// Return-Path and Delivered-To lines, as from sendmail or Postfix (and
// preline(1)), in a temporary file, unless its command runs preline or
// another of qmail's tools that takes the message as it is.
package forward

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/maildir"
	"github.com/hqmail/hqmail/pkg/mbox"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
	"golang.org/x/sys/unix"
)

// Plan is what a target list expands to.
type Plan struct {
	Files    []string // mbox files
	Maildirs []string
	Programs []string
	Forwards []string
	Here     bool // "\user" naming the delivering user: deliver to the default mailbox too
	// Refused holds one line for each target of an :include: file that
	// was left out: a program or file target because the file (or one
	// above it) is not trusted (aliases.ReadInclude: another user's
	// file, link or directory, or one its group can write); a target
	// with a syntax error, named by file:line; or one line for a file
	// that reads as a mailbox, of which nothing is used. The mains print
	// them as warnings, which qmail-local passes into the log.
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
	// Locals are the local domains (control/locals, else me), in
	// idna.Fold form (control.Locals); user@any of them is the
	// delivering user too.
	Locals map[string]bool
	// NoAtHost is the domain a bare forwarded name gets (envnoathost,
	// else me), its ASCII letters lowercased.
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
	return address.LowerASCII(h)
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
// copy.) Only ASCII letters fold, as qmail folds a local part: Unicode
// folding took "\u212aevin" for the user kevin, and any two names that
// differ only in bytes that are no UTF-8 (Latin-1 "\xe9lise", "\xe8lise")
// for each other.
func (e *Env) IsSelf(addr string) bool {
	a := address.LowerASCII(addr)
	u := address.LowerASCII(e.User)
	if u == "" {
		return false
	}
	if a == u {
		return true
	}
	local, dom, ok := address.Split(a)
	return ok && local == u && (idna.Fold(dom) == idna.Fold(e.Host) || e.Locals[idna.Fold(dom)])
}

// geteuid is the delivering user's uid (fastforward runs as the alias
// user, dot-forward as the recipient); a variable for tests.
var geteuid = os.Geteuid

// Expand classifies targets, reading :include: files as
// aliases.Expander does (nested at most aliases.MaxIncludeDepth deep;
// each file read once however often it is named, at most
// aliases.MaxIncludeFiles opened and aliases.MaxIncludeTotal bytes read,
// or the delivery defers; a file that cannot be read, that is not a
// regular file, or that others can write, defers the delivery; an
// :include: loop bounces). A target
// named twice (in the list and in an :include: file, say) is delivered
// once, as sendmail and Postfix do; /dev/null takes the message and
// keeps nothing. Addresses come out in the form the envelope carries
// them (a quoted local part without its quotes).
//
// Programs and files (mbox or Maildir) named in an :include: file are
// taken only when that file and every :include: file above it are
// trusted (aliases.ReadInclude: it, every symbolic link on its path and
// the directory that holds it belong to root or to the delivering user,
// and neither it nor that directory can be written by others or by its
// group): anyone else who can change what such a path reads would
// otherwise run commands as the delivering user. Otherwise each is left
// out and named in Plan.Refused, and the addresses of the file are still
// taken; /dev/null, which keeps nothing, is taken from any file.
//
// A target of an :include: file with a syntax error is left out the same
// way, named by file:line, and the other targets are delivered to (as
// sendmail fails only the bad address of a list): one typo in a list
// kept by someone else no longer bounces every message to it. A file
// that looks like a mailbox or a mail message gives nothing at all.
//
// A plan left with nothing to deliver because of either is a permanent
// failure with the first refusal as its text.
func Expand(targets []string, env *Env) (*Plan, error) {
	p := &Plan{seen: map[string]bool{}}
	x := aliases.Expander{
		Who:    aliases.Deliverer{UID: geteuid()},
		Target: func(t string) { p.take(t, env) },
		Include: func(inc *aliases.IncludeFile, _ *aliases.Untrusted) {
			p.Refused = append(p.Refused, inc.Warnings()...)
		},
		Refused: func(t, inc string, from *aliases.Untrusted) {
			p.Refused = append(p.Refused, from.Refusal(t, inc))
		},
	}
	if err := x.Run(targets); err != nil {
		return p, err
	}
	if p.Empty() && len(p.Refused) > 0 {
		return p, qerr.Perm("%s", p.Refused[0])
	}
	return p, nil
}

// once reports whether target (of kind k) is new to the plan. Addresses
// compare with their ASCII letters folded (only those: with Unicode
// folding the Latin-1 "\xe8lise" and "\xe9lise" were one target and one
// of them got nothing); a bare name is name@envnoathost, as
// qmail-send qualifies it, and name@ any local domain is one mailbox
// (qmail-local delivers by the local part alone).
func (p *Plan) once(k aliases.Kind, target string, env *Env) bool {
	key := target
	if k == aliases.Local || k == aliases.Address {
		k = aliases.Address // "\user" and "user" both forward to user
		local, dom, has := address.Split(address.LowerASCII(target))
		if !has {
			dom = env.NoAtHost
		}
		if env.Locals[idna.Fold(dom)] {
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

// take adds a target (not an :include:) to the plan.
func (p *Plan) take(t string, env *Env) {
	k, arg := aliases.Classify(t)
	if k == aliases.Address {
		arg = aliases.Envelope(arg)
	}
	if !p.once(k, arg, env) {
		return
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
	default: // an address, or \user
		if env.IsSelf(arg) {
			p.Here = true
		} else {
			p.Forwards = append(p.Forwards, arg)
		}
	}
}

// badTarget is a target of a forwarding list with a syntax error.
type badTarget struct {
	line int
	msg  string
}

// scanList reads a .forward: comma-separated targets on any number of
// lines, lines starting with '#' ignored. It returns the good targets
// and, with its line, each bad one. (An :include: file is read by
// aliases.ReadInclude.)
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
	// A byte order mark (an editor's) is no part of the first target.
	s = strings.TrimPrefix(s, "\ufeff")
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
		return nil, qerr.Wrap(err, false, "Unable to create a temporary file in "+os.TempDir()+": "+qerr.Str(err)+". (#4.3.0)")
	}
	os.Remove(tmp.Name())
	// Which side failed is told apart: a full disk or a file size limit
	// (ulimit -f: the Go runtime ignores SIGXFSZ, so the write fails with
	// EFBIG) is the copy's fault, not the input's.
	src := &inputReader{r: in}
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		if src.err != nil {
			return nil, qerr.Wrap(src.err, false, "Unable to read message: "+qerr.Str(src.err)+". (#4.3.0)")
		}
		return nil, qerr.Wrap(err, false, "Unable to write a temporary copy of the message in "+
			filepath.Dir(tmp.Name())+": "+qerr.Str(err)+". (#4.3.0)")
	}
	if err := rewind(tmp); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}

// inputReader reads r and keeps its error other than io.EOF.
type inputReader struct {
	r   io.Reader
	err error
}

func (i *inputReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil && err != io.EOF {
		i.err = err
	}
	return n, err
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
		var head []byte
		if !wantsRaw(prog) {
			head = env.Head()
		}
		if err := runProgram(prog, head, msg, out); err != nil {
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

// runProgram runs /bin/sh -c prog with head and then the message on
// stdin and its output on out; exit codes as qmail-local maps them, 99
// (delivered, skip the rest) taken as 0.
//
// head is what sendmail's prog mailer and Postfix's local(8) give a
// program before the message, and what preline(1) adds: the From_ line,
// Return-Path and Delivered-To (Env.Head), so that the classic
// "|/usr/bin/procmail" of a .forward writes an mbox that reads. With a
// head, the program's stdin is an unlinked temporary file (withHead)
// that holds head and then the whole message, at its first byte: as
// qmail-local's own, it is a regular file that the program may read in
// part, rewind or leave to a process it starts, and the program runs
// only once all of it is written. Without a head (a command that runs
// one of qmail's tools, wantsRaw, or qmail-local's variables not set)
// the program gets the message itself on stdin, at its first byte, as
// qmail-local hands it over.
func runProgram(prog string, head []byte, msg Message, out io.Writer) error {
	cmd := exec.Command("/bin/sh", "-c", prog)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Stdin = msg
	if len(head) > 0 {
		f, err := withHead(head, msg)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdin = f
	}
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
	case 99:
		// qmail-command(8): delivered, skip the rest of the .qmail
		// file. A list has no rest to skip: its other targets still get
		// the message. As a failure it was retried, and a program that
		// forwards and exits 99 (condredirect) sent a copy each time.
		return nil
	case 100, 64, 65, 70, 76, 77, 78, 112:
		return qerr.Perm("Program %q failed permanently (exit %d).", prog, ws.ExitStatus())
	}
	return qerr.Temp("Program %q failed temporarily (exit %d).", prog, ws.ExitStatus())
}

// withHead returns an unlinked temporary file, mode 0600, that holds
// head and then all of msg, at its first byte, made in the first of
// tempDirs that takes it. A failure to make or write it (all full) is a
// temporary failure, as is one to read msg: no program has run.
func withHead(head []byte, msg Message) (*os.File, error) {
	return withHeadIn(tempDirs(), head, msg)
}

// withHeadIn is withHead with the directories to try, in order. It goes
// on to the next one when a directory cannot take the file
// (tempDirFailed), with msg rewound to where it was; any other error,
// or the last directory's, is returned.
func withHeadIn(dirs []string, head []byte, msg Message) (*os.File, error) {
	start, err := msg.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, qerr.Wrap(err, false, "Unable to rewind message. (#4.3.0)")
	}
	var last error
	for n, dir := range dirs {
		if n > 0 {
			if _, err := msg.Seek(start, io.SeekStart); err != nil {
				return nil, qerr.Wrap(err, false, "Unable to rewind message. (#4.3.0)")
			}
		}
		f, err := tempFile(dir)
		if err != nil {
			last = qerr.Wrap(err, false, "Unable to copy message: unable to create a temporary file in "+dir+": "+errText(err)+". (#4.3.0)")
			if tempDirFailed(err) {
				continue
			}
			return nil, last
		}
		src := &inputReader{r: msg}
		_, err = f.Write(head)
		if err == nil {
			_, err = io.Copy(f, src)
		}
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err == nil {
			return f, nil
		}
		f.Close()
		if src.err != nil {
			return nil, qerr.Wrap(src.err, false, "Unable to read message: "+errText(src.err)+". (#4.3.0)")
		}
		last = qerr.Wrap(err, false, "Unable to copy message: "+errText(err)+" (a temporary file in "+dir+"). (#4.3.0)")
		if !tempDirFailed(err) {
			return nil, last
		}
	}
	return nil, last
}

// tempDirs are the directories withHead tries, in order: $TMPDIR when
// it is set and absolute, /tmp, and the delivery's home: the current
// directory, where qmail-local starts dot-forward and fastforward, or
// $HOME (absolute) if there is none. Each comes once.
//
// qmail-local hands a program qmail-send's environment: a $TMPDIR the
// user cannot write (pam_tmpdir gives root /tmp/user/0) must not defer
// every delivery, nor must a message larger than /tmp's free space.
func tempDirs() []string {
	var dirs []string
	add := func(d string) {
		if !filepath.IsAbs(d) {
			return
		}
		d = filepath.Clean(d)
		for _, e := range dirs {
			if e == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	add(os.Getenv("TMPDIR"))
	add("/tmp")
	if wd, err := os.Getwd(); err == nil {
		add(wd)
	} else {
		add(os.Getenv("HOME"))
	}
	return dirs
}

// tempDirFailed reports whether err, from making or writing a
// temporary file, is the directory's own failure, one that another
// directory may not have: it cannot be written or searched, does not
// exist, is on a read-only or a full file system, or the user's quota
// there is used up.
func tempDirFailed(err error) bool {
	for _, e := range []error{syscall.EACCES, syscall.EPERM, syscall.ENOENT, syscall.ENOTDIR, syscall.EROFS, syscall.ENOSPC, syscall.EDQUOT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// tempFile opens a new file in dir, mode 0600, with no name: O_TMPFILE
// where the kernel and the file system have it, else a file made by
// os.CreateTemp and removed at once.
func tempFile(dir string) (*os.File, error) {
	if f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600); err == nil {
		return f, nil
	}
	f, err := os.CreateTemp(dir, "forward-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// errText is the errno text of err (qerr.Str), else its own text.
func errText(err error) string {
	if s := qerr.Str(err); s != "unknown error" {
		return s
	}
	return err.Error()
}

// appendMbox appends the message to an mbox file with qmail-local's From_,
// Return-Path and Delivered-To lines.
func appendMbox(path string, env *Env, msg io.Reader) error {
	return mbox.Deliver(path, env.Head(), msg)
}
