// Package privsep is the only place in hqmail that chooses the uid, gid and
// groups a process runs under. It never changes the credentials of the
// running Go process (setuid inside a multi-threaded Go program is unsafe:
// the other threads would keep the old ids for a while); it only arranges
// for a child started with os/exec to get new ones between fork and exec,
// through SysProcAttr.Credential.
//
// Only qmail-start (which starts the daemons as qmails, qmailq, qmailr,
// qmaill) and qmail-lspawn (which starts qmail-getpw as qmailp and
// qmail-local as the recipient) import this package; test/arch_test.go keeps
// it so.
package privsep

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"syscall"

	"github.com/hqmail/hqmail/pkg/unixid"
)

// Cred is a set of ids for a child process: uid, primary gid and the
// complete supplementary group list (an empty list drops every group).
type Cred struct {
	UID, GID int
	Groups   []int
}

func (c *Cred) String() string {
	if c == nil {
		return "(caller)"
	}
	return fmt.Sprintf("uid %d gid %d groups %v", c.UID, c.GID, c.Groups)
}

// ErrRoot is returned when a child would be started as uid 0 where that is
// not allowed.
var ErrRoot = errors.New("privsep: refusing to run as uid 0")

// Apply arranges for cmd to run under c. A nil c leaves cmd running as the
// caller. Apply must be called before cmd.Start.
func Apply(cmd *exec.Cmd, c *Cred) {
	if c == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	groups := make([]uint32, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = uint32(g)
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{
		Uid:    uint32(c.UID),
		Gid:    uint32(c.GID),
		Groups: groups,
	}
}

// ApplyNonRoot is Apply that refuses uid 0.
func ApplyNonRoot(cmd *exec.Cmd, c *Cred) error {
	if c != nil && c.UID == 0 {
		return ErrRoot
	}
	Apply(cmd, c)
	return nil
}

// CanSwitch reports whether this process may start children under other
// ids: it runs as root and the tree is not a shared (non-root) one.
func CanSwitch(shared bool) bool {
	return !shared && os.Geteuid() == 0
}

// Exactly returns the credential uid/gid with gid as the only group, as
// qmail's prot_gid + prot_uid set them.
func Exactly(uid, gid int) *Cred {
	return &Cred{UID: uid, GID: gid, Groups: []int{gid}}
}

// UserGroups returns the supplementary groups /etc/group gives the user
// with the given uid, or nil when the user is not in the passwd file.
func UserGroups(uid int) []int {
	u, err := user.LookupId(unixid.Format(uid))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []int
	for _, s := range ids {
		if g, ok := unixid.Parse(s); ok {
			out = append(out, g)
		}
	}
	return out
}

// WithGroup returns groups plus g, without duplicates, g first.
func WithGroup(g int, groups []int) []int {
	out := []int{g}
	for _, x := range groups {
		dup := false
		for _, y := range out {
			if x == y {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}
