package install

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Check compares the tree at root with the table (and every program in
// bin/ with its program entry) and returns one line per deviation, like
// qmail's instcheck. The ids come from root/etc/ids.
func Check(root string) ([]string, error) {
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		return nil, err
	}
	own := &owners{ids: ids, shared: ids.Shared}
	homeUser := ""
	if ids.Shared {
		own.uid, own.gid = ids.Alias.UID, ids.Alias.GID
		if u, err := user.LookupId(strconv.Itoa(ids.Alias.UID)); err == nil {
			homeUser = u.Username
		} else if ents, err := os.ReadDir(filepath.Join(root, "home")); err == nil && len(ents) == 1 {
			homeUser = ents[0].Name()
		}
	}
	entries := Tree(homeUser)
	if ents, err := os.ReadDir(filepath.Join(root, "bin")); err == nil {
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				entries = append(entries, ProgEntry(e.Name()))
			}
		}
	}
	fixed := []Entry{
		{Path: qhome.IDsFile, Kind: File, Owner: "root", Group: "qmail", Mode: 0o644},
		{Path: "users/assign", Kind: File, Owner: "root", Group: "qmail", Mode: 0o644},
		{Path: "users/cdb", Kind: File, Owner: "root", Group: "qmail", Mode: 0o644},
	}
	entries = append(entries, fixed...)
	var out []string
	for _, e := range entries {
		out = append(out, checkEntry(root, e, own)...)
	}
	if !ids.Shared {
		out = append(out, unreadableControls(root)...)
	}
	out = append(out, dotlessDomain(root)...)
	return out, nil
}

// dotlessDomain names a defaultdomain equal to a dotless control/me, as
// qmail-install wrote it before it used localdomain: mail to "root"
// becomes root@vm.vm, which is no local domain, and is sent away.
func dotlessDomain(root string) []string {
	first := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, "control", name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	me := first("me")
	dom := first("defaultdomain") // missing or empty: me, as qmail-inject reads it
	if me == "" || !Dotless(me) || (dom != me && dom != "") {
		return nil
	}
	return []string{fmt.Sprintf("control/defaultdomain: %s, as the dotless control/me: mail to a bare user goes to user@%s.%s, "+
		"which is not local; write localdomain to defaultdomain and plusdomain and add %s.localdomain and localhost.localdomain "+
		"to locals and rcpthosts (as a new install does)", me, me, me, me)}
}

// privateControls are the control files that must not be readable by
// everyone: smarthost passwords (qmailr's, mode 0600) and the STARTTLS key
// (qmaild's).
var privateControls = map[string]bool{"smtpauth": true, "servercert.pem": true}

// unreadableControls names the control files of a tree with qmail's users
// that others may not read: qmail-send, qmail-smtpd and qmail-remote run
// as different users and read them (one unreadable by qmails stops
// qmail-send at its next start). qmail-install never changes a control
// file, so this is only reported.
func unreadableControls(root string) []string {
	dir := filepath.Join(root, "control")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if privateControls[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if st.Mode().Perm()&0o004 == 0 {
			out = append(out, fmt.Sprintf("control/%s: mode %04o, not readable by qmail's users (chmod 644)", e.Name(), st.Mode().Perm()))
		}
	}
	return out
}

func checkEntry(root string, e Entry, own *owners) []string {
	p := filepath.Join(root, e.Path)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return []string{fmt.Sprintf("%s: %v", e.Path, err)}
	}
	var out []string
	fi, err := os.Lstat(p)
	if err == nil {
		want := e.Kind
		if want == Prog {
			want = File
		}
		if k := kindOf(fi); k != want {
			out = append(out, fmt.Sprintf("%s: is a %s, want a %s", e.Path, k, e.Kind))
		}
	}
	uid, gid, err := own.resolve(e)
	if err != nil {
		return append(out, err.Error())
	}
	if int(st.Uid) != uid {
		out = append(out, fmt.Sprintf("%s: owner %d, want %d (%s)", e.Path, st.Uid, uid, e.Owner))
	}
	if int(st.Gid) != gid {
		out = append(out, fmt.Sprintf("%s: group %d, want %d (%s)", e.Path, st.Gid, gid, e.Group))
	}
	if m := st.Mode & 0o7777; m != e.Mode {
		out = append(out, fmt.Sprintf("%s: mode %04o, want %04o", e.Path, m, e.Mode))
	}
	if e.Path == "queue/lock/tcpto" && st.Size != TcptoSize {
		out = append(out, fmt.Sprintf("%s: size %d, want %d", e.Path, st.Size, TcptoSize))
	}
	return out
}
