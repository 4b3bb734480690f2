// Package getpw is qmail-getpw (spec/delivery.md §3): it maps a local part
// to the account that receives its mail, through the passwd file, for
// qmail-lspawn when users/cdb has no entry.
//
// For p from len(local) down to 1, where p is the end or local[p] is '-':
// the candidate lower(local[:p]) (shorter than 32 bytes) is taken if its
// passwd entry exists, its uid is not 0 and its home directory exists and
// is owned by that uid. dash is "-" and ext the text after that '-' (both
// empty for p = end). No candidate: the alias account, dash "-", ext =
// local. Output: "name\0uid\0gid\0home\0dash\0ext\0".
package getpw

import (
	"errors"
	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
	"github.com/hqmail/hqmail/pkg/unixid"
	"os"
	"os/user"
	"strings"
	"syscall"
)

// Exit codes (qmail's qlx.h values).
const (
	ExitUsage   = 100
	ExitNFS     = 115 // temporary error looking at a home directory
	ExitNoAlias = 116 // no alias account
	ExitSys     = 118 // passwd could not be read
)

// Entry is the part of a passwd entry qmail-getpw uses.
type Entry struct {
	Name     string
	UID, GID int
	Home     string
}

// Passwd looks up accounts. Lookup returns (nil, nil) for no such user.
type Passwd interface {
	Lookup(name string) (*Entry, error)
}

// HomeOwner returns the owner of a home directory.
type HomeOwner func(path string) (uid int, err error)

// Alias is the account that receives mail for local parts with no account.
const Alias = "alias"

// MaxName: candidates of this length or longer are not looked up.
const MaxName = 32

// Find returns qmail-getpw's output for local, or a non-zero exit code.
func Find(pw Passwd, owner HomeOwner, alias, local string) ([]byte, int) {
	for p := len(local); p >= 1; p-- {
		if p < len(local) && local[p] != '-' {
			continue
		}
		name := address.LowerASCII(local[:p])
		if len(name) >= MaxName {
			continue
		}
		e, err := pw.Lookup(name)
		if err != nil {
			return nil, ExitSys
		}
		if e == nil || e.UID == 0 {
			continue
		}
		uid, err := owner(e.Home)
		if err != nil {
			if temporary(err) {
				return nil, ExitNFS
			}
			continue
		}
		if uid != e.UID {
			continue
		}
		dash, ext := "", ""
		if p < len(local) {
			dash, ext = "-", local[p+1:]
		}
		return format(e, dash, ext), 0
	}
	e, err := pw.Lookup(alias)
	if err != nil {
		return nil, ExitSys
	}
	if e == nil {
		return nil, ExitNoAlias
	}
	return format(e, "-", local), 0
}

func format(e *Entry, dash, ext string) []byte {
	f := []string{e.Name, unixid.Format(e.UID), unixid.Format(e.GID), e.Home, dash, ext}
	return []byte(strings.Join(f, "\x00") + "\x00")
}

// temporary is qmail's error_temp for stat errors: anything but a missing
// file, a permission problem or a bad path component.
func temporary(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return true
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR, syscall.EACCES, syscall.EPERM,
		syscall.ELOOP, syscall.ENAMETOOLONG:
		return false
	}
	return true
}

// System is the passwd file of the host (os/user; without cgo it reads
// /etc/passwd).
type System struct{}

// Lookup implements Passwd.
func (System) Lookup(name string) (*Entry, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unk user.UnknownUserError
		if errors.As(err, &unk) {
			return nil, nil
		}
		return nil, err
	}
	uid, ok1 := unixid.Parse(u.Uid)
	gid, ok2 := unixid.Parse(u.Gid)
	if !ok1 || !ok2 {
		return nil, nil
	}
	return &Entry{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

// StatOwner is the HomeOwner of the real file system.
func StatOwner(path string) (int, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return int(st.Uid), nil
}

// Main is qmail-getpw: args are the arguments after the program name.
// It writes the result to out and returns the exit code.
//
// The alias account's home is always aliasHome (QMAILHOME/alias of the
// tree being served), whatever passwd says: one alias account serves every
// tree on the host (/var/qmail, a test root, a make-run root).
func Main(args []string, out *os.File, aliasHome string) int {
	if len(args) < 1 {
		return ExitUsage
	}
	b, code := Find(aliasAt{System{}, aliasHome}, StatOwner, Alias, args[0])
	if code != 0 {
		return code
	}
	if _, err := out.Write(b); err != nil {
		return 111
	}
	return 0
}

// aliasAt overrides the home of the alias account.
type aliasAt struct {
	Passwd
	home string
}

func (a aliasAt) Lookup(name string) (*Entry, error) {
	e, err := a.Passwd.Lookup(name)
	if err == nil && e != nil && name == Alias && a.home != "" {
		c := *e
		c.Home = a.home
		return &c, nil
	}
	return e, err
}

// KeepHello is the first packet of qmail-getpw -k.
const KeepHello = "qmail-getpw -k 1\x00"

// MaxKeepRequest is the longest request packet qmail-getpw -k reads (a
// local part and its NUL; addresses are far shorter). qmail-lspawn runs a
// lookup of a longer one one-shot.
const MaxKeepRequest = 4096

// Serve is qmail-getpw -k (qmail-getpw(8)): started by qmail-lspawn as
// qmailp with a SOCK_SEQPACKET socket on sock (fd 0), it answers each
// request packet (the local part, NUL-ended) with one packet: the exit
// status of a one-shot run as one byte, then its output. The passwd file
// is read afresh for every request. A request cut short (longer than
// MaxKeepRequest) is answered ExitSys, a temporary failure: the lookup
// was never made, so it must not bounce.
func Serve(sock int, aliasHome string) int {
	keep.Serve(sock, KeepHello, MaxKeepRequest, func(r *keep.Request) []byte {
		if r.Cut {
			return []byte{ExitSys}
		}
		if len(r.Args) < 1 {
			return []byte{ExitUsage}
		}
		b, code := Find(aliasAt{System{}, aliasHome}, StatOwner, Alias, r.Args[0])
		if code != 0 {
			return []byte{byte(code)}
		}
		return append([]byte{0}, b...)
	})
	return 0
}
