package install

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"

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
		u, err := user.Lookup(n)
		if err != nil {
			home := root
			if n == "alias" {
				home = filepath.Join(root, "alias")
			}
			if err := run(log, "useradd", "-r", "-M", "-g", userGroup[n], "-d", home, "-s", shell, n); err != nil {
				return nil, err
			}
			if u, err = user.Lookup(n); err != nil {
				return nil, fmt.Errorf("user %s: %v", n, err)
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
