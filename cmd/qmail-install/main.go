// Command qmail-install creates or repairs a qmail tree.
//
// Privilege contract: run by the administrator, as root (qmail's users,
// groups, owners and modes; missing users and groups are created with
// groupadd/useradd) or as an ordinary user (everything owned by the caller;
// etc/ids says "shared yes"). Reads no fds; writes diagnostics to fd 2.
// As root it works in directories qmail's users own: there it never
// follows a symbolic link, and never changes a file with extra hard links
// through its name (a cache that must change is replaced, a file with
// data left alone and named, exit 111); a link of root's in root's own
// directories (the root, bin/, control/, etc/, users/), which no group or
// others could write when the run began, is followed, its target's owner
// and mode left as they are (qmail-install(8), Links). In bin/ it changes
// hqmail's programs only. What qmail-send holds open in queue/lock is not
// replaced while it runs (the flock on sendmutex is tried first; held,
// the run exits 111), and whatever it leaves that keeps qmail-send from
// starting makes it exit 111. -check follows links as the repair does,
// examines nothing below a directory that is a link it does not follow,
// and names every change the repair would make. A run holds an flock on
// the root directory itself, exclusive for a repair (another run on the
// tree waits for it, and says so), shared for -check.
//
//	qmail-install [-root DIR] [-me NAME] [-uid-base N]
//	qmail-install [-root DIR] -check
//
// -check takes -root only: -me or -uid-base with it is a usage error.
// Exit codes: 0 done (or -check found nothing), 100 usage error, refused
// root (non-empty, not a qmail tree), or -check found deviations or no
// tree (a missing root, not a directory, no etc/ids), 111 temporary
// failure.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hqmail/hqmail/pkg/install"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// checkFlags are the flags -check uses; any other one given with it is
// a usage error (-me and -uid-base only say how a tree is made).
var checkFlags = map[string]bool{"root": true, "check": true}

// run is qmail-install with the arguments args, writing to stderr; it
// returns the exit code.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", qhome.DefaultRoot, "install root")
	me := fs.String("me", "", "control/me when created (default: /etc/mailname or the host name); not with -check")
	base := fs.Int("uid-base", 0, "as root: numeric ids base..base+6 for qmail's users (tests); not with -check")
	check := fs.Bool("check", false, "report deviations of owners, modes and kinds; change nothing (with -root only)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: qmail-install [-root DIR] [-me NAME] [-uid-base N]")
		fmt.Fprintln(stderr, "       qmail-install [-root DIR] -check")
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil || fs.NArg() != 0 {
		if err == nil {
			fs.Usage()
		}
		return 100
	}
	if *check {
		var extra []string
		fs.Visit(func(f *flag.Flag) {
			if !checkFlags[f.Name] {
				extra = append(extra, "-"+f.Name)
			}
		})
		if len(extra) > 0 {
			// A check of a tree made with other flags than those would
			// report nothing about them: refused, not ignored.
			fmt.Fprintf(stderr, "qmail-install: usage: -check takes no %s (it only reads the tree at -root)\n", strings.Join(extra, " or "))
			fs.Usage()
			return 100
		}
		// -check only reads, under a shared lock on the root directory:
		// it waits for a repair at work (saying so) rather than report
		// its half-done tree, and a repair waits for it (treelock.go).
		defer install.LockForCheck(*root, stderr)()
		dev, err := install.Check(*root)
		if err != nil {
			// no tree (install.ErrNoTree): 100; else 111
			fmt.Fprintf(stderr, "qmail-install: fatal: %v\n", err)
			return qerr.ExitCode(err)
		}
		for _, d := range dev {
			fmt.Fprintf(stderr, "qmail-install: warning: %s\n", d)
		}
		for _, n := range install.HomeNotes(*root) {
			fmt.Fprintf(stderr, "qmail-install: note: %s\n", n)
		}
		for _, n := range install.QueueNotOnDisk(*root) {
			fmt.Fprintf(stderr, "qmail-install: note: %s\n", n)
		}
		if n := install.ReplacedUnderSend(*root); n != "" {
			fmt.Fprintf(stderr, "qmail-install: note: %s\n", n)
		}
		if len(dev) > 0 {
			return 100
		}
		return 0
	}
	err = install.Install(install.Options{Root: *root, Me: *me, UIDBase: *base, Log: stderr})
	return report(err, install.ReplacedUnderSend(*root), stderr)
}

// report says how an install ended and returns the exit code. running is
// ReplacedUnderSend's note (the daemons that still run replaced programs:
// restart them). A run that stopped part way (install.PartWay: a full
// disk while the programs were copied, each replaced by a rename one
// after the other) may have left old and new programs side by side in
// bin/, and nothing else says so: the advice to run it again is given.
// No failed run gives the restart advice. A refusal, or a failure before
// the programs, left bin/ as it was: its fatal line says all.
func report(err error, running string, stderr io.Writer) int {
	var left *install.LeftAlone
	switch {
	case err == nil:
		if running != "" {
			fmt.Fprintf(stderr, "qmail-install: note: %s\n", running)
		}
	case errors.As(err, &left):
		// The rest of the tree was repaired, every program included:
		// each problem is a warning, and the run still fails so that a
		// script notices.
		if running != "" {
			fmt.Fprintf(stderr, "qmail-install: note: %s\n", running)
		}
		for _, p := range left.Problems {
			fmt.Fprintf(stderr, "qmail-install: warning: %s\n", p)
		}
		fmt.Fprintf(stderr, "qmail-install: fatal: %d thing(s) above left alone, the rest of the tree repaired; run qmail-install again once they are dealt with\n", len(left.Problems))
		return 111
	default:
		fmt.Fprintf(stderr, "qmail-install: fatal: %v\n", err)
		if pw := (*install.PartWay)(nil); errors.As(err, &pw) {
			fmt.Fprintf(stderr, "qmail-install: the run stopped part way: bin/ may hold old and new programs side by side; run qmail-install again once the cause is dealt with, and restart hqmail only then\n")
		}
	}
	return qerr.ExitCode(err)
}
