package forward

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Exit codes of a qmail-local program: 0 go on with the next .qmail line,
// 99 delivered and stop, 100 permanent, 111 temporary.
const (
	exitContinue = 0
	exitStop     = 99
)

// Postmaster names are delivered to the alias user's own mailbox (the next
// line of ~alias/.qmail-default) when the aliases file does not name them.
var postmasterNames = map[string]bool{"root": true, "postmaster": true, "mailer-daemon": true}

func fail(w io.Writer, err error) int {
	text := err.Error()
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	io.WriteString(w, text)
	return qerr.ExitCode(err)
}

// warnRefused prints a warning for each target left out of an :include:
// file (a program or file target of a file not to be trusted with them,
// a target with a syntax error). qmail-local passes a program's output
// into the delivery report, so each reaches qmail-send's log.
func warnRefused(w io.Writer, prog string, p *Plan) {
	for _, r := range p.Refused {
		fmt.Fprintf(w, "%s: warning: %s\n", prog, r)
	}
}

// dbErr says what is wrong with a database a lookup failed in.
func dbErr(err error) string {
	if errors.Is(err, cdb.ErrFormat) {
		// A record or table past its end.
		return "not a cdb file, or truncated (run newaliases)"
	}
	return qerr.Str(err)
}

// FastforwardMain is fastforward(8): deliver mail for a local part found in
// root/etc/aliases.cdb. It runs from ~alias/.qmail-default:
//
//	|QMAILHOME/bin/fastforward
//	./Maildir/
//
// The local part is $EXT (the alias user's extension), else $LOCAL.
func FastforwardMain(root string, args []string, stdin *os.File, stdout io.Writer) int {
	db := filepath.Join(root, aliases.DBFile)
	if len(args) == 2 && args[0] == "-d" {
		db = args[1]
	} else if len(args) != 0 {
		fmt.Fprintln(stdout, "usage: fastforward [-d aliases.cdb] (run from a .qmail file)")
		return 100
	}
	name := os.Getenv("EXT")
	if name == "" {
		name = os.Getenv("LOCAL")
	}
	// Only ASCII letters fold, as qmail folds a local part (aliases.Lookup
	// folds the same way; the postmaster names below are ASCII).
	name = address.LowerASCII(name)
	env := EnvFromOS(root)

	var targets []string
	found := false
	var r *cdb.File
	f, err := cdb.Open(db)
	switch {
	case err == nil:
		r = f
		defer f.Close()
		targets, found, err = aliases.Lookup(r.Reader, name)
		if err != nil {
			return fail(stdout, qerr.Wrap(err, false, fmt.Sprintf("Unable to read %s: %s. (#4.3.0)", db, dbErr(err))))
		}
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, cdb.ErrFormat):
		// cdb.Open reads the 2048-byte header only: the file is shorter.
		return fail(stdout, qerr.Wrap(err, false, fmt.Sprintf("Unable to open %s: not a cdb file: too short (empty or truncated; run newaliases). (#4.3.0)", db)))
	default:
		return fail(stdout, qerr.Wrap(err, false, fmt.Sprintf("Unable to open %s: %s. (#4.3.0)", db, qerr.Str(err))))
	}
	if !found {
		if postmasterNames[name] {
			return exitContinue
		}
		return fail(stdout, qerr.Perm("Sorry, no mailbox here by that name. (#5.1.1)"))
	}
	// Errors of a list go to its owner, as sendmail does with owner-NAME.
	if env.Sender != "" && env.Sender != "#@[]" && r != nil {
		if _, ok, err := aliases.Lookup(r.Reader, "owner-"+name); err == nil && ok {
			env.Sender = "owner-" + name + "@" + env.Host
		}
	}
	// The alias user is not a person: "\name" and "name" forward.
	env.User = ""
	plan, err := Expand(targets, &env)
	if err != nil {
		return fail(stdout, err)
	}
	warnRefused(stdout, "fastforward", plan)
	msg, err := Seekable(stdin)
	if err != nil {
		return fail(stdout, err)
	}
	pid, err := Deliver(plan, msg, &env, stdout)
	if err != nil {
		return fail(stdout, err)
	}
	if pid != 0 {
		fmt.Fprintf(stdout, "fastforward: %s: forwarded to %d address(es), qp %d\n", name, len(plan.Forwards), pid)
	}
	return exitStop
}

// DotForwardMain is dot-forward(8): deliver as the user's ~/.forward says.
// It runs from a .qmail file or the default delivery instructions:
//
//	|QMAILHOME/bin/dot-forward .forward
//	./Maildir/
//
// Without the file it exits 0 so that the next line delivers. With it, it
// delivers and exits 99, or 0 when the file names the user with "\user"
// (keep a copy here too).
//
// Any other call prints the usage on stdout and exits 100, -h and --help
// included, as fastforward does: in a .qmail file exit 0 means "go on with
// the next line", so a line "|dot-forward -h" must bounce the message with
// the usage rather than pass it on as if no .forward existed.
func DotForwardMain(root string, args []string, stdin *os.File, stdout io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stdout, "usage: dot-forward file (run from a .qmail file) (#5.3.5)")
		return 100
	}
	path := args[0]
	// Opened without blocking, and only a regular file read (or
	// /dev/null, which reads as empty): a FIFO put there would hold
	// this delivery, and the local delivery slot, until a writer came.
	f, err := qhome.OpenRegular(path, os.O_RDONLY)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return exitContinue
		case errors.Is(err, qhome.ErrNotRegular), errors.Is(err, syscall.EISDIR):
			return fail(stdout, qerr.Temp("Uh-oh: %s is not a regular file. (#4.7.0)", path))
		}
		return fail(stdout, qerr.Wrap(err, false, fmt.Sprintf("Unable to open %s: %s. (#4.3.0)", path, qerr.Str(err))))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(stdout, qerr.Wrap(err, false, fmt.Sprintf("Unable to stat %s. (#4.3.0)", path)))
	}
	if home, err := os.Stat("."); err == nil && home.Mode().Perm()&0002 != 0 {
		return fail(stdout, qerr.Temp("Uh-oh: home directory is writable. (#4.7.0)"))
	}
	if st.Mode().IsRegular() && st.Mode().Perm()&0002 != 0 {
		return fail(stdout, qerr.Temp("Uh-oh: %s is writable by others. (#4.7.0)", path))
	}
	b, err := qhome.ReadCapped(f) // a sparse file of gigabytes is refused, not read
	if errors.Is(err, qhome.ErrTooLarge) {
		return fail(stdout, qerr.Temp("Uh-oh: %s is larger than 64 MB. (#4.3.0)", path))
	}
	if err != nil {
		return fail(stdout, qerr.Wrap(err, false, fmt.Sprintf("Unable to read %s. (#4.3.0)", path)))
	}
	targets, err := parseFile(path, string(b))
	if err != nil {
		return fail(stdout, err)
	}
	if len(targets) == 0 {
		return exitContinue
	}
	env := EnvFromOS(root)
	plan, err := Expand(targets, &env)
	if err != nil {
		return fail(stdout, err)
	}
	warnRefused(stdout, "dot-forward", plan)
	msg, err := Seekable(stdin)
	if err != nil {
		return fail(stdout, err)
	}
	if _, err := Deliver(plan, msg, &env, stdout); err != nil {
		return fail(stdout, err)
	}
	if plan.Here {
		return exitContinue
	}
	return exitStop
}
