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
// and names every change the repair would make.
//
//	qmail-install [-root DIR] [-me NAME] [-uid-base N] [-check]
//
// Exit codes: 0 done (or -check found nothing), 100 usage error, refused
// root (non-empty, not a qmail tree), or -check found deviations or no
// tree (a missing root, not a directory, no etc/ids), 111 temporary
// failure.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/install"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func main() {
	fs := flag.NewFlagSet("qmail-install", flag.ContinueOnError)
	root := fs.String("root", qhome.DefaultRoot, "install root")
	me := fs.String("me", "", "control/me when created (default: /etc/mailname or the host name)")
	base := fs.Int("uid-base", 0, "as root: numeric ids base..base+6 for qmail's users (tests)")
	check := fs.Bool("check", false, "report deviations of owners, modes and kinds; change nothing")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qmail-install [-root DIR] [-me NAME] [-uid-base N] [-check]")
		fs.PrintDefaults()
	}
	err := fs.Parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil || fs.NArg() != 0 {
		if err == nil {
			fs.Usage()
		}
		os.Exit(100)
	}
	if *check {
		dev, err := install.Check(*root)
		if err != nil {
			// no tree (install.ErrNoTree): 100; else 111
			fmt.Fprintf(os.Stderr, "qmail-install: fatal: %v\n", err)
			os.Exit(qerr.ExitCode(err))
		}
		for _, d := range dev {
			fmt.Fprintf(os.Stderr, "qmail-install: warning: %s\n", d)
		}
		for _, n := range install.HomeNotes(*root) {
			fmt.Fprintf(os.Stderr, "qmail-install: note: %s\n", n)
		}
		if len(dev) > 0 {
			os.Exit(100)
		}
		os.Exit(0)
	}
	err = install.Install(install.Options{Root: *root, Me: *me, UIDBase: *base, Log: os.Stderr})
	var left *install.LeftAlone
	switch {
	case errors.As(err, &left):
		// The rest of the tree was repaired: each problem is a warning,
		// and the run still fails so that a script notices.
		for _, p := range left.Problems {
			fmt.Fprintf(os.Stderr, "qmail-install: warning: %s\n", p)
		}
		fmt.Fprintf(os.Stderr, "qmail-install: fatal: %d thing(s) above left alone, the rest of the tree repaired; run qmail-install again once they are dealt with\n", len(left.Problems))
		os.Exit(111)
	case err != nil:
		fmt.Fprintf(os.Stderr, "qmail-install: fatal: %v\n", err)
	}
	os.Exit(qerr.ExitCode(err))
}
