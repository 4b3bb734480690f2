// Package install creates and checks a qmail tree (qmail-install): the
// directories, files, FIFO and programs with their owners and modes, the
// default control files, users/assign + users/cdb and etc/ids.
//
// The tree is data: Tree returns one table of (path, kind, owner, group,
// mode) that Install applies and Check compares against the disk, as
// qmail's hier.c serves both install and instcheck.
package install

import (
	"fmt"
	"strconv"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Kind is the type of a tree entry.
type Kind byte

// Entry kinds.
const (
	Dir  Kind = 'd'
	File Kind = 'f' // created with Init if absent; contents never replaced
	Fifo Kind = 'p'
	Prog Kind = 'x' // a program in bin/, copied from the install source
)

func (k Kind) String() string {
	switch k {
	case Dir:
		return "directory"
	case File, Prog:
		return "regular file"
	case Fifo:
		return "fifo"
	}
	return "?"
}

// Entry is one path of the tree.
type Entry struct {
	Path  string // relative to the root; "." is the root itself
	Kind  Kind
	Owner string // "root" or a qmail user name (qhome.UserNames)
	Group string // "root", "qmail" or "nofiles"
	Mode  uint32 // permission bits including setuid/setgid (e.g. 04711)
	Init  []byte // initial contents of a File created by Install
}

// Program modes of spec/README.md: set-id qmail-queue, root-only programs,
// daemons; every other program is a user tool (0755).
var progModes = map[string]uint32{
	"qmail-queue":  04711,
	"qmail-lspawn": 0o700,
	"qmail-start":  0o700,
	"qmail-newu":   0o700,
	"qmail-newmrh": 0o700,
	"qmail-tcpok":  0o700,
	// root daemon of this project (holds and releases on link changes)
	"qmail-linkwatch": 0o700,
	"qmail-send":      0o711,
	"qmail-queued":    0o711,
	"qmail-clean":     0o711,
	"qmail-rspawn":    0o711,
	"qmail-remote":    0o711,
	"qmail-local":     0o711,
	"qmail-getpw":     0o711,
	"qmail-pw2u":      0o711,
	"qmail-tcpto":     0o711,
	"splogger":        0o711,
}

// Programs are hqmail's programs (one per directory of cmd/): what
// qmail-install copies into bin/, and the only files there it changes
// or -check compares. Anything else in bin/ (an administrator's own
// script, or a shared directory bin/ is root's link to) is left as it is.
var Programs = []string{
	"bouncesaying", "condredirect", "dot-forward", "except", "fastforward",
	"forward", "maildirmake", "newaliases", "preline", "qmail-clean",
	"qmail-getpw", "qmail-inject", "qmail-install", "qmail-linkwatch",
	"qmail-local", "qmail-lspawn", "qmail-newmrh", "qmail-newu", "qmail-pw2u",
	"qmail-qread", "qmail-qstat", "qmail-queue", "qmail-queued", "qmail-remote",
	"qmail-rspawn", "qmail-send", "qmail-showctl", "qmail-smtpd", "qmail-start",
	"qmail-tcpok", "qmail-tcpto", "qmailctl", "sendmail", "splogger",
}

// ProgEntry returns the table entry of the program bin/name.
func ProgEntry(name string) Entry {
	mode, ok := progModes[name]
	if !ok {
		mode = 0o755
	}
	owner := "root"
	if name == "qmail-queue" {
		owner = "qmailq"
	}
	return Entry{Path: "bin/" + name, Kind: Prog, Owner: owner, Group: "qmail", Mode: mode}
}

// aliasDefault is ~alias/.qmail-default: every local part that is not an
// account is looked up in the aliases database (etc/aliases.cdb, built by
// newaliases) by fastforward; root, postmaster and mailer-daemon without an
// alias, and nothing else, fall through to the alias user's Maildir. The
// program path is relative to the alias home (qmail-local runs programs
// there), so the tree can live anywhere.
var aliasDefault = []byte("|../bin/fastforward\n./Maildir/\n")

// TcptoSize is the size of queue/lock/tcpto (delivery.md §7).
const TcptoSize = 1024

// Tree returns the table of a tree, programs excluded. homeUser, when not
// empty, adds home/<homeUser>/Maildir (trees installed by an ordinary user).
func Tree(homeUser string) []Entry {
	d := func(p, owner, group string, mode uint32) Entry {
		return Entry{Path: p, Kind: Dir, Owner: owner, Group: group, Mode: mode}
	}
	f := func(p, owner string, mode uint32, init []byte) Entry {
		return Entry{Path: p, Kind: File, Owner: owner, Group: "qmail", Mode: mode, Init: init}
	}
	t := []Entry{
		d(".", "root", "qmail", 0o755),
		d("bin", "root", "qmail", 0o755),
		d("control", "root", "qmail", 0o755),
		d("etc", "root", "qmail", 0o755),
		d("users", "root", "qmail", 0o755),
		d("alias", "alias", "qmail", 02755),
		d("alias/Maildir", "alias", "qmail", 0o700),
		d("alias/Maildir/cur", "alias", "qmail", 0o700),
		d("alias/Maildir/new", "alias", "qmail", 0o700),
		d("alias/Maildir/tmp", "alias", "qmail", 0o700),
		f("alias/.qmail-default", "alias", 0o644, aliasDefault),
		d("queue", "qmailq", "qmail", 0o750),
		// qmail-queued's socket (public/qmail-queue, made by the service).
		d("public", "qmailq", "qmail", 0o755),
		d("queue/pid", "qmailq", "qmail", 0o700),
		d("queue/intd", "qmailq", "qmail", 0o700),
		d("queue/todo", "qmailq", "qmail", 0o750),
		d("queue/bounce", "qmails", "qmail", 0o700),
	}
	split := func(name, owner string, mode uint32) {
		t = append(t, d("queue/"+name, owner, "qmail", mode))
		for i := 0; i < qhome.Split; i++ {
			t = append(t, d("queue/"+name+"/"+strconv.Itoa(i), owner, "qmail", mode))
		}
	}
	split("mess", "qmailq", 0o750)
	split("info", "qmails", 0o700)
	split("local", "qmails", 0o700)
	split("remote", "qmails", 0o700)
	t = append(t,
		d("queue/lock", "qmailq", "qmail", 0o750),
		f("queue/lock/sendmutex", "qmails", 0o600, nil),
		f("queue/lock/sendstatus", "qmails", 0o644, nil),
		// Group-writable: qmail-send (group qmail) clears it when remote
		// delivery is released (qmail has 0644).
		f("queue/lock/tcpto", "qmailr", 0o664, make([]byte, TcptoSize)),
		Entry{Path: "queue/lock/trigger", Kind: Fifo, Owner: "qmails", Group: "qmail", Mode: 0o622},
		// qmailctl's per-message requests to a running qmail-send (root or
		// qmails write; qmail-send reads), see pkg/sched/control.go.
		Entry{Path: "queue/lock/sendctl", Kind: Fifo, Owner: "qmails", Group: "qmail", Mode: 0o600},
	)
	if homeUser != "" {
		h := "home/" + homeUser
		t = append(t,
			d("home", "root", "qmail", 0o755),
			d(h, "root", "qmail", 0o755),
			d(h+"/Maildir", "root", "qmail", 0o700),
			d(h+"/Maildir/cur", "root", "qmail", 0o700),
			d(h+"/Maildir/new", "root", "qmail", 0o700),
			d(h+"/Maildir/tmp", "root", "qmail", 0o700),
		)
	}
	return t
}

// owners resolves owner and group names to numeric ids.
type owners struct {
	ids *qhome.IDs
	// in a shared tree every name is the installing user
	shared   bool
	uid, gid int
}

func (o *owners) resolve(e Entry) (uid, gid int, err error) {
	if o.shared {
		return o.uid, o.gid, nil
	}
	switch e.Owner {
	case "root":
		uid = 0
	case "alias":
		uid = o.ids.Alias.UID
	case "qmaild":
		uid = o.ids.Qmaild.UID
	case "qmaill":
		uid = o.ids.Qmaill.UID
	case "qmailp":
		uid = o.ids.Qmailp.UID
	case "qmailq":
		uid = o.ids.Qmailq.UID
	case "qmailr":
		uid = o.ids.Qmailr.UID
	case "qmails":
		uid = o.ids.Qmails.UID
	default:
		return 0, 0, fmt.Errorf("%s: unknown owner %q", e.Path, e.Owner)
	}
	switch e.Group {
	case "root":
		gid = 0
	case "qmail":
		gid = o.ids.Qmail
	case "nofiles":
		gid = o.ids.Nofiles
	default:
		return 0, 0, fmt.Errorf("%s: unknown group %q", e.Path, e.Group)
	}
	return uid, gid, nil
}
