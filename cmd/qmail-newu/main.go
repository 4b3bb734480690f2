// Command qmail-newu compiles ROOT/users/assign into ROOT/users/cdb, the
// database qmail-lspawn reads (spec/delivery.md §2; format in
// qmail-users(5)).
//
// Privilege contract:
//   - runs as: the admin, normally root (installed 0700); needs write
//     access to ROOT/users only. Takes no arguments but -h (help, exit
//     0; any other argument: usage on stderr, exit 100, nothing done);
//     reads no fds.
//   - cwd ROOT, umask 033: writes users/cdb.tmp, fsyncs it, renames it to
//     users/cdb (mode 0644) and fsyncs users/; on any error the old
//     users/cdb is left as it was. The new file keeps the old one's owner
//     and group; one made where there was none is given, when running as
//     root, qmail-install's root:qmail (the ids of etc/ids).
//   - fd 2: "qmail-newu: fatal: ..." on failure.
//   - exit: 0 done; 100 usage; 111 on any failure, bad format included.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/usage"
	"github.com/hqmail/hqmail/pkg/users"
)

const help = `usage: qmail-newu
  Compiles users/assign into users/cdb, the database qmail-lspawn reads
  (format in qmail-users(5)). Run it after every change of users/assign.
  Takes no arguments but -h.
  Tree: %s (the parent of the bin/ it runs from).
  Exit 0 done; 100 usage; 111 on any failure, bad format included
  (users/cdb is then left as it was). See qmail-newu(8).
`

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "qmail-newu: fatal: "+format+"\n", a...)
	os.Exit(111)
}

// readAssign reads users/assign, refusing a FIFO, a device or a directory
// put there (qhome.OpenRegular): a plain open of a FIFO would wait for a
// writer for ever. /dev/null reads as empty (bad format: no final dot).
// Read whole, with no cap on its size: the list grows with the users.
func readAssign() ([]byte, error) {
	f, err := qhome.OpenRegular("users/assign", os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// ownNew gives a users/cdb made where there was none the owner and group
// qmail-install gives it (pkg/install: root, group qmail; in a shared tree
// the installing user and group), from the tree's etc/ids, instead of the
// root:root of the process that made it. Only root calls it: anyone else
// can give a file away to nobody and keeps it. Trouble is a warning: the
// database is made and readable (mode 0644) all the same.
func ownNew(root string) {
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "qmail-newu: warning: users/cdb is left owned by root:root: unable to read %s: %v\n",
			qhome.IDsFile, qerr.Bare(err))
		return
	}
	uid := 0
	if ids.Shared {
		uid = ids.Alias.UID // every name is the installer
	}
	if err := os.Chown("users/cdb", uid, ids.Qmail); err != nil {
		fmt.Fprintf(os.Stderr, "qmail-newu: warning: unable to give users/cdb to %d:%d: %v\n", uid, ids.Qmail, qerr.Bare(err))
	}
}

func main() {
	root := qhome.Root()
	usage.NoArgs(os.Args[1:], fmt.Sprintf(help, root))
	syscall.Umask(0o033)
	if err := os.Chdir(root); err != nil {
		fatal("unable to chdir to %s: %v", root, qerr.Bare(err))
	}
	assign, err := readAssign()
	if err != nil {
		fatal("unable to read users/assign: %v", qerr.Bare(err))
	}
	recs, err := users.Compile(assign)
	if errors.Is(err, users.ErrFormat) {
		fatal("%v", err) // "bad format in users/assign", and where when known
	} else if err != nil {
		fatal("unable to compile users/assign: %v", err)
	}
	var old syscall.Stat_t
	hadOld := syscall.Stat("users/cdb", &old) == nil
	if err := cdb.WriteFile("users/cdb", 0o644, recs); err != nil {
		fatal("unable to write users/cdb: %v", err)
	}
	if hadOld {
		// Keep the owner and group the file had (qmail-install makes it
		// root:qmail; root's own group would fail qmail-install -check).
		// Only root may give it away; others keep their own.
		_ = os.Chown("users/cdb", int(old.Uid), int(old.Gid))
	} else if os.Geteuid() == 0 {
		ownNew(root)
	}
	if d, err := os.Open("users"); err == nil {
		d.Sync()
		d.Close()
	}
}
