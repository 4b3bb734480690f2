package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/nofile"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
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

// fdsNeeded is how many descriptors a run needs: the walker keeps every
// directory of the tree open until the run ends (walk.go), and a few more
// are open meanwhile (the file at hand, the runtime's own).
var fdsNeeded = func() int64 {
	n := int64(0)
	for _, e := range Tree("") {
		if e.Kind == Dir {
			n++
		}
	}
	return n + 32
}()

// enoughDescriptors refuses a run whose descriptor limit cannot hold the
// tree's directories: it would stop part way ("too many open files"),
// leaving a tree without etc/ids, which then looks like one qmail itself
// installed, or the Go runtime would die for want of one.
func enoughDescriptors() error {
	if soft, hard := nofile.Raise(fdsNeeded); soft > 0 && soft < fdsNeeded {
		return qerr.Temp("the descriptor limit is %d (hard limit %d); qmail-install keeps each directory of the tree open while it works "+
			"and needs %d: raise it (ulimit -n %d) and run it again; nothing was changed", soft, hard, fdsNeeded, max(fdsNeeded, 256))
	}
	return nil
}

// ErrRefused is the cause of the error for a root refused before anything
// changes: a non-empty directory that is not a qmail tree (checkRoot), or
// one that others than the installing user could have filled
// (rootTrusted).
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
	if err := enoughDescriptors(); err != nil {
		return err
	}
	// The directories above the root: who can rename one can put a tree
	// of their own where the programs are run by name (ancestors.Check).
	if err := ancestorsTrusted(root); err != nil {
		return err
	}
	// A missing root is made (an existing one is left as it is) to hold
	// its lock: another qmail-install on this tree is waited for
	// (treelock.go), and only then is the tree looked at. Looked at
	// before, a new tree the other run had begun (alias/ and bin/ made,
	// not yet control/) would be refused as a non-empty non-tree.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return qerr.Wrap(err, false, fmt.Sprintf("unable to create %s: %v", root, err))
	}
	unlock, err := lockTree(root, false, opt.Log)
	if err != nil {
		return qerr.Wrap(err, false, err.Error()+"; nothing was changed")
	}
	defer unlock()
	// The directory every change goes through, opened once: it is
	// judged (rootTrusted) as it is open, not by its name, which
	// another user may point elsewhere meanwhile.
	w, err := openWalker(root, opt.Log)
	if err != nil {
		return qerr.Wrap(err, false, err.Error()+"; nothing was changed")
	}
	defer w.close()
	if err := rootTrusted(root, w.fds["."]); err != nil {
		return err
	}
	if err := checkRoot(root); err != nil {
		return err
	}
	// A bin/ that leads to another directory makes every program act on
	// another tree (binelsewhere.go): refused before anything changes.
	if l := binElsewhere(root); l != "" {
		return qerr.Temp("%s: %s, and run qmail-install again; nothing was changed", filepath.Join(root, "bin"), l)
	}
	syscall.Umask(0o22)
	// A tree qmail itself installed is told as it is before the run,
	// which makes etc/ids (and directories): writeControl makes no
	// optional control file there.
	qmailTree := takenOver(root)

	ids, homeUser, err := resolveIDs(opt, w)
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
	w.own = own

	// Directories, files and FIFOs of the table, in order (parents
	// first), then what is not in it; every path reached from the root
	// without following a link (walk.go).
	for _, e := range Tree(homeUser) {
		if err := w.apply(e, own); err != nil {
			return qerr.Wrap(err, false, err.Error())
		}
	}
	// A queue on a file system without a journal gets synchronous
	// directory updates (dirsync.go).
	w.queueDirsync(homeUser)
	// One kept in memory loses every message at a reboot, one on a network
	// or FUSE file system is as safe as its server: said, no more
	// (memfs.go).
	w.queueNotOnDisk(homeUser)
	// The link's last event recorded where qmailctl no longer reads it
	// (linkwant.go).
	w.oldLinkWant()
	// qmail-send's lock, if the repair took it to replace what
	// qmail-send holds open (running.go): a qmail-send may start now.
	w.releaseSend()
	// The programs come last (qmail-queue last of all: programOrder):
	// a run that stops part way, on a full disk say, must not leave a
	// way into the queue of a tree without etc/ids, control/ and
	// users/, whose mail qmail-inject would address to the literal
	// "defaultdomain" and qmail-send send away. Over an installed tree
	// each program is replaced by a rename, so none is ever missing.
	steps := []func() error{
		func() error { return w.repairSendFiles(own) },
		func() error { return w.repairQueuedShared(own) },
		func() error { return w.repairQueuedLock(own) },
		func() error { return w.writeIDs(ids, own) },
		func() error { return w.writeControl(opt.Me, qmailTree, own, opt.Log) },
		func() error { return w.writeUsers(root, ids, homeUser, opt.UIDBase > 0 && !ids.Shared, own) },
		w.repairAliasesDB,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return qerr.Wrap(err, false, err.Error())
		}
	}
	if err := w.copyPrograms(opt, own); err != nil {
		return &PartWay{Err: qerr.Wrap(err, false, err.Error())}
	}
	w.programsElsewhere()
	// Mail a qmail with another conf-split left where qmail-send never
	// looks: named, never moved.
	w.strayQueue()
	// What keeps qmail-send from starting that the repair never changes
	// (a control file qmails cannot read) is said too.
	if !w.skipped["control"] {
		for _, l := range sendStops(root, own) {
			w.problem("%s; left alone (qmail-install never changes a control file)", l)
		}
	}
	// What was left alone makes the run fail, once the rest is done.
	if len(w.problems) > 0 {
		return &LeftAlone{Problems: w.problems}
	}
	return nil
}

// PartWay is the error of a run that stopped while it replaced the
// programs one by one: bin/ may hold old and new programs side by side,
// which nothing else tells (the caller says to run it again before any
// restart). A run that failed before (a refusal, a control file it could
// not write) left bin/ as it was, and is no PartWay.
type PartWay struct{ Err error }

func (e *PartWay) Error() string { return e.Err.Error() }

func (e *PartWay) Unwrap() error { return e.Err }

// LeftAlone is the error of a repair that did all it could but left these
// problems as they were (each one names what to do): the caller shows
// them as warnings, and the run fails (temporary: 111).
type LeftAlone struct{ Problems []string }

func (e *LeftAlone) Error() string { return strings.Join(e.Problems, "; ") }

// Temporary marks the failure as temporary for qerr (exit 111).
func (e *LeftAlone) Unwrap() error { return qerr.Temp("left alone") }

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

// rootTrusted refuses the root directory (open as fd, a symbolic link
// the administrator named followed) when another user than the one
// running qmail-install (its effective uid: root's is 0) could have put
// files in it: its owner is another user, or a group (even root's or
// qmail's: qmail's users are no more trusted with the root than in
// walker.follows) or others can write it: it passes exactly when
// onlyMine does. The sticky bit does not help: it keeps others from
// removing or renaming the owner's names, not from adding their own.
// What another user put there would be taken as the
// tree's (the repair gives control/, users/ and alias/ their owners and
// keeps the files in them): a control/defaultdelivery or an
// alias/.qmail-root naming their program, a users/assign line giving
// another user's name their home, obeyed by every delivery. A directory
// qmail-install has just made (MkdirAll, 0755) is the user's own and
// passes; so does root's /var/qmail of a qmail taken over. Access
// control lists are not examined.
func rootTrusted(root string, fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return qerr.Wrap(err, false, fmt.Sprintf("unable to stat %s: %v; nothing was changed", root, err))
	}
	euid := os.Geteuid()
	who := unixid.Who
	you := "you, " + who(euid)
	if euid == 0 {
		you = "root"
	}
	const taken = "a tree made of it would keep what they put there (a control/defaultdelivery or an alias/.qmail-root naming their program, " +
		"a users/assign line sending another user's mail to their home) and obey it in every delivery"
	if int(st.Uid) != euid {
		rm := "remove it"
		if euid != 0 {
			rm = "have it removed"
		}
		return qerr.Wrap(ErrRefused, true, fmt.Sprintf("%s belongs to %s, not to %s: %s; refusing to install there: "+
			"%s, or give another -root (one of yours, or a new one: qmail-install makes it); nothing was changed",
			root, who(int(st.Uid)), you, taken, rm))
	}
	var by string
	switch {
	case st.Mode&0o002 != 0 && st.Mode&unix.S_ISVTX != 0:
		by = "others (the sticky bit keeps them from removing your names, not from adding theirs)"
	case st.Mode&0o002 != 0:
		by = "others"
	case st.Mode&0o020 != 0:
		by = "its group " + groupName(int(st.Gid))
	default:
		return nil
	}
	return qerr.Wrap(ErrRefused, true, fmt.Sprintf("%s (mode %04o) can be written by %s, so any of them may have put files there: %s; "+
		"refusing to install there: look at everything in it, then chmod go-w %s (or remove it) and run qmail-install again; nothing was changed",
		root, st.Mode&0o7777, by, taken, root))
}

// groupName names gid for rootTrusted: its name and number, or the number.
func groupName(gid int) string {
	if g, err := user.LookupGroupId(unixid.Format(gid)); err == nil {
		return fmt.Sprintf("%s (gid %d)", g.Name, gid)
	}
	return fmt.Sprintf("gid %d", gid)
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

// kindOf is the table's kind of fi ('?' for any other).
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

// queueEntries are the programs that put mail into the queue for others:
// qmail-queue (set-uid qmailq) and the queue service qmail-queued. They
// are installed last, qmail-queue last of all, so that a copy that fails
// part way leaves a new tree with no entry into its queue.
var queueEntries = []string{"qmail-queued", "qmail-queue"}

// programOrder is Programs in the order they are installed: the queue's
// entries (queueEntries) at the end.
func programOrder() []string {
	order := make([]string, 0, len(Programs))
	for _, name := range Programs {
		if !slices.Contains(queueEntries, name) {
			order = append(order, name)
		}
	}
	return append(order, queueEntries...)
}

// copyPrograms copies each of Programs found as an executable regular
// file in the source directory into root/bin (unless it is root/bin
// itself) and gives each of Programs in root/bin its owner and mode, in
// programOrder.
// Nothing else in root/bin is touched: an administrator's own script
// stays as it is. (A root/bin that is a link out of the tree is refused
// before: binelsewhere.go.)
func (w *walker) copyPrograms(opt Options, own *owners) error {
	bin, err := w.dir("bin")
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
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
	same := false
	var a, b unix.Stat_t
	if unix.Stat(src, &a) == nil && unix.Fstat(bin, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
		same = true
	}
	order := programOrder()
	if !same {
		for _, name := range order {
			fi, err := os.Stat(filepath.Join(src, name))
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				continue
			}
			if err := w.copyProgram(filepath.Join(src, name), bin, name, own); err != nil {
				return err
			}
		}
	}
	for _, name := range order {
		rel := "bin/" + name
		fd, st, err := openAt(bin, rel, unix.O_RDONLY)
		if err != nil {
			continue // missing, a link, or gone: not changed
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			pe := ProgEntry(name)
			var uid, gid int
			if uid, gid, err = own.resolve(pe); err == nil {
				_, err = w.settle(bin, fd, &st, pe, uid, gid, "")
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// copyProgram writes a new bin/name and renames it over the old one, so
// that a running program is replaced, not overwritten.
func (w *walker) copyProgram(src string, bin int, name string, own *owners) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	pe := ProgEntry(name)
	uid, gid, err := own.resolve(pe)
	if err != nil {
		return err
	}
	return w.placeAt(bin, "bin/"+name, false, func(out *os.File) error {
		if _, err := io.Copy(out, in); err != nil {
			return fmt.Errorf("copy %s: %v", src, err)
		}
		return nil
	}, uid, gid, pe.Mode, nil)
}

// readIDs reads etc/ids as an earlier install wrote it.
func (w *walker) readIDs() (*qhome.IDs, error) {
	b, err := w.readFile(qhome.IDsFile)
	if err != nil {
		return nil, err
	}
	return qhome.ParseIDs(string(b))
}

// writeIDs writes etc/ids (root:qmail 0644) atomically.
func (w *walker) writeIDs(ids *qhome.IDs, own *owners) error {
	etc, err := w.dir(filepath.Dir(qhome.IDsFile))
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
	uid, gid, err := own.resolve(Entry{Path: qhome.IDsFile, Owner: "root", Group: "qmail"})
	if err != nil {
		return err
	}
	data := []byte(ids.Format())
	return w.placeAt(etc, qhome.IDsFile, false, func(f *os.File) error { _, err := f.Write(data); return err }, uid, gid, 0o644, nil)
}

// DefaultControl returns the control files qmail-install creates in a
// new tree (writeControl), derived from me: me, defaultdomain and
// plusdomain (me without its first label when me has at least two dots,
// else me), locals and rcpthosts (me, localhost and
// localhost.DEFAULTDOMAIN).
//
// qmail-inject appends "." and defaultdomain to a host without a dot, so
// mail to user@localhost is addressed to localhost.DEFAULTDOMAIN
// (localhost.laptop.test for me laptop.test): that name is local, or the
// mail would leave the host.
//
// A me without a dot ("vm", "localhost") gets defaultdomain and plusdomain
// "localdomain", and NAME.localdomain is local too: mail to "root" is
// root@NAME.localdomain, which must stay on the host (with defaultdomain
// NAME it would be root@NAME.NAME, sent away).
func DefaultControl(me string) map[string]string {
	dom := me
	hosts := []string{me, "localhost"}
	switch {
	case Dotless(me):
		dom = "localdomain"
		hosts = append(hosts, me+".localdomain")
	case strings.HasPrefix(me, "["):
		// An address literal has no parent domain.
	case strings.Count(me, ".") >= 2:
		dom = me[strings.IndexByte(me, '.')+1:]
	}
	hosts = append(hosts, "localhost."+dom)
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

// mailName finds the name for control/me when -me was not given: the
// first line of an existing control/me (cur), else Debian's
// /etc/mailname (the host's mail name, when it has a dot), else the host
// name.
func mailName(cur string) (string, error) {
	if cur != "" {
		return cur, nil
	}
	if b, err := os.ReadFile(MailnameFile); err == nil {
		if me := firstLine(b); me != "" && !Dotless(me) {
			return me, nil
		}
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("unable to find the host name for control/me (use -me NAME): %v", err)
	}
	return h, nil
}

// firstLine is the first line of b, blanks around it removed.
func firstLine(b []byte) string {
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
}

// MailnameFile is Debian's mail name file; a variable for tests.
var MailnameFile = "/etc/mailname"

// writeControl makes the control files of DefaultControl in a new tree,
// and only there. A tree is new when control/me and users/assign are
// both absent before this run, and it is no tree qmail itself installed
// (qmailTree: takenOver, judged before the run). me is written last of
// the control files and users/assign after them (writeUsers), so a tree
// whose first run stopped before them is still new, and one taken over
// without me stays not new at every later run (etc/ids made, it no longer
// looks like qmail's).
//
// In any other tree (one hqmail made, or one of qmail's taken over) an
// absent defaultdomain, plusdomain, locals or rcpthosts stays absent, as
// qmail's programs have a default for each: me for the first three
// (qmail-inject, qmail-send), and for rcpthosts no restriction at all
// (qmail-smtpd accepts every recipient). Made there, they would change
// what the tree did (mail for its virtualdomains refused with 553,
// user@host rewritten otherwise). An absent rcpthosts is said
// (rcpthostsMissing), as -check says it. An absent me is made, alone,
// and said: hqmail's programs have no default for it (qmail-remote and
// qmail-smtpd refuse to work without it, qmail-send without it and
// locals; qmail-control(5)).
func (w *walker) writeControl(me string, qmailTree bool, own *owners, log io.Writer) error {
	ctl, err := w.dir("control")
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
	_, meExists, err := statAt(ctl, "me")
	if err != nil {
		return fmt.Errorf("unable to stat %s: %v", w.path("control/me"), err)
	}
	derived := me == ""
	warnRcpthosts := func() {
		if _, ok, err := statAt(ctl, "rcpthosts"); err == nil && !ok && log != nil {
			fmt.Fprintf(log, "qmail-install: warning: %s\n", rcpthostsMissing)
		}
	}
	if meExists {
		cur := ""
		if b, err := w.readFile("control/me"); err == nil {
			cur = firstLine(b)
		}
		if cur != "" && !derived && log != nil && cur != me {
			fmt.Fprintf(log, "qmail-install: note: control/me exists and says %s; -me %s changes nothing "+
				"(control files are never overwritten: edit control/me, defaultdomain, plusdomain, locals and rcpthosts, then restart qmail)\n", cur, me)
		}
		warnRcpthosts()
		return nil
	}
	isNew := !qmailTree
	if isNew {
		assigned, err := w.assignExists()
		if err != nil {
			return err
		}
		isNew = !assigned
	}
	uid, gid, err := own.resolve(Entry{Path: "control", Owner: "root", Group: "qmail"})
	if err != nil {
		return err
	}
	if !isNew {
		if derived {
			if me, err = mailName(""); err != nil {
				return err
			}
		}
		made, err := w.createAt(ctl, "control/me", []byte(me+"\n"), uid, gid, 0o644)
		if err != nil {
			return err
		}
		if made && log != nil {
			fmt.Fprintf(log, "qmail-install: note: %s\n", meMade(me))
		}
		warnRcpthosts()
		return nil
	}
	if derived {
		if me, err = mailName(""); err != nil {
			return err
		}
	}
	files := DefaultControl(me)
	// A dotless name the admin did not choose (-me) deserves a word when
	// the control files are first made.
	if derived && Dotless(me) && log != nil {
		fmt.Fprintf(log, "qmail-install: warning: the host name %s has no dot, so local mail is addressed to %s.localdomain "+
			"(made local); for a real mail name give -me host.example.org (make install ME=host.example.org) "+
			"when the control files are first made, or edit control/me, defaultdomain, plusdomain, locals and rcpthosts\n", me, me)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if n != "me" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	names = append(names, "me") // last: the tree is new until it exists
	for _, n := range names {
		// never overwrite a control file (createAt leaves what is there)
		if _, err := w.createAt(ctl, "control/"+n, []byte(files[n]), uid, gid, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// meMade is what a run says when it made control/me alone, in a tree
// that is not new without it (writeControl).
func meMade(me string) string {
	return fmt.Sprintf("control/me was missing, and qmail-remote and qmail-smtpd cannot work without it: "+
		"made control/me (%s) and no other control file, as the tree is not new", me)
}

// assignExists reports whether users/assign exists (as anything) before
// writeUsers makes it: a tree whose first run went that far is not new
// (writeControl). A users/ the walk leaves alone counts as one with it.
func (w *walker) assignExists() (bool, error) {
	dir, err := w.dir("users")
	if err == errSkipped {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	_, ok, err := statAt(dir, "assign")
	if err != nil {
		return false, fmt.Errorf("unable to stat %s: %v", w.path("users/assign"), err)
	}
	return ok, nil
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

func (w *walker) writeUsers(root string, ids *qhome.IDs, homeUser string, catchAll bool, own *owners) error {
	dir, err := w.dir("users")
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
	uid, gid, err := own.resolve(Entry{Path: "users", Owner: "root", Group: "qmail"})
	if err != nil {
		return err
	}
	made, err := w.createAt(dir, "users/assign", []byte(Assign(root, ids, homeUser, catchAll)), uid, gid, 0o644)
	if err != nil {
		return err
	}
	if !made {
		if err := w.repairExisting(Entry{Path: "users/assign", Kind: File, Owner: "root", Group: "qmail", Mode: 0o644}, own, false, "", ""); err != nil {
			return err
		}
	}
	// users/cdb compiled from it, as qmail-newu does. users/ is root's:
	// a link there is root's choice, and is read through (readFile).
	st, _, err := statAt(dir, "assign")
	if err != nil {
		return fmt.Errorf("unable to stat %s: %v", w.path("users/assign"), err)
	}
	link := w.follows("users", &st)
	if st.Mode&unix.S_IFMT != unix.S_IFREG && !link {
		w.skip("users/assign", File, &st)
		return nil
	}
	b, err := w.readFile("users/assign")
	if err != nil && link {
		w.problem("%s: a symbolic link that cannot be read as a file (%v); %s was not rebuilt", w.path("users/assign"), err, "users/cdb")
		return nil
	}
	if err != nil {
		return fmt.Errorf("users/assign: %v", err)
	}
	data, err := usersCDB(b)
	if err != nil {
		// The run stops here: directories, etc/ids and the control
		// files are done, users/cdb and the programs are not.
		return fmt.Errorf("%v; users/cdb was not rebuilt, nor the programs installed: fix that line and run qmail-install again", err)
	}
	return w.placeAt(dir, "users/cdb", false, func(f *os.File) error { _, err := f.Write(data); return err }, uid, gid, 0o644, nil)
}

// usersCDB is users/cdb compiled from the users/assign assign, as
// qmail-newu makes it. A users/assign it cannot compile is named by
// users.Compile's error ("bad format in users/assign: line 1: uid ...")
// once: wrapped, it said users/assign twice.
func usersCDB(assign []byte) ([]byte, error) {
	recs, err := users.Compile(assign)
	if err != nil {
		if errors.Is(err, users.ErrFormat) {
			return nil, err
		}
		return nil, fmt.Errorf("users/assign: %v", err)
	}
	var db bytes.Buffer
	cw := cdb.NewWriter(&db)
	for _, r := range recs {
		if err := cw.Add(r.Key, r.Data); err != nil {
			return nil, fmt.Errorf("users/cdb: %v", err)
		}
	}
	hdr, err := cw.Finish()
	if err != nil {
		return nil, fmt.Errorf("users/cdb: %v", err)
	}
	data := db.Bytes()
	copy(data, hdr[:])
	return data, nil
}

// resolveIDs decides the ids of the tree. As an ordinary user: the caller
// everywhere (shared) and homeUser = the caller's login name. As root: the
// -uid-base ids, else those recorded in etc/ids by an earlier install, else
// qmail's named users and groups (created if missing).
func resolveIDs(opt Options, w *walker) (*qhome.IDs, string, error) {
	if os.Geteuid() != 0 {
		name := unixid.Format(os.Getuid())
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
	if ids, err := w.readIDs(); err == nil && !ids.Shared {
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
