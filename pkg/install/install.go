package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/users"
)

// Options of one install.
type Options struct {
	Root string // install root (absolute after Install)
	Me   string // control/me if it must be created; "" = the host name
	// UIDBase, when > 0 and running as root, gives qmail's users numeric
	// ids without passwd entries: alias=UIDBase ... qmails=UIDBase+6,
	// group qmail=UIDBase, nofiles=UIDBase+1 (for tests).
	UIDBase int
	// Source is the directory whose programs are copied into bin/; ""
	// means the directory of the running executable.
	Source string
	// Log receives one line per action worth telling (may be nil).
	Log io.Writer
}

// ErrRefused is returned for a non-empty directory that is not a qmail tree.
var ErrRefused = errors.New("refused")

// Install creates or repairs the tree at opt.Root. Errors are qerr errors:
// permanent for a refused root or bad options, temporary otherwise.
func Install(opt Options) error {
	root, err := filepath.Abs(opt.Root)
	if err != nil {
		return qerr.Wrap(err, false, err.Error())
	}
	opt.Root = root
	if strings.ContainsAny(root, ":\n\x00") {
		return qerr.Perm("root %s contains ':' or a newline, which users/assign cannot hold", root)
	}
	if err := checkRoot(root); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return qerr.Wrap(err, false, fmt.Sprintf("unable to create %s: %v", root, err))
	}
	syscall.Umask(0o22)

	ids, homeUser, err := resolveIDs(opt)
	if err != nil {
		return err
	}
	// The ids are kept, as the tree's files carry them (a restored tree
	// keeps its old machine's numbers): where the user database gives
	// them or qmail's names otherwise, the admin is told, as -check does.
	if opt.Log != nil {
		for _, l := range IDConflicts(ids) {
			fmt.Fprintf(opt.Log, "qmail-install: warning: %s\n", l)
		}
	}
	own := &owners{ids: ids, shared: ids.Shared, uid: os.Getuid(), gid: os.Getgid()}

	// Directories, files and the FIFO of the table, in order (parents first).
	for _, e := range Tree(homeUser) {
		if err := apply(root, e, own); err != nil {
			return qerr.Wrap(err, false, err.Error())
		}
	}
	if err := repairSendFiles(root, own); err != nil {
		return qerr.Wrap(err, false, err.Error())
	}
	if err := copyPrograms(opt, own); err != nil {
		return qerr.Wrap(err, false, err.Error())
	}
	if err := writeIDs(root, ids, own); err != nil {
		return qerr.Wrap(err, false, err.Error())
	}
	if err := writeControl(root, opt.Me, own, opt.Log); err != nil {
		return qerr.Wrap(err, false, err.Error())
	}
	if err := writeUsers(root, ids, homeUser, opt.UIDBase > 0 && !ids.Shared, own); err != nil {
		return qerr.Wrap(err, false, err.Error())
	}
	return nil
}

// IsTree reports whether dir looks like a qmail tree: it has queue/,
// control/ or etc/ids.
func IsTree(dir string) bool {
	for _, p := range []string{"queue", "control", qhome.IDsFile} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			return true
		}
	}
	return false
}

func checkRoot(root string) error {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return qerr.Wrap(err, false, fmt.Sprintf("unable to read %s: %v", root, err))
	}
	if len(ents) == 0 || IsTree(root) {
		return nil
	}
	return qerr.Wrap(ErrRefused, true, fmt.Sprintf("%s is not empty and is not a qmail tree (no queue/, control/ or etc/ids): refusing to install there", root))
}

// apply creates e if missing and sets its owner and mode.
func apply(root string, e Entry, own *owners) error {
	p := filepath.Join(root, e.Path)
	uid, gid, err := own.resolve(e)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if exists && kindOf(fi) != e.Kind {
		// A wrong kind is repaired only for the FIFO (a plain file left
		// where the trigger belongs); anything else needs a human.
		if e.Kind == Fifo && fi.Mode().IsRegular() {
			if err := os.Remove(p); err != nil {
				return err
			}
			exists = false
		} else {
			return fmt.Errorf("%s: is a %s, want a %s", p, kindName(fi), e.Kind)
		}
	}
	if !exists {
		switch e.Kind {
		case Dir:
			err = os.Mkdir(p, 0o700)
		case File:
			err = writeNew(p, e.Init)
		case Fifo:
			err = syscall.Mkfifo(p, 0o600)
		}
		if err != nil {
			return fmt.Errorf("unable to create %s: %v", p, err)
		}
	}
	if err := setOwnerMode(p, uid, gid, e.Mode); err != nil {
		return err
	}
	if e.Path == "queue/lock/tcpto" {
		return fixTcptoSize(p)
	}
	return nil
}

// fixTcptoSize gives queue/lock/tcpto its size, under the lock its users
// take: the bytes past it are never read, and the missing ones read as
// empty entries. Through a descriptor opened without following a link, as
// setOwnerMode.
func fixTcptoSize(p string) error {
	fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil
	}
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size == TcptoSize {
		return err
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("unable to lock %s: %v", p, err)
	}
	if err := syscall.Ftruncate(fd, TcptoSize); err != nil {
		return fmt.Errorf("unable to resize %s: %v", p, err)
	}
	return nil
}

// repairSendFiles gives each of sendFiles that exists to qmails with mode
// 0600, as qmail-send makes them. They are not in the table, since they
// exist only once there is something to record; anything but a regular
// file is left alone (-check names it).
func repairSendFiles(root string, own *owners) error {
	for _, f := range sendFiles {
		e := Entry{Path: "queue/bounce/" + f.name, Kind: File, Owner: "qmails", Group: "qmail", Mode: 0o600}
		p := filepath.Join(root, e.Path)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		uid, gid, err := own.resolve(e)
		if err != nil {
			return err
		}
		if err := setOwnerMode(p, uid, gid, e.Mode); err != nil {
			return err
		}
	}
	return nil
}

// setOwnerMode gives p its owner and mode through a descriptor opened
// without following a symbolic link: many of the tree's directories belong
// to qmail's users, and a name checked then changed by path could be
// swapped for a link to any file between the two (a chmod of root's
// repair run would then follow it). A symbolic link is left as it is, its
// target not ours to change.
func setOwnerMode(p string, uid, gid int, mode uint32) error {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil
	}
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := syscall.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("unable to chown %s: %v", p, err)
		}
	}
	// chown clears set-id bits: chmod after it, always.
	if err := syscall.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("unable to chmod %s: %v", p, err)
	}
	return nil
}

func writeNew(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func kindOf(fi fs.FileInfo) Kind {
	switch m := fi.Mode(); {
	case m.IsDir():
		return Dir
	case m&fs.ModeNamedPipe != 0:
		return Fifo
	case m.IsRegular():
		return File
	}
	return '?'
}

// copyPrograms copies every executable regular file of the source directory
// into root/bin (unless it is root/bin itself) and sets program modes on
// everything in root/bin.
func copyPrograms(opt Options, own *owners) error {
	src := opt.Source
	if src == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		src = filepath.Dir(exe)
	}
	bin := filepath.Join(opt.Root, "bin")
	same := false
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(bin); err == nil && os.SameFile(a, b) {
			same = true
		}
	}
	if !same {
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil || fi.Mode().Perm()&0o111 == 0 {
				continue
			}
			if err := copyProgram(filepath.Join(src, name), bin, name, own); err != nil {
				return err
			}
		}
	}
	ents, err := os.ReadDir(bin)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		pe := ProgEntry(e.Name())
		uid, gid, err := own.resolve(pe)
		if err != nil {
			return err
		}
		if err := setOwnerMode(filepath.Join(bin, e.Name()), uid, gid, pe.Mode); err != nil {
			return err
		}
	}
	return nil
}

// copyProgram writes bin/.name.new and renames it over bin/name, so that a
// running program is replaced, not overwritten.
func copyProgram(src, bin, name string, own *owners) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(bin, "."+name+".new")
	os.Remove(tmp)
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("copy %s: %v", src, err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	pe := ProgEntry(name)
	uid, gid, err := own.resolve(pe)
	if err == nil {
		err = setOwnerMode(tmp, uid, gid, pe.Mode)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(bin, name))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// writeIDs writes etc/ids (root:qmail 0644) atomically.
func writeIDs(root string, ids *qhome.IDs, own *owners) error {
	p := filepath.Join(root, qhome.IDsFile)
	tmp := p + ".tmp"
	os.Remove(tmp)
	if err := writeNew(tmp, []byte(ids.Format())); err != nil {
		return err
	}
	uid, gid, err := own.resolve(Entry{Path: qhome.IDsFile, Owner: "root", Group: "qmail"})
	if err == nil {
		err = setOwnerMode(tmp, uid, gid, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	return err
}

// DefaultControl returns the control files qmail-install creates when
// absent, derived from me: me, defaultdomain and plusdomain (me without its
// first label when me has at least two dots, else me), locals and
// rcpthosts (me and localhost).
//
// A me without a dot ("vm", "localhost") gets defaultdomain and plusdomain
// "localdomain", and NAME.localdomain and localhost.localdomain are local
// too: qmail-inject appends .defaultdomain to a host without a dot, so mail
// to "root" is root@NAME.localdomain, which must stay on the host (with
// defaultdomain NAME it would be root@NAME.NAME, sent away).
func DefaultControl(me string) map[string]string {
	dom := me
	hosts := []string{me, "localhost"}
	switch {
	case Dotless(me):
		dom = "localdomain"
		hosts = append(hosts, me+".localdomain", "localhost.localdomain")
	case strings.HasPrefix(me, "["):
		// An address literal has no parent domain.
	case strings.Count(me, ".") >= 2:
		dom = me[strings.IndexByte(me, '.')+1:]
	}
	var list strings.Builder
	seen := map[string]bool{}
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			list.WriteString(h + "\n")
		}
	}
	return map[string]string{
		"me":            me + "\n",
		"defaultdomain": dom + "\n",
		"plusdomain":    dom + "\n",
		"locals":        list.String(),
		"rcpthosts":     list.String(),
	}
}

// Dotless reports whether a host name has no dot (and is no [literal]).
func Dotless(me string) bool {
	return !strings.Contains(me, ".") && !strings.HasPrefix(me, "[")
}

// mailName finds the name for control/me when -me was not given: an
// existing control/me, else Debian's /etc/mailname (the host's mail name,
// when it has a dot), else the host name.
func mailName(root string) (string, error) {
	first := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	if me := first(filepath.Join(root, "control", "me")); me != "" {
		return me, nil
	}
	if me := first(MailnameFile); me != "" && !Dotless(me) {
		return me, nil
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("unable to find the host name for control/me (use -me NAME): %v", err)
	}
	return h, nil
}

// MailnameFile is Debian's mail name file; a variable for tests.
var MailnameFile = "/etc/mailname"

func writeControl(root, me string, own *owners, log io.Writer) error {
	derived := me == ""
	if derived {
		var err error
		if me, err = mailName(root); err != nil {
			return err
		}
	}
	files := DefaultControl(me)
	if b, err := os.ReadFile(filepath.Join(root, "control", "me")); err == nil && !derived && log != nil {
		if old := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]); old != me {
			fmt.Fprintf(log, "qmail-install: note: control/me exists and says %s; -me %s changes nothing "+
				"(control files are never overwritten: edit control/me, defaultdomain, plusdomain, locals and rcpthosts, then restart qmail)\n", old, me)
		}
	}
	// A dotless name the admin did not choose (-me) deserves a word when
	// the control files are first made.
	if _, err := os.Lstat(filepath.Join(root, "control", "me")); err != nil && derived && Dotless(me) && log != nil {
		fmt.Fprintf(log, "qmail-install: warning: the host name %s has no dot, so local mail is addressed to %s.localdomain "+
			"(made local); for a real mail name give -me host.example.org (make install ME=host.example.org) "+
			"when the control files are first made, or edit control/me, defaultdomain, plusdomain, locals and rcpthosts\n", me, me)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	uid, gid, err := own.resolve(Entry{Path: "control", Owner: "root", Group: "qmail"})
	if err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(root, "control", n)
		if _, err := os.Lstat(p); err == nil {
			continue // never overwrite a control file
		}
		if err := writeNew(p, []byte(files[n])); err != nil {
			return fmt.Errorf("unable to create %s: %v", p, err)
		}
		if err := setOwnerMode(p, uid, gid, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Assign returns the users/assign qmail-install writes. A tree of an
// ordinary user (homeUser set) routes homeUser and homeUser-ext to
// home/<homeUser> and every other local part to the alias home as
// .qmail-<local>. A test tree with numeric ids (catchAll) routes every local
// part to the alias home. A real root tree gets an empty list: qmail-getpw
// and passwd decide.
func Assign(root string, ids *qhome.IDs, homeUser string, catchAll bool) string {
	var b strings.Builder
	alias := filepath.Join(root, "alias")
	if homeUser != "" {
		u := ids.Alias
		home := filepath.Join(root, "home", homeUser)
		fmt.Fprintf(&b, "=%s:%s:%d:%d:%s:::\n", homeUser, homeUser, u.UID, u.GID, home)
		fmt.Fprintf(&b, "+%s-:%s:%d:%d:%s:-::\n", homeUser, homeUser, u.UID, u.GID, home)
		fmt.Fprintf(&b, "+:%s:%d:%d:%s:-::\n", homeUser, u.UID, u.GID, alias)
	} else if catchAll {
		u := ids.Alias
		fmt.Fprintf(&b, "+:alias:%d:%d:%s:-::\n", u.UID, u.GID, alias)
	}
	b.WriteString(".\n")
	return b.String()
}

func writeUsers(root string, ids *qhome.IDs, homeUser string, catchAll bool, own *owners) error {
	p := filepath.Join(root, "users", "assign")
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		if err := writeNew(p, []byte(Assign(root, ids, homeUser, catchAll))); err != nil {
			return fmt.Errorf("unable to create %s: %v", p, err)
		}
	}
	uid, gid, err := own.resolve(Entry{Path: "users", Owner: "root", Group: "qmail"})
	if err != nil {
		return err
	}
	if err := setOwnerMode(p, uid, gid, 0o644); err != nil {
		return err
	}
	if err := users.Build(root); err != nil {
		return fmt.Errorf("users/assign: %v", err)
	}
	return setOwnerMode(filepath.Join(root, "users", "cdb"), uid, gid, 0o644)
}

// resolveIDs decides the ids of the tree. As an ordinary user: the caller
// everywhere (shared) and homeUser = the caller's login name. As root: the
// -uid-base ids, else those recorded in etc/ids by an earlier install, else
// qmail's named users and groups (created if missing).
func resolveIDs(opt Options) (*qhome.IDs, string, error) {
	if os.Geteuid() != 0 {
		name := strconv.Itoa(os.Getuid())
		if u, err := user.LookupId(name); err == nil {
			name = u.Username
		} else if n := os.Getenv("USER"); n != "" {
			name = n
		}
		if strings.ContainsAny(name, ":/\n") || name == "" || name == "." || name == ".." {
			return nil, "", qerr.Perm("unusable user name %q", name)
		}
		return qhome.SharedIDs(os.Getuid(), os.Getgid()), name, nil
	}
	if opt.UIDBase > 0 {
		return BaseIDs(opt.UIDBase), "", nil
	}
	if ids, err := qhome.LoadIDs(opt.Root); err == nil && !ids.Shared {
		return ids, "", nil
	}
	ids, err := systemIDs(opt.Root, opt.Log)
	if err != nil {
		return nil, "", qerr.Wrap(err, false, err.Error())
	}
	return ids, "", nil
}

// BaseIDs are numeric ids without passwd entries, for test trees.
func BaseIDs(base int) *qhome.IDs {
	q, nf := base, base+1
	return &qhome.IDs{
		Alias:  qhome.User{UID: base, GID: nf},
		Qmaild: qhome.User{UID: base + 1, GID: nf},
		Qmaill: qhome.User{UID: base + 2, GID: nf},
		Qmailp: qhome.User{UID: base + 3, GID: nf},
		Qmailq: qhome.User{UID: base + 4, GID: q},
		Qmailr: qhome.User{UID: base + 5, GID: q},
		Qmails: qhome.User{UID: base + 6, GID: q},
		Qmail:  q, Nofiles: nf,
	}
}
