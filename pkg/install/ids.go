package install

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// userGroup is the primary group qmail gives each of its users.
var userGroup = map[string]string{
	"alias": "nofiles", "qmaild": "nofiles", "qmaill": "nofiles", "qmailp": "nofiles",
	"qmailq": "qmail", "qmailr": "qmail", "qmails": "qmail",
}

// systemIDs looks qmail's users and groups up in the system databases and
// creates the missing ones as system accounts without a login shell: homes
// are root/alias for alias and root for the others.
func systemIDs(root string, log io.Writer) (*qhome.IDs, error) {
	ids := &qhome.IDs{}
	for _, g := range qhome.GroupNames {
		gr, err := user.LookupGroup(g)
		if err != nil {
			if err := run(log, "groupadd", "-r", g); err != nil {
				return nil, err
			}
			if gr, err = user.LookupGroup(g); err != nil {
				return nil, fmt.Errorf("group %s: %v", g, err)
			}
		}
		gid, _ := unixid.Parse(gr.Gid)
		if g == "qmail" {
			ids.Qmail = gid
		} else {
			ids.Nofiles = gid
		}
	}
	shell := "/usr/sbin/nologin"
	if _, err := os.Stat(shell); err != nil {
		shell = "/bin/false"
	}
	for _, n := range qhome.UserNames {
		home := userHome(root, n)
		u, err := user.Lookup(n)
		if err != nil {
			if err := run(log, "useradd", "-r", "-M", "-g", userGroup[n], "-d", home, "-s", shell, n); err != nil {
				return nil, err
			}
			if u, err = user.Lookup(n); err != nil {
				return nil, fmt.Errorf("user %s: %v", n, err)
			}
		} else if _, err := os.Stat(u.HomeDir); os.IsNotExist(err) && u.HomeDir != home && !UIDBusy(u.Uid) {
			// The account was made for a tree that is gone (an earlier
			// install, make run or a test as root): give it this one, so
			// that ~alias names this tree's alias directory. usermod
			// refuses while the account runs a process (another tree's
			// daemons); the home is not needed for delivery, so it is
			// left then, and qmail-install -check notes it.
			if err := run(log, "usermod", "-d", home, n); err != nil && log != nil {
				fmt.Fprintf(log, "qmail-install: note: user %s keeps home %s: %v\n", n, u.HomeDir, err)
			}
		}
		uid, _ := unixid.Parse(u.Uid)
		gid, _ := unixid.Parse(u.Gid)
		if uid == 0 {
			return nil, fmt.Errorf("user %s has uid 0: refusing", n)
		}
		*ids.UserByName(n) = qhome.User{UID: uid, GID: gid}
	}
	return ids, nil
}

// UIDBusy reports whether a process runs with the real uid uid (usermod
// refuses to change such an account).
func UIDBusy(uid string) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		if r, _, ok := unixid.StatusUIDs(b); ok && unixid.Format(r) == uid {
			return true
		}
	}
	return false
}

// userHome is the home qmail gives user n of the tree at root: root/alias
// for alias, root for the others.
func userHome(root, n string) string {
	if n == "alias" {
		return filepath.Join(root, "alias")
	}
	return root
}

// HomeNotes names qmail's users whose passwd home is not the tree at
// root's (another tree was installed first; each user has one home).
// Nothing depends on those homes (the programs find the tree from their
// own path), but ~alias in the documentation means the passwd entry's.
// Trees of numeric test ids or of one user (shared) give none.
func HomeNotes(root string) []string {
	ids, err := qhome.LoadIDs(root)
	if err != nil || ids.Shared {
		return nil
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range qhome.UserNames {
		u, err := user.Lookup(n)
		if err != nil || u.Uid != unixid.Format(ids.UserByName(n).UID) {
			continue
		}
		if want := userHome(abs, n); filepath.Clean(u.HomeDir) != want {
			out = append(out, fmt.Sprintf("user %s has home %s, not this tree's %s (usermod -d %s %s)", n, u.HomeDir, want, want, n))
		}
	}
	return out
}

func run(log io.Writer, name string, args ...string) error {
	if log != nil {
		fmt.Fprintf(log, "qmail-install: running %s %v\n", name, args)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}

// The user database, as os/user reads it (without cgo, as the programs
// are built: /etc/passwd and /etc/group); variables for tests.
var (
	lookupUser    = user.Lookup
	lookupUserID  = user.LookupId
	lookupGroup   = user.LookupGroup
	lookupGroupID = user.LookupGroupId
)

// idUses says, for each of qmail's users, what runs as it and what of the
// tree it owns: what another account given its uid takes part in.
var idUses = map[string]struct{ runs, owns string }{
	"alias":  {"deliveries to alias (fastforward, alias/Maildir) run", "alias/ and the mail delivered there"},
	"qmaild": {"qmail-smtpd runs", ""},
	"qmaill": {"the logger runs", ""},
	"qmailp": {"qmail-getpw runs", ""},
	"qmailq": {"qmail-queue, qmail-queued and qmail-clean run", "all queued mail (queue/mess)"},
	"qmailr": {"qmail-rspawn and qmail-remote run", "queue/lock/tcpto"},
	"qmails": {"qmail-send runs", "the envelopes of queued mail (queue/info, local, remote) and the bounces"},
}

// groupUses says, for each of qmail's groups, what another group given its
// gid (%[1]s) takes part in.
var groupUses = map[string]string{
	"qmail":   "qmail's daemons run with group %[1]s and can read and change its files, and the members of %[1]s can read all queued mail (queue/mess is mode 0750, group qmail)",
	"nofiles": "the logger and qmail-getpw run with group %[1]s and can read and change its files",
}

const renumber = "renumber the tree: qmail-install(8), Renumbering"

// copiedByName is the case in which usermod is the wrong fix: files that
// took this machine's numbers on the way (tar and rsync map owners by
// name unless told not to) belong to the account already, and only
// etc/ids is behind; renumbering then finds no file to change (QA move:
// the advice said the files had the tree's numbers, and usermod made it
// worse).
const copiedByName = "but a tree copied by name (tar without --numeric-owner, rsync without --numeric-ids) has given its files the account's numbers: then renumber it, and no file needs a new owner"

// IDConflicts compares the users and groups ids records for a tree with
// the user database, one line per disagreement: a qmail name the database
// gives another uid or gid than ids (the tree's programs and files use a
// number that is not that account's), and a recorded uid or gid the
// database gives to another name (that account is the one qmail's
// programs run as: it can read and change what they own, queued mail
// among it). qmail-install keeps the ids a tree recorded, since its files
// carry them; a tree restored onto another machine keeps its old machine's
// numbers, which this one may give to other accounts.
//
// A shared tree (every name the one user who installed it) is not
// compared, nor are the names of a tree of -uid-base ids (numbers meant to
// have no password entries); names and numbers the database does not know
// are not reported.
func IDConflicts(ids *qhome.IDs) []string {
	if ids.Shared {
		return nil
	}
	numeric := *ids == *BaseIDs(ids.Alias.UID)
	taken := func(uid int, name string) string {
		if u, err := lookupUserID(unixid.Format(uid)); err == nil && u.Username != name {
			return u.Username
		}
		return ""
	}
	takenGroup := func(gid int, name string) string {
		if g, err := lookupGroupID(unixid.Format(gid)); err == nil && g.Name != name {
			return g.Name
		}
		return ""
	}
	var out []string
	for _, n := range qhome.UserNames {
		rec := ids.UserByName(n)
		other := taken(rec.UID, n)
		if u, err := lookupUser(n); err == nil && !numeric {
			fix := fmt.Sprintf("usermod -u %d %s, or %s", rec.UID, n, renumber)
			if other != "" {
				fix = renumber
			}
			if u.Uid != unixid.Format(rec.UID) {
				out = append(out, fmt.Sprintf("etc/ids: %s is uid %d, but the user database gives %s uid %s: "+
					"the tree's programs run as uid %d, not as the account %s (%s; %s)",
					n, rec.UID, n, u.Uid, rec.UID, n, fix, copiedByName))
			}
			if u.Gid != unixid.Format(rec.GID) {
				fix := fmt.Sprintf("usermod -g %d %s, or %s", rec.GID, n, renumber)
				out = append(out, fmt.Sprintf("etc/ids: %s has gid %d, but the user database gives %s gid %s: "+
					"the tree uses gid %d for %s, not the account's group (%s)", n, rec.GID, n, u.Gid, rec.GID, n, fix))
			}
		}
		if other != "" {
			use := idUses[n]
			what := fmt.Sprintf("%s as %s", use.runs, other)
			if use.owns != "" {
				what += fmt.Sprintf(", and %s can read and change what %s owns, %s among it", other, n, use.owns)
			} else {
				what += ", and each can signal and trace the other's processes"
			}
			out = append(out, fmt.Sprintf("etc/ids: %s is uid %d, which the user database gives to %s: %s (give %s a uid of its own: %s)",
				n, rec.UID, other, what, n, renumber))
		}
		// A primary group apart from the tree's groups (only alias and
		// qmaild run with theirs).
		if g := userGroup[n]; rec.GID != *ids.GroupByName(g) {
			if other := takenGroup(rec.GID, g); other != "" {
				out = append(out, fmt.Sprintf("etc/ids: %s has gid %d, which the user database gives to group %s: "+
					"what runs as %s can read and change the files of group %s (give %s the gid of group %s: %s)",
					n, rec.GID, other, n, other, n, g, renumber))
			}
		}
	}
	for _, g := range qhome.GroupNames {
		rec := *ids.GroupByName(g)
		other := takenGroup(rec, g)
		if gr, err := lookupGroup(g); err == nil && !numeric && gr.Gid != unixid.Format(rec) {
			fix := fmt.Sprintf("groupmod -g %d %s, or %s", rec, g, renumber)
			if other != "" {
				fix = renumber
			}
			out = append(out, fmt.Sprintf("etc/ids: group %s is gid %d, but the user database gives group %s gid %s: "+
				"the tree's programs run with gid %d, not as the group %s (%s; %s)",
				g, rec, g, gr.Gid, rec, g, fix, copiedByName))
		}
		if other != "" {
			out = append(out, fmt.Sprintf("etc/ids: group %s is gid %d, which the user database gives to group %s: %s (give group %s a gid of its own: %s)",
				g, rec, other, fmt.Sprintf(groupUses[g], other), g, renumber))
		}
	}
	return out
}
