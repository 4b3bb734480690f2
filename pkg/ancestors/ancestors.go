// Package ancestors checks the directories above a tree. qmail's
// daemons chdir into the tree once and use names relative to it, so renaming a directory above the tree
// does not redirect them. hqmail's programs use absolute names under the
// root (qmail-lspawn runs ROOT/bin/qmail-local as each recipient, say):
// a user who can rename a directory above the tree (or one of the
// symbolic links the root's name goes through) can put a tree of their
// own in its place, and root then runs their bin/qmail-local as alias or
// any recipient (QA rnewcomer: root's make run in a checkout an ordinary
// user owns). qmail-install and qmail-start (as root) refuse such a tree
// with Check.
package ancestors

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/unixid"
)

// Error is Check' refusal: Dir is the first directory
// above the tree Root (or symbolic link on the way to it) that another
// user can change, Owner its owner (unixid.Who) and Why what lets them.
type Error struct {
	Root  string
	Dir   string
	Link  bool // Dir is a symbolic link the root's name goes through
	Owner string
	Mode  os.FileMode
	Why   string // "belongs to atk (uid 1001)", "is writable by group qmail (gid 64010)", ...
	euid  int
}

func (e *Error) Error() string {
	what := "directory"
	harm := "rename the tree's directory (or one above it) and put one of their own in its place"
	if e.Link {
		what = "symbolic link"
		harm = "point it at a tree of their own"
	}
	only, them := "only root", "not root's"
	if e.euid != 0 {
		only, them = "only root or you", "neither root's nor yours"
	}
	// The advice: the direct fix of Dir first, then a tree elsewhere.
	move := fmt.Sprintf("or put the tree under directories %s can change, e.g. /var/qmail (make run: RUNROOT=/var/tmp/NAME)", only)
	if strings.HasPrefix(e.Why, "belongs to ") {
		fix := "make it root's (chown root " + e.Dir + ") if its owner needs it no more"
		switch {
		case e.Link:
			fix = "make it root's (chown -h root " + e.Dir + ") once you have checked where it points"
		case e.euid != 0:
			fix = "have root make it root's or yours (chown) if its owner needs it no more"
		}
		return fmt.Sprintf("%s %s above the tree %s %s, %s: they can %s, whose programs (bin/qmail-local, run for every local delivery) would then be run; %s, %s",
			what, e.Dir, e.Root, e.Why, them, harm, fix, move)
	}
	return fmt.Sprintf("%s %s above the tree %s (owner %s, mode %04o) %s: any of them can %s, whose programs (bin/qmail-local, run for every local delivery) would then be run; "+
		"make it writable by its owner only (chmod %s %s), %s",
		what, e.Dir, e.Root, e.Owner, modeBits(e.Mode), e.Why, harm, unwritable(e.Mode), e.Dir, move)
}

// unwritable is the chmod argument that takes write permission from the
// group and others of a directory of mode m, as far as they have it.
func unwritable(m os.FileMode) string {
	switch p := m.Perm(); {
	case p&0o022 == 0o022:
		return "go-w"
	case p&0o020 != 0:
		return "g-w"
	}
	return "o-w"
}

// modeBits is the mode as chmod takes it, set-id and sticky bits included.
func modeBits(m os.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// maxLinks bounds the symbolic links followed, as the kernel's ELOOP.
const maxLinks = 40

// Check checks the directories above the tree root (an absolute
// name; the root itself is not judged here: qmail-install has its own
// check for it), looked up as the kernel does: every directory a name on
// the way is looked up in (so every directory above the root's real
// path, and those holding the symbolic links the name goes through) must
// belong to root or to the effective user, and no group or others may
// write it unless it is root's and has the sticky bit (/tmp, /var/tmp);
// every symbolic link followed must belong to root or to the effective
// user (in a sticky directory its owner can replace it). It returns an
// *Error for the first one that fails. A part of the name that
// does not exist ends the walk without error (qmail-install makes it,
// the installing user's); an error looking a name up is returned as it
// is. Access control lists are not examined.
func Check(root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("tree root %s is not an absolute name", root)
	}
	root = filepath.Clean(root)
	c := ancestorCheck{root: root, euid: os.Geteuid(), checked: map[string]bool{}}
	return c.walk()
}

type ancestorCheck struct {
	root    string
	euid    int
	checked map[string]bool
}

func (c *ancestorCheck) walk() error {
	cur := "/" // the real directory reached so far: no link in it
	rest := splitName(c.root)
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case ".":
			continue
		case "..":
			// Looked up in cur, which was reached through every
			// directory above it, all judged already.
			cur = filepath.Dir(cur)
			continue
		}
		if err := c.dir(cur); err != nil {
			return err
		}
		next := filepath.Join(cur, name)
		st, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // made by the installing user from here on
		}
		if err != nil {
			return fmt.Errorf("unable to check %s above the tree %s: %w", next, c.root, err)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			if !st.IsDir() && len(rest) > 0 {
				return nil // not a directory: the caller's own lookup fails
			}
			cur = next
			continue
		}
		if uid := ownerOf(st); uid != 0 && uid != c.euid {
			return &Error{Root: c.root, Dir: next, Link: true, Owner: unixid.Who(uid), Mode: st.Mode(),
				Why: "belongs to " + unixid.Who(uid), euid: c.euid}
		}
		if links++; links > maxLinks {
			return fmt.Errorf("unable to check the tree %s: %w", c.root, syscall.ELOOP)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return fmt.Errorf("unable to check %s above the tree %s: %w", next, c.root, err)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitName(target), rest...)
	}
	return nil
}

// dir judges one directory a name is looked up in (a real name, no link
// in it), once.
func (c *ancestorCheck) dir(d string) error {
	if c.checked[d] {
		return nil
	}
	st, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("unable to check %s above the tree %s: %w", d, c.root, err)
	}
	uid := ownerOf(st)
	e := &Error{Root: c.root, Dir: d, Owner: unixid.Who(uid), Mode: st.Mode(), euid: c.euid}
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch perm := st.Mode().Perm(); {
	case uid != 0 && uid != c.euid:
		e.Why = "belongs to " + e.Owner
	case perm&0o022 == 0:
		c.checked[d] = true
		return nil
	case uid == 0 && st.Mode()&os.ModeSticky != 0:
		// /tmp, /var/tmp: others add names, but cannot rename or
		// remove those of root's or the user's, which is all the
		// walk goes through (each judged in turn).
		c.checked[d] = true
		return nil
	case perm&0o002 == 0 && sys != nil && privateGroup(int(sys.Gid), uid):
		// Writable by the owner's own group and no one else's: the
		// checkout of a user whose umask is 002 (USERGROUPS_ENAB),
		// 0775 user:user.
		c.checked[d] = true
		return nil
	case perm&0o002 != 0:
		e.Why = "is writable by others"
		if st.Mode()&os.ModeSticky != 0 {
			e.Why += " (the sticky bit helps only in a directory of root's)"
		}
	default:
		gid := -1
		if sys != nil {
			gid = int(sys.Gid)
		}
		e.Why = "is writable by group " + groupOf(gid)
	}
	return e
}

func splitName(name string) []string {
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

func ownerOf(st os.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}

// groupOf names gid: "qmail (gid 64010)", or "gid 64010".
func groupOf(gid int) string {
	if g, err := user.LookupGroupId(unixid.Format(gid)); err == nil {
		return fmt.Sprintf("%s (gid %d)", g.Name, gid)
	}
	return fmt.Sprintf("gid %d", gid)
}

// The user and group databases privateGroup reads; variables so that
// tests can give their own.
var (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// privateGroup reports whether the group gid is the user uid's own: in
// groupFile, with no member but that user, and in passwdFile the primary
// group of no other user (a user private group, as Debian's adduser makes
// them). A group the files do not list (another name service) is not.
func privateGroup(gid, uid int) bool {
	pw, err := os.ReadFile(passwdFile)
	if err != nil {
		return false
	}
	name := ""
	for _, line := range strings.Split(string(pw), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		u, uok := unixid.Parse(f[2])
		g, gok := unixid.Parse(f[3])
		if !uok || !gok {
			continue
		}
		if u == uid && name == "" {
			name = f[0]
		}
		if g == gid && u != uid {
			return false
		}
	}
	if name == "" {
		return false
	}
	gr, err := os.ReadFile(groupFile)
	if err != nil {
		return false
	}
	found := false
	for _, line := range strings.Split(string(gr), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		if g, ok := unixid.Parse(f[2]); !ok || g != gid {
			continue
		}
		found = true
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" && m != name {
				return false
			}
		}
	}
	return found
}
