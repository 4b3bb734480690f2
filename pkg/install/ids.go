package install

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hqmail/hqmail/pkg/qhome"
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
		gid, _ := strconv.Atoi(gr.Gid)
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
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
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
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
				if f[1] == uid {
					return true
				}
				break
			}
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
		if err != nil || u.Uid != strconv.Itoa(ids.UserByName(n).UID) {
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
