package install

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/privsep"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// Access bits, as in a mode's rwx triple.
const (
	accRead   = 4
	accWrite  = 2
	accSearch = 1
)

// runner is one of qmail's users with the groups its programs run with,
// for qmail-install -check to tell whether it can open a path. The check
// reads owners and mode bits (ACLs are not consulted) and changes no
// credentials.
type runner struct {
	name   string // qmail's user name ("qmails")
	prog   string // what runs as it ("qmail-send")
	uid    int
	groups []int
}

func (r runner) String() string { return r.name + " (" + r.prog + ")" }

// runners returns qmail's users with the groups their programs get: the
// daemons qmail-start starts have exactly group qmail (qmail-rspawn also
// the groups /etc/group gives qmailr), the logger and qmail-getpw nofiles,
// deliveries to alias its primary group (qmail-lspawn), and qmail-smtpd,
// started by tcpserver, inetd or systemd as qmaild, its primary group and
// those of /etc/group. qmail-queue is set-uid qmailq and keeps its
// caller's groups; qmail-queued runs as qmailq with group qmail.
func runners(ids *qhome.IDs) []runner {
	with := func(uid int, groups ...int) []int { return append(groups, privsep.UserGroups(uid)...) }
	return []runner{
		{"alias", "fastforward", ids.Alias.UID, []int{ids.Alias.GID}},
		{"qmaild", "qmail-smtpd", ids.Qmaild.UID, with(ids.Qmaild.UID, ids.Qmaild.GID)},
		{"qmaill", "the logger", ids.Qmaill.UID, []int{ids.Nofiles}},
		{"qmailp", "qmail-getpw", ids.Qmailp.UID, []int{ids.Nofiles}},
		{"qmailq", "qmail-queued", ids.Qmailq.UID, []int{ids.Qmail}},
		{"qmailr", "qmail-remote", ids.Qmailr.UID, with(ids.Qmailr.UID, ids.Qmail)},
		{"qmails", "qmail-send", ids.Qmails.UID, []int{ids.Qmail}},
	}
}

// runnerNamed returns the runner of user name.
func runnerNamed(rs []runner, name string) runner {
	for _, r := range rs {
		if r.name == name {
			return r
		}
	}
	panic("install: no runner " + name)
}

// denial says why r cannot open a path.
type denial struct {
	path  string // the directory not searchable, or the file itself
	dir   bool   // path is a directory (on the way)
	st    syscall.Stat_t
	class byte // the mode class that applied to r: 'u', 'g' or 'o'
}

// denied returns why r cannot open path for the access bits want, or nil
// when it can. It walks path as the kernel does, following symbolic
// links, and checks every directory it passes for search permission,
// then the file for want. An error is one of walking (a missing path).
func (r runner) denied(path string, want uint32) (*denial, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	rest := strings.Split(abs, "/")
	cur := "/"
	for links := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		if name == "" || name == "." {
			continue
		}
		if d, err := r.lacks(cur, accSearch); d != nil || err != nil {
			return d, err
		}
		if name == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return nil, err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return r.lacks(cur, want)
}

// lacks returns a denial when the mode bits of p (no symbolic link) do
// not give r the access bits want.
func (r runner) lacks(p string, want uint32) (*denial, error) {
	d := &denial{path: p}
	if err := syscall.Stat(p, &d.st); err != nil {
		return nil, err
	}
	d.dir = d.st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	m := d.st.Mode & 0o777
	switch {
	case int(d.st.Uid) == r.uid:
		d.class, m = 'u', m>>6
	case slices.Contains(r.groups, int(d.st.Gid)):
		d.class, m = 'g', m>>3
	default:
		d.class = 'o'
	}
	if m&want == want {
		return nil, nil
	}
	return d, nil
}

// describe says what blocks: "mode 0640, owner root, group qmail" for the
// file, "directory /d (mode 0700, owner root, group root) is not
// searchable" for a directory on the way.
func (d *denial) describe(own *owners) string {
	attrs := fmt.Sprintf("mode %04o, owner %s, group %s", d.st.Mode&0o7777, own.userName(int(d.st.Uid)), own.groupName(int(d.st.Gid)))
	if !d.dir {
		return attrs
	}
	return fmt.Sprintf("directory %s (%s) is not searchable", d.path, attrs)
}

// userName names uid: qmail's user of that id, else the passwd name, else
// the number.
func (o *owners) userName(uid int) string {
	if uid == 0 {
		return "root"
	}
	if !o.shared {
		for _, n := range qhome.UserNames {
			if o.ids.UserByName(n).UID == uid {
				return n
			}
		}
	}
	if u, err := user.LookupId(unixid.Format(uid)); err == nil {
		return u.Username
	}
	return unixid.Format(uid)
}

// groupName names gid as userName names a uid.
func (o *owners) groupName(gid int) string {
	switch {
	case gid == 0:
		return "root"
	case !o.shared && gid == o.ids.Qmail:
		return "qmail"
	case !o.shared && gid == o.ids.Nofiles:
		return "nofiles"
	}
	if g, err := user.LookupGroupId(unixid.Format(gid)); err == nil {
		return g.Name
	}
	return unixid.Format(gid)
}

// whoCannot opens path for want as each of rs, and returns one line per
// distinct obstacle: "REL: not VERB by R1, R2: OBSTACLE (FIX)", where FIX
// is fix for the file itself and the chmod of the mode classes that
// apply to them for a directory on the way. blocked (may be nil) lists
// runners already reported as unable to reach the tree; they are left
// out.
func whoCannot(rel, path string, want uint32, verb string, rs []runner, blocked map[string]bool, own *owners, fix string) []string {
	type obstacle struct {
		d       *denial
		who     []string
		classes string
	}
	var order []string
	seen := map[string]*obstacle{}
	for _, r := range rs {
		if blocked[r.name] {
			continue
		}
		d, err := r.denied(path, want)
		if err != nil || d == nil {
			continue
		}
		why := d.describe(own)
		o := seen[why]
		if o == nil {
			o = &obstacle{d: d}
			seen[why] = o
			order = append(order, why)
		}
		o.who = append(o.who, r.String())
		if !strings.ContainsRune(o.classes, rune(d.class)) {
			o.classes += string(d.class)
		}
	}
	var out []string
	for _, why := range order {
		o := seen[why]
		hint := fix
		if o.d.dir {
			cl := []byte(o.classes)
			slices.SortFunc(cl, func(a, b byte) int { return strings.IndexByte("ugo", a) - strings.IndexByte("ugo", b) })
			hint = fmt.Sprintf("chmod %s+x %s", cl, o.d.path)
		}
		if hint != "" {
			why += " (" + hint + ")"
		}
		out = append(out, fmt.Sprintf("%s: not %s by %s: %s", rel, verb, strings.Join(o.who, ", "), why))
	}
	return out
}
