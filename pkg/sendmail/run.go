package sendmail

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/inject"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sendlock"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// Env is a mutable copy of an environment.
type Env []string

// Unset removes every KEY=... entry.
func (e *Env) Unset(key string) {
	out := (*e)[:0]
	for _, kv := range *e {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	*e = out
}

// Set replaces KEY's value.
func (e *Env) Set(key, val string) {
	e.Unset(key)
	*e = append(*e, key+"="+val)
}

// Has reports whether any of keys is set.
func (e Env) Has(keys ...string) bool {
	for _, k := range keys {
		if _, ok := e.Get(k); ok {
			return true
		}
	}
	return false
}

// Get returns KEY's value.
func (e Env) Get(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if strings.HasPrefix(e[i], key+"=") {
			return e[i][len(key)+1:], true
		}
	}
	return "", false
}

// Sys is what sendmail needs from the operating system; tests replace it.
type Sys struct {
	// Exec replaces the process with path (as execve does); it returns
	// only on failure.
	Exec  func(path string, argv, env []string) error
	Chdir func(dir string) error
	// UserName is the login name of the real uid, "" if unknown; nil
	// means none is looked up.
	UserName func() string
}

// DefaultSys uses the real system calls.
var DefaultSys = Sys{Exec: syscall.Exec, Chdir: os.Chdir, UserName: realUser}

func realUser() string {
	u, err := user.LookupId(unixid.Format(os.Getuid()))
	if err != nil {
		return ""
	}
	return u.Username
}

// Main runs sendmail with argv, the qmail tree at root and environment env,
// and returns the exit status (sysexits codes, see docs/man/sendmail.8).
// A failure (a status other than 0) gives back standard input as
// input.giveBack says: a regular file at the offset it was read from, the
// rest of a piped message read and thrown away.
func Main(argv []string, root string, env []string, stdin io.Reader, stdout, stderr io.Writer, sys Sys) (code int) {
	in := noteInput(stdin)
	defer func() {
		if code != 0 {
			in.giveBack()
		}
	}()
	prog := "sendmail"
	if len(argv) > 0 {
		prog = filepath.Base(argv[0])
		argv = argv[1:]
	}
	if prog == "newaliases" {
		// A newaliases link to sendmail is newaliases: its options (-n,
		// -f file) are its own, not sendmail's.
		return newaliases(root, argv, env, stderr, sys)
	}
	if prog != "mailq" && len(argv) == 1 && argv[0] == "--help" {
		// "--help" is no sendmail option ("-h" is the hop count).
		if _, err := io.WriteString(stdout, Help); err != nil {
			fmt.Fprintf(stderr, "sendmail: fatal: unable to write output: %v\n", err)
			return ExTempFail
		}
		return 0
	}
	c, err := Parse(prog, argv)
	if err != nil {
		if prog == "mailq" {
			fmt.Fprintf(stderr, "%s\n%s\n", err, MailqUsage)
			return ExUsage
		}
		fmt.Fprintf(stderr, "%s\n%s\n%s\n", err, Usage, "sendmail: sendmail --help lists every option")
		return ExUsage
	}
	if c.Mode == ModeNewAliases {
		// Run from the caller's directory, where a relative -oA file is.
		var args []string
		if c.AliasFile != "" {
			args = []string{"-oA" + c.AliasFile} // newaliases reads sendmail's form
		}
		return newaliases(root, args, env, stderr, sys)
	}
	e := Env(append([]string(nil), env...))
	// qmail-inject reads QMAILMFTFILE relative to the caller's directory;
	// sendmail works in the qmail home.
	if fn, ok := e.Get("QMAILMFTFILE"); ok && fn != "" && !filepath.IsAbs(fn) {
		if abs, err := filepath.Abs(fn); err == nil {
			e.Set("QMAILMFTFILE", abs)
		} else {
			e.Unset("QMAILMFTFILE") // no directory to read it from: no file
		}
	}
	if err := sys.Chdir(root); err != nil {
		chdirFailed(stderr, root, err)
		return ExTempFail
	}
	switch c.Mode {
	case ModeQueueList:
		return run(sys, stderr, filepath.Join(root, "bin", "qmail-qread"), nil, e)
	case ModeSMTP:
		if _, ok := e.Get("PROTO"); !ok {
			for _, kv := range [][2]string{{"RELAYCLIENT", ""}, {"DATABYTES", "0"}, {"PROTO", "TCP"},
				{"TCPLOCALIP", "127.0.0.1"}, {"TCPLOCALHOST", "localhost"}, {"TCPREMOTEIP", "127.0.0.1"},
				{"TCPREMOTEHOST", "localhost"}, {"TCPREMOTEINFO", "sendmail-bs"}} {
				e.Set(kv[0], kv[1])
			}
		}
		return run(sys, stderr, filepath.Join(root, "bin", "qmail-smtpd"), nil, e)
	case ModeFlush:
		if len(c.Recipients) > 0 {
			fmt.Fprintln(stderr, "sendmail: warning: -q only flushes the queue; the recipients and standard input are ignored")
		}
		return Flush(root, stderr)
	}
	in.message = true

	if c.Sender != nil {
		// Read as one element of a recipient list: a list there is
		// refused, an empty one (a lone separator, an empty group) is
		// the null sender.
		elems := nonEmpty(splitList(ungroup(*c.Sender)))
		if len(elems) > 1 {
			fmt.Fprintf(stderr, "sendmail: fatal: unable to parse the -f address %q: it holds %d addresses; the sender is one\n", *c.Sender, len(elems))
			return ExDataErr
		}
		s, err := "", error(nil)
		if len(elems) == 1 {
			s, err = AddrSpec(elems[0])
		}
		if err == nil && s != "" {
			// qmail-inject's test of a -f value (its domain as tokens),
			// made here so that the error names the -f value as the
			// others do: qmail-inject says "unable to parse address: "
			// and the value alone, as for a recipient.
			if _, ok := inject.Tokenize(address.Quote(s)); !ok {
				err = errors.New("the domain after its last @ cannot be read (a quoted string, comment or [literal] not closed, or a stray ')' or ']')")
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "sendmail: fatal: unable to parse the -f address %q: %v\n", *c.Sender, err)
			return ExDataErr
		}
		c.Sender = &s
	}
	for _, k := range []string{"QMAILUSER", "MAILUSER", "USER", "LOGNAME"} {
		// Set but empty (USER= in a unit file or a cron line) would
		// make the sender "@host", whose bounces reach nobody. Before
		// -f sets QMAILUSER: an -f address with nothing before its @
		// sets it empty, and the From field is made to match it.
		if v, ok := e.Get(k); ok && v == "" {
			e.Unset(k)
		}
	}
	if c.Name != nil {
		e.Set("MAILNAME", *c.Name)
	}
	if c.Sender != nil {
		for _, k := range []string{"QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"} {
			e.Unset(k)
		}
		if s := *c.Sender; s != "" {
			if at := strings.LastIndexByte(s, '@'); at >= 0 {
				e.Set("QMAILUSER", s[:at])
				e.Set("QMAILHOST", s[at+1:])
			} else {
				e.Set("QMAILUSER", s)
			}
		}
		if strings.EqualFold(*c.Sender, "MAILER-DAEMON") {
			// Postfix's name for the null sender (bounce generators
			// and autoresponders pass it): From says MAILER-DAEMON,
			// the envelope sender is <>, so that nothing answers it.
			null := ""
			c.Sender = &null
		}
	}
	if sys.UserName != nil && !e.Has("QMAILUSER", "MAILUSER", "USER", "LOGNAME") {
		// A daemon started without a login environment (a systemd
		// service, mdadm, unattended-upgrades): qmail-inject would send
		// as "anonymous"; sendmail and Postfix send as the real uid's
		// user, and bounces then reach someone.
		if n := sys.UserName(); n != "" {
			e.Set("USER", n)
		}
	}
	if !c.Header && len(c.Recipients) == 0 {
		fmt.Fprintln(stderr, "sendmail: fatal: recipient addresses must be given as arguments, or -t must be used")
		return ExUsage
	}
	recips, err := SplitRecipients(c.Recipients)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: fatal: %v\n", err)
		return ExDataErr
	}
	if _, ok := e.Get("QMAILQUEUE"); !ok && noTree(stderr, root) {
		// qmail-inject would only say "unable to exec qq".
		return ExTempFail
	}
	j := &inject.Job{Root: root, Env: e, Stdin: newCRLFReader(newFromLineReader(stdin)), Stdout: stdout, Stderr: stderr,
		NeedRecipients: true, Name: "sendmail"}
	j.Strategy = inject.RecipArgs
	if c.Header {
		j.Strategy = inject.RecipBoth
	}
	j.Sender = c.Sender
	j.Args = recips
	// A Return-Path in the input is the envelope of an earlier delivery
	// (mutt's bounce, formail -s, procmail's forward hand over stored
	// mail): sendmail and Postfix ignore and remove it, and a sender
	// taken from it would be someone else's (SPF failures, their
	// bounces sent to a stranger). qmail-inject itself keeps qmail's way.
	// They drop a leading mbox "From " line of such mail too, and so
	// does this one (newFromLineReader, on Stdin above), where
	// qmail-inject makes it a field ("MBOX-Line: From ...").
	j.IgnoreReturnPath = true
	j.KeepUnparsable = true
	j.BareUTF8Domain = true
	j.VERP = c.VERP
	var skipped []string // the fields, or addresses, that gave no recipient
	j.HeaderRecipients = func(fields []inject.RecipField) ([]string, error) {
		if why := lineEnd(fields); why != "" {
			return nil, errors.New(why) // nothing queued: exit 65
		}
		var out []string
		for _, f := range fields {
			if !f.Parsed {
				// qmail-inject's rule: the field stays as it is and gives
				// no recipient. Said, or its addresses were lost unseen.
				fmt.Fprintf(stderr, "sendmail: warning: unable to parse the %s: field; its addresses get no copy\n", f.Name)
				skipped = append(skipped, "the "+f.Name+": field could not be parsed")
				continue
			}
			for _, a := range f.Addrs {
				if local, _, _ := address.Split(a); local == "" {
					// The callback has the address as rewritten, not as
					// written: "@x.org" and "<>" are both "".
					what := strconv.Quote(a)
					if a == "" {
						what = "an empty address: nothing before its @, or <>"
					}
					fmt.Fprintf(stderr, "sendmail: warning: an address in the %s: field has no local part (%s); it gets no copy\n", f.Name, what)
					skipped = append(skipped, "an address in the "+f.Name+": field has no local part")
					continue
				}
				out = append(out, a)
			}
		}
		return out, nil
	}
	if ierr := j.Exec(); ierr != nil {
		if ierr.Text == inject.ErrNoRecipients && len(skipped) > 0 {
			ierr.Text += ": " + strings.Join(skipped, "; ")
		}
		if ierr.Err != nil {
			// qmail-inject's "read error" names nothing: a control file
			// sendmail cannot read looked like a fault of the input, and
			// the input's own failure gave no reason.
			fmt.Fprintf(stderr, "sendmail: fatal: %v\n", ierr.Err)
		} else {
			fmt.Fprintf(stderr, "sendmail: fatal: %s\n", ierr.Text)
		}
		switch {
		case ierr.Code == 111:
			return ExTempFail
		case ierr.Queue:
			return ExUnavailable
		default:
			return ExDataErr
		}
	}
	return 0
}

// lineEnd returns why the message is refused when an address the header
// fields give holds a CR, LF or NUL (a quoted one, or a backslash before
// a line end: 'To: "a\rRCPT TO:<v@y.org>"@x.org'), as a recipient
// argument is (qmail-inject's checkArgs): the envelope would carry it
// into Delivered-To, a delivery's Return-Path and the SMTP commands of
// qmail-remote. "" when none does. (A NUL does not come: qmail-inject
// cuts a header address at its first NUL, as qmail's C strings do.)
func lineEnd(fields []inject.RecipField) string {
	for _, f := range fields {
		for _, a := range f.Addrs {
			if bad(a) {
				return fmt.Sprintf("CR, LF or NUL in an address of the %s: field, %s (header injection refused)", f.Name, strconv.Quote(a))
			}
		}
	}
	return ""
}

// newaliases execs the tree's newaliases with args, or says that there is
// none. It runs in the caller's directory, which a relative aliases file
// (-f, -oA) names a file in, as when newaliases is run itself.
func newaliases(root string, args, env []string, stderr io.Writer, sys Sys) int {
	p := filepath.Join(root, "bin", "newaliases")
	if _, err := os.Stat(p); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			fmt.Fprintf(stderr, "sendmail: fatal: unable to look for %s: %v\n", p, err)
			return ExTempFail
		}
		if noTree(stderr, root) {
			return ExUnavailable
		}
		fmt.Fprintln(stderr, "sendmail: newaliases: this system has no newaliases; qmail needs none (see dot-qmail(5) and fastforward)")
		return 0
	}
	return run(sys, stderr, p, args, env)
}

// run execs a program of the tree with args; a missing program is
// EX_UNAVAILABLE. The program's own exit code is sendmail's from then on.
func run(sys Sys, stderr io.Writer, path string, args, env []string) int {
	if isSelf(path) {
		// A hard link or copy of sendmail in some other bin/ takes that
		// bin's parent as its tree, where the program may be sendmail
		// again (a hard-linked /usr/bin/newaliases): it would exec
		// itself for ever.
		fmt.Fprintf(stderr, "sendmail: fatal: %s is this sendmail itself, so %s is no qmail tree: "+
			"link sendmail and its names to QMAILHOME/bin with symbolic links (ln -s), not hard links or copies\n",
			path, filepath.Dir(filepath.Dir(path)))
		return ExUnavailable
	}
	err := sys.Exec(path, append([]string{filepath.Base(path)}, args...), env)
	if errors.Is(err, fs.ErrNotExist) {
		if noTree(stderr, filepath.Dir(filepath.Dir(path))) {
			return ExUnavailable
		}
		fmt.Fprintf(stderr, "sendmail: fatal: unable to run %s: %v\n", path, err)
		return ExUnavailable
	}
	fmt.Fprintf(stderr, "sendmail: fatal: unable to run %s: %v\n", path, err)
	return ExTempFail
}

// chdirFailed reports that the qmail home directory root cannot be
// entered. A missing /var/qmail is what a copy, hard link or bind mount of
// sendmail in a directory not named bin finds on a host with no tree
// there (qhome.Root falls back to it): the same hint as noTree's follows
// qmail's text, or the caller would look for a tree that was never meant.
func chdirFailed(stderr io.Writer, root string, err error) {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	hint := ""
	if root == qhome.DefaultRoot && errors.Is(err, fs.ErrNotExist) {
		hint = ". A sendmail outside any directory named bin takes " + root + " as its home: " + findsTree
	}
	fmt.Fprintf(stderr, "sendmail: fatal: unable to switch to qmail home directory %s: %v%s\n", root, err, hint)
}

// findsTree explains how sendmail finds its tree, for a sendmail that
// found none.
const findsTree = "sendmail finds its tree from its own path, " +
	"QMAILHOME/bin/sendmail or a symbolic link to it; a hard link, a copy or a bind mount elsewhere cannot find it. " +
	"Link sendmail and its names to QMAILHOME/bin with symbolic links (ln -s), not hard links or copies"

// noTree reports, and explains, that root is no qmail tree. With neither
// a queue/ nor a bin/qmail-queue it is what a hard link or a copy of
// sendmail outside QMAILHOME/bin finds (qhome.Root takes the parent of a
// directory named bin, /var/qmail otherwise); with bin/qmail-queue but no
// queue/ it is a source checkout after make (qhome.Uninstalled). Without
// the explanation the error would be a missing program, qmail-inject's
// "unable to exec qq" or qmail-queue's "qq trouble creating files in
// queue".
func noTree(stderr io.Writer, root string) bool {
	if why := qhome.Uninstalled(root, "sendmail"); why != "" {
		fmt.Fprintf(stderr, "sendmail: fatal: %s\n", why)
		return true
	}
	queue := filepath.Join(root, "queue")
	if _, err := os.Lstat(queue); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	qq := filepath.Join(root, "bin", "qmail-queue")
	fmt.Fprintf(stderr, "sendmail: fatal: %s is no qmail tree (there is no %s): %s\n", root, qq, findsTree)
	return true
}

// isSelf reports whether path is the running program's file.
func isSelf(path string) bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	a, err1 := os.Stat(exe)
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Flush asks a running qmail-send to retry every queued message now
// (SIGALRM, as qmail-send's retry signal). The pid comes from
// sendlock.Locate, as qmailctl's does: only the holder of the lock on
// queue/lock/sendmutex, never a pid a stale or planted file names (run as
// root, a pid written by qmailq into a file it locked itself was
// signalled), and no link there is followed.
func Flush(root string, stderr io.Writer) int {
	pid, err := sendlock.Locate(root)
	switch {
	case errors.Is(err, sendlock.ErrNotRunning):
		fmt.Fprintln(stderr, "sendmail: fatal: qmail-send is not running; nothing flushed (start qmail first)")
		return ExTempFail
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(stderr, "sendmail: fatal: not allowed to read %s; run sendmail -q as root or as qmail-send's user\n",
			filepath.Join(root, sendlock.MutexFile))
		return ExNoPerm
	case err != nil:
		fmt.Fprintf(stderr, "sendmail: fatal: %v\n", err)
		return ExTempFail
	}
	if err := syscall.Kill(pid, syscall.SIGALRM); err != nil {
		if errors.Is(err, syscall.EPERM) {
			fmt.Fprintf(stderr, "sendmail: fatal: not allowed to signal qmail-send (pid %d); run sendmail -q as root or as qmail-send's user\n", pid)
			return ExNoPerm
		}
		fmt.Fprintf(stderr, "sendmail: fatal: unable to signal qmail-send (pid %d): %v\n", pid, err)
		return ExTempFail
	}
	return 0
}
