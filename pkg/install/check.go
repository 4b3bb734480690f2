package install

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/ancestors"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// ErrNoTree is the cause of Check's error for a root that is no qmail
// tree: missing, not a directory, or without etc/ids.
var ErrNoTree = errors.New("no qmail tree")

func noTree(root, why string) error {
	return qerr.Wrap(ErrNoTree, true, fmt.Sprintf("no qmail tree at %s (%s; -root names another)", root, why))
}

// Check compares the tree at root with the table (and every program in
// bin/ with its program entry) and returns one line per deviation, like
// qmail's instcheck, and what keeps qmail's users from the files they
// read. A directory above root that another user can change, for which
// the repair and root's qmail-start refuse the tree, is said first
// (ancestorsLine). The ids come from root/etc/ids; where the user
// database gives them or qmail's names otherwise, that is said next
// (IDConflicts).
// Control files and the alias user's .qmail files saved with CRLF line
// endings are named too (crlfFiles), and so are queue files outside the
// split directory of their id modulo 23, as a qmail built with another
// conf-split leaves them (strayQueue), and smtproutes lines with a login
// after the port (smtproutesLogins). qmail-send's records
// (sendFiles) and qmail-queued's lock (queuedLock), which are not in the
// table, are checked when they exist. A root that is no tree gives a
// permanent error wrapping ErrNoTree (with a hint for a tree qmail
// itself installed: noIDs).
func Check(root string) ([]string, error) {
	st, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, noTree(root, "no such directory")
	case err == nil && !st.IsDir():
		return nil, noTree(root, "not a directory")
	}
	ids, err := qhome.LoadIDs(root)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, noIDs(root)
	}
	if err != nil {
		return nil, err
	}
	own := &owners{ids: ids, shared: ids.Shared}
	homeUser := ""
	if ids.Shared {
		own.uid, own.gid = ids.Alias.UID, ids.Alias.GID
		if u, err := user.LookupId(strconv.Itoa(ids.Alias.UID)); err == nil {
			homeUser = u.Username
		} else if ents, err := os.ReadDir(filepath.Join(root, "home")); err == nil && len(ents) == 1 && !wayBlocked(root, "home/x") {
			homeUser = ents[0].Name()
		}
	}
	entries := Tree(homeUser)
	// Of bin/, hqmail's programs only, as the repair changes only those.
	// One that is missing is named (a tree whose install stopped part
	// way, or from a directory without it, lacks it: a re-run from the
	// tree's own bin/ cannot make it); one that is a symbolic link is
	// programLinks's. Behind a bin/ that leads out of the tree
	// (binElsewhere, named below) are no programs of this tree: none is
	// compared there, and none is missing.
	binLink := binElsewhere(root)
	var missingProgs []string
	for _, name := range Programs {
		if binLink != "" || wayBlocked(root, "bin/x") {
			break // the same for every program
		}
		fi, err := os.Lstat(filepath.Join(root, "bin", name))
		switch {
		case err == nil && fi.Mode().IsRegular():
			entries = append(entries, ProgEntry(name))
		case errors.Is(err, fs.ErrNotExist):
			missingProgs = append(missingProgs, fmt.Sprintf("bin/%s: %v (a run of qmail-install from the build's bin/, or make install, copies it)",
				name, syscall.ENOENT))
		}
	}
	fixed := []Entry{
		{Path: qhome.IDsFile, Kind: File, Owner: "root", Group: "qmail", Mode: 0o644},
		{Path: "users/assign", Kind: File, Owner: "root", Group: "qmail", Mode: 0o644},
		{Path: "users/cdb", Kind: File, Owner: "root", Group: "qmail", Mode: 0o644},
	}
	entries = append(entries, fixed...)
	rs := runners(ids)
	out := ancestorsLine(root)
	out = append(out, IDConflicts(ids)...)
	blocked := map[string]bool{}
	if !ids.Shared {
		out = append(out, unreachableRoot(root, rs, own, blocked)...)
	}
	for _, e := range entries {
		if wayBlocked(root, e.Path) {
			continue // its directory was named, once
		}
		out = append(out, checkEntry(root, e, own, rs)...)
	}
	out = append(out, missingProgs...)
	out = append(out, foreignOwned(root, ids, entries, own)...)
	out = append(out, unreadableControls(root, rs, own, blocked, ids.Shared)...)
	out = append(out, aliasesDB(root, rs, own, blocked, ids.Shared)...)
	for _, f := range sendFiles {
		out = append(out, sendFile(root, f.name, f.effect, rs, own)...)
	}
	out = append(out, queuedFile(root, rs, own)...)
	out = append(out, queuedShared(root)...)
	if binLink != "" {
		out = append(out, "bin: "+binLink+" (a repair refuses to run until then)")
	}
	out = append(out, programLinks(root)...)
	out = append(out, staleUsersCDB(root)...)
	out = append(out, crlfFiles(root)...)
	out = append(out, smtproutesLogins(root, ids.Shared)...)
	out = append(out, strayQueue(root)...)
	out = append(out, unsyncedQueue(root, entries)...)
	var hints []string
	if !wayBlocked(root, "control/me") {
		if hints = dotlessDomain(root); len(hints) == 0 {
			hints = localhostLocal(root)
		}
	}
	// A missing control file (missingControls), unless a hint names it
	// already.
	for _, l := range missingControls(root) {
		name, _, _ := strings.Cut(l, ": ")
		if !slices.ContainsFunc(hints, func(h string) bool { return strings.HasPrefix(h, name+": missing") }) {
			out = append(out, l)
		}
	}
	return append(out, hints...), nil
}

// ancestorsLine names, in the words of the repair's refusal
// (ancestorsTrusted), a directory above root (or a symbolic link on the
// way to it) that another user than root or the one running -check can
// change, or an error checking them: the repair refuses to install there,
// and qmail-start as root refuses to start the tree, so that a tree moved
// there (or a directory above it made writable) since it was installed
// does not start at the next restart (QA rupgrade2: -check said nothing).
func ancestorsLine(root string) []string {
	abs, err := filepath.Abs(root)
	if err == nil {
		err = ancestors.Check(abs)
	}
	if err == nil {
		return nil
	}
	return []string{err.Error() + "; qmail-install refuses to repair the tree there, and qmail-start as root to start it"}
}

// foreignDirs are the directories whose files decide what deliveries run
// and as whom: control/ (defaultdelivery, virtualdomains), users/
// (assign) and alias/ (.qmail-root, .qmail-default).
var foreignDirs = []string{"control", "users", "alias"}

// foreignOwned names each name directly in foreignDirs (a symbolic link
// as itself) that belongs to a uid neither root, the user who installed
// the tree, nor one of qmail's users of etc/ids: another user put it
// there, as a user who made the root directory before root's first
// qmail-install could (rootTrusted refuses such a root now), and what
// it says is obeyed. The user who installed the tree is root, or, in a
// tree of an ordinary user, that user, whose uid is every one of etc/ids.
// The table's own paths are left to their entries' owner lines, and a
// directory that is no directory (wayBlocked) to its entry's line.
func foreignOwned(root string, ids *qhome.IDs, entries []Entry, own *owners) []string {
	ok := map[uint32]bool{0: true}
	for _, n := range qhome.UserNames {
		ok[uint32(ids.UserByName(n).UID)] = true
	}
	table := map[string]bool{}
	for _, e := range entries {
		table[e.Path] = true
	}
	var out []string
	for _, d := range foreignDirs {
		if wayBlocked(root, d+"/x") {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			continue // the directory's entry names it
		}
		for _, e := range ents {
			rel := d + "/" + e.Name()
			var st syscall.Stat_t
			if table[rel] || syscall.Lstat(filepath.Join(root, rel), &st) != nil || ok[st.Uid] {
				continue
			}
			who := own.userName(int(st.Uid))
			if n := unixid.Format(int(st.Uid)); who != n {
				who += " (uid " + n + ")"
			} else {
				who = "uid " + n
			}
			out = append(out, fmt.Sprintf("%s: belongs to %s, neither root, the tree's owner nor one of qmail's users: "+
				"that user may have put it there to have their program run, or mail delivered, as it says; look at it, "+
				"then remove it or chown -h it to root (qmail-install leaves it as it is)", rel, who))
		}
	}
	return out
}

// wayBlocked reports whether a directory on the way from root to rel
// (below root, rel excluded) exists and is no directory: a symbolic link
// there (one of qmail's users can put one in place of a directory it
// owns, pointing anywhere) is not followed, as the repair does not follow
// it. That directory's entry in the table names it, once; nothing below
// it is examined, so that no owner, mode or search permission of the
// link's target is reported, and no chmod or chown advised, that would
// reach outside the tree. A missing directory is no obstacle: the
// entries below it say they are missing. A link in one of root's
// directories (linkFollowed: control -> /etc/qmail) is followed, as the
// repair follows it, and blocks only when it leads to no directory.
func wayBlocked(root, rel string) bool {
	dir := filepath.Dir(filepath.Clean(rel))
	if dir == "." {
		return false
	}
	cur, parent := root, "."
	for _, name := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, name)
		fi, err := os.Lstat(cur)
		if err != nil {
			return false
		}
		if fi.Mode()&fs.ModeSymlink != 0 && linkFollowed(root, filepath.Join(parent, name)) {
			if fi, err = os.Stat(cur); err != nil {
				return true
			}
		}
		if !fi.IsDir() {
			return true
		}
		parent = filepath.Join(parent, name)
	}
	return false
}

// linkFollowed reports whether the symbolic link rel of the tree at root
// is followed, as the repair follows it (walker.follows, for the user the
// tree is for): its directory is one of rootDirs and, as reached, belongs
// to root or to the owner of the tree's root, and no group or others may
// write it; and the link itself belongs to root or to that owner.
func linkFollowed(root, rel string) bool {
	return notFollowed(root, rel, nil) == ""
}

// notFollowed says why the symbolic link rel of the tree at root is not
// followed ("" when it is); own, when not nil, names the link's owner.
func notFollowed(root, rel string, own *owners) string {
	rel = filepath.Clean(rel)
	dir := filepath.Dir(rel)
	if !rootDirs[dir] {
		return "links are followed only in the tree's root, bin/, control/, etc/ and users/"
	}
	name := dir + "/"
	if dir == "." {
		name = "the tree's root"
	}
	var r, d, l syscall.Stat_t
	if syscall.Stat(root, &r) != nil || syscall.Stat(filepath.Join(root, dir), &d) != nil || syscall.Lstat(filepath.Join(root, rel), &l) != nil {
		return name + " cannot be examined"
	}
	who := func(uid uint32) string {
		if own == nil {
			return unixid.Format(int(uid))
		}
		return own.userName(int(uid))
	}
	switch {
	case d.Uid != 0 && d.Uid != r.Uid:
		return name + " belongs to " + who(d.Uid)
	case d.Mode&0o022 != 0:
		return name + " can be written by others than " + who(d.Uid)
	case l.Uid != 0 && l.Uid != r.Uid:
		return "the link belongs to " + who(l.Uid) + ", not to " + who(r.Uid)
	}
	return ""
}

// followedEntry compares e, a symbolic link in one of root's directories
// that the repair follows, with its entry: its target must be of the
// entry's kind. Its owner and mode are the administrator's choice (the
// repair leaves them), so they are not compared.
func followedEntry(root string, e Entry) []string {
	below := ""
	if e.Kind == Dir {
		below = "; nothing below it was checked"
	}
	fi, err := os.Stat(filepath.Join(root, e.Path))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return []string{fmt.Sprintf("%s: is a symbolic link that cannot be followed (%v), want a %s%s", e.Path, err, e.Kind, below)}
	}
	want := e.Kind
	if want == Prog {
		want = File
	}
	if kindOf(fi) != want {
		return []string{fmt.Sprintf("%s: is a symbolic link to a %s, want a %s%s", e.Path, kindName(fi), e.Kind, below)}
	}
	return nil
}

// unreachableRoot names qmail's users that cannot search the directories
// on the way to root and root itself (a tree under a directory of mode
// 0700): none of their programs can work. They are added to blocked, so
// that the files in the tree are not reported for them once more.
func unreachableRoot(root string, rs []runner, own *owners, blocked map[string]bool) []string {
	var reach []runner
	for _, r := range rs {
		if d, err := r.denied(root, accSearch); err == nil && d != nil {
			reach = append(reach, r)
			blocked[r.name] = true
		}
	}
	var out []string
	for _, l := range whoCannot(root, root, accSearch, "reachable", reach, nil, own, "") {
		out = append(out, l+": none of their programs can use the tree")
	}
	return out
}

// dotlessDomain names a defaultdomain equal (domain names compare without
// case) to a dotless control/me, as qmail-install wrote it before it used
// localdomain: mail to "root" becomes root@vm.vm, which is no local
// domain, and is sent away. A missing defaultdomain does the same, as
// qmail-inject then uses me (the repair does not make one in a tree that
// has me: writeControl).
func dotlessDomain(root string) []string {
	d := control.Open(root)
	me, ok, err := d.ReadLine("me")
	if err != nil || !ok || me == "" || !Dotless(me) {
		return nil
	}
	dom, ok, err := d.ReadLine("defaultdomain")
	var what string
	switch {
	case err != nil:
		return nil
	case !ok:
		dom = me
		what = fmt.Sprintf("control/defaultdomain: missing, so qmail-inject and sendmail use the dotless control/me %s", me)
	case strings.EqualFold(dom, me):
		what = fmt.Sprintf("control/defaultdomain: %s, the dotless control/me %s", dom, me)
	default:
		return nil
	}
	add := me + ".localdomain"
	if !strings.EqualFold(me, "localhost") {
		add += " and localhost.localdomain"
	}
	return []string{fmt.Sprintf("%s: mail to a bare user goes to user@%s.%s, "+
		"which is not local; write localdomain to defaultdomain and plusdomain, and add %s "+
		"to locals and rcpthosts (as a new install does)", what, me, dom, add)}
}

// localhostLocal names the form qmail-inject gives user@localhost when
// neither control/locals nor control/virtualdomains makes it local.
// qmail-inject (and sendmail) append "." and control/defaultdomain (else
// control/me) to a host without a dot, so such mail is addressed to
// localhost.DOMAIN; without that name in locals qmail-send hands it to
// qmail-remote (a smarthost in smtproutes takes it away). A missing
// defaultdomain is me, as for qmail-inject (the repair does not make one
// in a tree that has me: writeControl). A tree without me whose
// defaultdomain or locals is missing is left to missingControls's lines.
func localhostLocal(root string) []string {
	d := control.Open(root)
	me, meOK, err := d.ReadLine("me")
	if err != nil {
		return nil
	}
	dom, ok, err := d.ReadLine("defaultdomain")
	if err != nil {
		return nil
	}
	why := "control/defaultdomain"
	if !ok {
		if !meOK || me == "" {
			return nil
		}
		dom = me
		why = "control/me in the absence of control/defaultdomain"
	}
	if dom == "" {
		return nil
	}
	form := "localhost." + dom
	locals, localsOK, err := d.ReadList("locals")
	if err != nil {
		return nil
	}
	what := "control/locals: lacks " + form
	fix := "add the line " + form + " to control/locals"
	if !localsOK {
		if !meOK || me == "" {
			return nil
		}
		locals = []string{me}
		what = "control/locals: missing, so only control/me " + me + " is local, not " + form
		fix = "write " + me + ", localhost and " + form + " to control/locals, one a line"
	}
	if has(locals, form) {
		return nil
	}
	if vd, _, err := d.ReadList("virtualdomains"); err != nil || virtualLocal(control.KeyMap(vd), address.LowerASCII(form)) {
		return nil
	}
	// A new install lists the name in rcpthosts too (qmail-smtpd takes
	// mail for it). Only an existing rcpthosts that lacks it is named: a
	// missing one accepts every domain, and a new one would refuse all
	// the others.
	if rh, ok, err := d.ReadList("rcpthosts"); err == nil && ok && !has(rh, form) {
		if localsOK {
			fix += " and to control/rcpthosts"
		} else {
			fix += ", and add the line " + form + " to control/rcpthosts"
		}
	}
	return []string{fmt.Sprintf("%s, the domain qmail-inject and sendmail give mail to user@localhost "+
		"(they append .%s, from %s, to a host without a dot): such mail is not local and is sent away; %s "+
		"(as a new install does), then run qmailctl reload", what, dom, why, fix)}
}

// has reports whether list holds name, compared without case.
func has(list []string, name string) bool {
	for _, l := range list {
		if strings.EqualFold(l, name) {
			return true
		}
	}
	return false
}

// virtualLocal reports whether control/virtualdomains (m, keys
// lowercased) delivers mail for the domain dom locally, as qmail-send
// looks it up: the domain, each ".suffix" of it longest first, then the
// empty key; an entry with an empty prepend excepts the domain.
func virtualLocal(m map[string]string, dom string) bool {
	if v, ok := m[dom]; ok {
		return v != ""
	}
	for i := 0; i < len(dom); i++ {
		if dom[i] == '.' {
			if v, ok := m[dom[i:]]; ok {
				return v != ""
			}
		}
	}
	return m[""] != ""
}

// controlReaders are qmail's users whose programs read control files:
// qmail-send, qmail-smtpd, qmail-remote, and fastforward in deliveries
// to aliases (qmail-lspawn runs as root).
var controlReaders = []string{"alias", "qmaild", "qmailr", "qmails"}

// controlReadersOf are the control files that only qmailr's programs
// read (qmail-remote's, and qmail-rspawn's smtpcache and smtproutes):
// only qmailr is named when it cannot read one, with what that costs
// (controlEffect). The others are checked for every one of
// controlReaders; smtpauth is one of privateControls.
var controlReadersOf = map[string][]string{
	"helohost":       {"qmailr"},
	"outgoingip":     {"qmailr"},
	"resolvconf":     {"qmailr"},
	"smtpcache":      {"qmailr"},
	"smtproutes":     {"qmailr"},
	"timeoutconnect": {"qmailr"},
	"timeoutremote":  {"qmailr"},
	"tlsca":          {"qmailr"},
	"tlsroutes":      {"qmailr"},
}

// privateControls are the control files that only their one reader may
// read: smarthost passwords (qmailr's, mode 0600) and the STARTTLS key
// (qmaild's), with what follows when group or others may read them.
var privateControls = map[string]struct{ reader, exposed string }{
	"smtpauth":       {"qmailr", "qmail-remote refuses to use it"},
	"servercert.pem": {"qmaild", "its private key is exposed, and qmail-smtpd warns in every session"},
}

// Effects of a control file that exists but cannot be read, by its
// reader: qmail's rule (a missing file is the default, any other failure
// is an error, never the default).
const (
	effSend   = "qmail-send does not start"
	effSmtpd  = `qmail-smtpd answers every session "421 unable to read controls"`
	effRemote = `qmail-remote defers every delivery ("Unable to read control files")`
	effInject = `qmail-inject refuses every message ("read error"), and so does sendmail ("unable to read controls:" with the file and the reason)`
)

// controlEffects are the control files hqmail's programs read, with what
// breaks when one exists but cannot be read as a file.
var controlEffects = map[string]string{
	"me":                effSend + "; " + effSmtpd + "; " + effRemote + "; " + effInject,
	"aliases":           "newaliases fails",
	"badmailfrom":       effSmtpd,
	"bounceformat":      effSend,
	"bouncefrom":        effSend,
	"bouncehost":        effSend,
	"concurrencylocal":  effSend,
	"concurrencyremote": effSend,
	"databytes":         effSmtpd,
	"defaultdelivery":   "the start scripts (make run, scripts/rc/qmail, qmail.service) do not start qmail",
	"defaultdomain":     effInject,
	"defaulthost":       effInject,
	"doublebouncehost":  effSend,
	"doublebounceto":    effSend,
	"envnoathost":       effSend,
	"helohost":          effRemote,
	"holdlocal":         effSend, // its presence only: a directory holds too
	"holdremote":        effSend,
	"idhost":            effInject,
	"localcache":        "qmail-lspawn uses 5 seconds instead",
	"localiphost":       effSmtpd,
	"locals":            effSend,
	"morercpthosts":     "qmail-newmrh fails",
	"morercpthosts.cdb": `qmail-smtpd answers "421 unable to read controls" to a recipient domain not in control/rcpthosts`,
	"outgoingip":        effRemote,
	"percenthack":       effSend,
	"plusdomain":        effInject,
	"queuelifetime":     effSend,
	"rcpthosts":         effSmtpd,
	"relayclients":      `qmail-smtpd -listen or -r answers every session "421 unable to read controls"`,
	"resolvconf":        effRemote,
	"servercert.pem":    "qmail-smtpd offers no STARTTLS",
	"smtpauth":          `qmail-remote defers every delivery through control/smtproutes ("Unable to read control files")`,
	"smtpcache":         "qmail-rspawn keeps no SMTP connection open",
	"smtpgreeting":      effSmtpd,
	"smtproutes":        effRemote,
	"startheld":         "qmail-start does not start",
	"timeoutconnect":    effRemote,
	"timeoutremote":     effRemote,
	"timeoutsmtpd":      effSmtpd,
	"tlsca":             tlscaEffect,
	"tlsroutes":         effRemote,
	"virtualdomains":    effSend,
}

// tlscaEffect is what a control/tlsca qmail-remote cannot read costs
// (pkg/remote loadRoots), %s being why, in qmail-remote's words: it is
// read for a delivery that verifies the server's certificate (a policy of
// require, or the default of a delivery that logs in), and that delivery
// is deferred, saying so. For a host whose mail all goes to a smarthost
// with a login, that is all of its mail.
const tlscaEffect = `qmail-remote defers every delivery that verifies the server's certificate ("Unable to read control/tlsca: %s. (#4.3.0)"): ` +
	`all mail through a relay with a login in control/smtpauth, unless control/tlsroutes gives its domain try, encrypt or none, ` +
	`and mail to every domain control/tlsroutes gives require (or a word it does not know)`

// controlEffect is what control file name (one of controlEffects)
// breaks when its reader cannot read it, why being the reason in qmail's
// words ("is a directory", "access denied") for the reports that say it.
func controlEffect(name, why string) string {
	if name == "tlsca" {
		return fmt.Sprintf(tlscaEffect, why)
	}
	return controlEffects[name]
}

// readWhy says why the file at p cannot be read as a control file (with
// symbolic links followed, refusing what is no regular file), in the
// words of qmail-remote's reports (pkg/remote whyUnread).
func readWhy(p string) string {
	f, err := qhome.OpenRegular(p, os.O_RDONLY)
	if err == nil {
		f.Close()
		return "no error"
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, qhome.ErrNotRegular):
		return "not a regular file"
	case errors.As(err, &errno):
		return qerr.Str(err)
	}
	return err.Error()
}

// unreadableControls names the control files of a tree that cannot be
// read as files (notAFile), and, in a tree with qmail's users, those that
// one of their readers cannot read (controlReadersOf's, with what that
// costs, else every one of controlReaders), and who: by the owner, group
// and mode of the file and of every directory on its way (a symbolic link
// into a directory of mode 0700), for the groups the user's programs run
// with. One qmails cannot read stops qmail-send at its next start.
// qmail-install never changes a control file, so this is only reported.
func unreadableControls(root string, rs []runner, own *owners, blocked map[string]bool, shared bool) []string {
	if wayBlocked(root, "control/me") {
		return nil
	}
	dir := filepath.Join(root, "control")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var readers []runner
	for _, n := range controlReaders {
		readers = append(readers, runnerNamed(rs, n))
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || e.Name() == control.LockName {
			// control/lock is qmailctl's lock, 0600 on purpose: read
			// by others, they could hold it (pkg/ctl lockDir).
			continue
		}
		p := filepath.Join(dir, e.Name())
		if l := notAFile(e.Name(), p); l != "" {
			out = append(out, l)
			continue
		}
		if shared {
			continue
		}
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		who, fix, eff := readers, "chmod 644", ""
		if names, ok := controlReadersOf[e.Name()]; ok {
			who, eff = nil, controlEffect(e.Name(), qerr.Str(syscall.EACCES))
			for _, n := range names {
				who = append(who, runnerNamed(rs, n))
			}
		}
		if pc, ok := privateControls[e.Name()]; ok {
			who, fix = []runner{runnerNamed(rs, pc.reader)}, "chown "+pc.reader+"; chmod 600"
			if m := st.Mode().Perm(); m&0o077 != 0 {
				out = append(out, fmt.Sprintf("control/%s: mode %04o, readable by group or others: %s (%s)", e.Name(), m, pc.exposed, fix))
			}
		}
		for _, l := range whoCannot("control/"+e.Name(), p, accRead, "readable", who, blocked, own, fix) {
			if eff != "" {
				l += ": " + eff
			}
			out = append(out, l)
		}
	}
	return out
}

// notAFile says how the control file name at p, one of controlEffects,
// exists but cannot be read as a file, as qmail's programs open it
// (symbolic links followed): a loop of symbolic links, a link that
// cannot be followed, a directory or another non-file (/dev/null, which
// reads as empty, is fine), and what that breaks; "" when it is a file,
// is missing or a dangling link (both read as missing), or is a name no
// program reads. Of holdlocal only the presence counts: only a link that
// cannot be followed is named.
func notAFile(name, p string) string {
	if _, ok := controlEffects[name]; !ok {
		return ""
	}
	lfi, err := os.Lstat(p)
	if err != nil {
		return ""
	}
	link := ""
	if lfi.Mode()&os.ModeSymlink != 0 {
		if t, err := os.Readlink(p); err == nil {
			link = t
		}
	}
	var what string
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ""
	case errors.Is(err, syscall.ELOOP):
		what = "a loop of symbolic links"
	case err != nil:
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return fmt.Sprintf("control/%s: %v", name, err)
		}
		what = "a path that cannot be opened (" + errno.Error() + ")"
	case name == "holdlocal", fi.Mode().IsRegular(), qhome.IsDevNull(fi):
		return ""
	default:
		what = "a " + kindName(fi)
	}
	if link != "" {
		what = "a symbolic link to " + link + ", " + what
	}
	return fmt.Sprintf("control/%s: is %s, want a regular file: %s (replace it by a regular file)", name, what, controlEffect(name, readWhy(p)))
}

// smtproutesLogins names each line of control/smtproutes with text after
// its port (or after a blank in its relay's name), as qmail's AUTH
// patches write a smarthost's login there: qmail-remote ignores it (or
// takes it for part of the name), and mail goes without a login, which
// a smarthost that requires one refuses. The line is named by its number
// only: the text may be a password (admin.SmtproutesExtras). shared: a
// tree of one user, who owns control/smtpauth.
func smtproutesLogins(root string, shared bool) []string {
	if wayBlocked(root, "control/me") {
		return nil
	}
	b, err := qhome.ReadRegular(filepath.Join(root, "control", "smtproutes"))
	if err != nil {
		return nil // missing, or named as a file that cannot be read
	}
	var out []string
	for _, r := range admin.SmtproutesExtras(b) {
		out = append(out, fmt.Sprintf("control/smtproutes: line %d: %s", r.Line, r.Warning(shared)))
	}
	return out
}

// kindName names the kind of fi: "regular file", "directory", "fifo",
// "symbolic link", "socket" or "device".
func kindName(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "file of unknown kind"
}

// sendFiles are the files qmail-send keeps under queue/bounce once it has
// something to record (not in the table: each exists only then), with what
// is lost when qmail-send cannot read and write one.
var sendFiles = []struct{ name, effect string }{
	// pkg/sched HoldLogName
	{"holdperiods", "qmail-send cannot tell how long mail was held, which it leaves out of queuelifetime"},
	// pkg/sched HeldMsgsName
	{"heldmsgs", "qmail-send does not start: it cannot tell which messages qmailctl holds"},
}

// sendFile checks one of sendFiles, when it exists: a regular file of
// qmails that qmail-send can read and write.
func sendFile(root, name, effect string, rs []runner, own *owners) []string {
	return ownedFile(root, "queue/bounce/"+name, "qmails", effect, false, rs, own)
}

// queuedLock is qmail-queued's lock (pkg/queue LockFile). The service
// makes it on its first start, as the user it runs as (qmailq, group
// qmail; mode 0600), so it is not in the table; one made by a
// qmail-queued run by hand as root is root's, and the service, started
// as qmailq, cannot open it.
const queuedLock = "queue/lock/queued"

// queuedEffect is what a queuedLock qmailq cannot open costs (qmail-start
// does not start qmail-queued again after its exit 111).
const queuedEffect = "qmail-queued does not start, and every caller runs qmail-queue"

// queuedFile checks queuedLock, when it exists: a regular file of qmailq
// that qmail-queued can read and write. Its contents are nothing, so
// one of another kind, a symbolic link included, is to be removed.
func queuedFile(root string, rs []runner, own *owners) []string {
	return ownedFile(root, queuedLock, "qmailq", queuedEffect, true, rs, own)
}

// queuedShared names qmail-queued's lock and socket when they are hard
// links, shared with another tree (a copy made with cp -al), which the
// repair replaces and removes while this tree's qmail-queued does not
// hold the lock (queuedshare.go).
func queuedShared(root string) []string {
	var out []string
	var st syscall.Stat_t
	if !wayBlocked(root, queuedLock) && syscall.Lstat(filepath.Join(root, queuedLock), &st) == nil &&
		st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink > 1 {
		out = append(out, fmt.Sprintf("%s: %d hard links, want 1: shared with another tree (a copy made with cp -al): "+
			"each tree's qmail-queued needs a lock of its own (one replaces it when it starts; one built before 2026-11-28 never listens) "+
			"(a re-run replaces it unless this tree's qmail-queued holds it; then run qmail-install on the other tree)", queuedLock, uint64(st.Nlink)))
	}
	if !wayBlocked(root, queuedSocket) && syscall.Lstat(filepath.Join(root, queuedSocket), &st) == nil &&
		st.Mode&syscall.S_IFMT == syscall.S_IFSOCK && st.Nlink > 1 {
		out = append(out, fmt.Sprintf("%s: %d hard links, want 1: a socket shared with another tree (a copy made with cp -al): "+
			"the programs of both trees that queue mail (sendmail, qmail-inject) do not use it and run qmail-queue instead "+
			"(hqmail built before 2026-11-28 queued the copy's mail into the other tree) "+
			"(a re-run removes it unless this tree's qmail-queued runs; then run qmail-install on the other tree)", queuedSocket, uint64(st.Nlink)))
	}
	return out
}

// ownedFile checks rel, a file the repair gives to owner (and group
// qmail) with mode 0600 when it exists (repairExisting), for the program
// running as owner that reads and writes it: another kind than a regular
// file (to be removed, or a symbolic link replaced by the file it names,
// unless empty: a file with no contents), owner, group and mode, extra
// hard links while one of those is wrong, and whether owner can read and
// write it (with effect, what is lost when it cannot).
func ownedFile(root, rel, owner, effect string, empty bool, rs []runner, own *owners) []string {
	if wayBlocked(root, rel) {
		return nil
	}
	p := filepath.Join(root, rel)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return []string{fmt.Sprintf("%s: %v", rel, err)}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		fi, err := os.Lstat(p)
		if err != nil {
			return []string{fmt.Sprintf("%s: %v", rel, err)}
		}
		fix := "remove it"
		if fi.Mode()&fs.ModeSymlink != 0 && !empty {
			// It may name the real record: keep that.
			fix = "put the file it names in its place"
		}
		return []string{fmt.Sprintf("%s: is a %s, want a regular file: %s (%s)", rel, kindName(fi), effect, fix)}
	}
	// The repair gives it owner, group qmail and mode 0600.
	var out []string
	uid, gid, _ := own.resolve(Entry{Path: rel, Owner: owner, Group: "qmail"})
	if int(st.Uid) != uid {
		out = append(out, fmt.Sprintf("%s: owner %d, want %d (%s)", rel, st.Uid, uid, owner))
	}
	if int(st.Gid) != gid {
		out = append(out, fmt.Sprintf("%s: group %d, want %d (qmail)", rel, st.Gid, gid))
	}
	if m := st.Mode & 0o7777; m != 0o600 {
		out = append(out, fmt.Sprintf("%s: mode %04o, want 0600", rel, m))
	}
	if l := linksLine(p, rel, &st, own, len(out) > 0); l != "" {
		out = append(out, l)
	}
	for _, l := range whoCannot(rel, p, accRead|accWrite, "readable and writable", []runner{runnerNamed(rs, owner)}, nil, own, "chown "+owner+"; chmod 600") {
		out = append(out, l+": "+effect)
	}
	return out
}

// triggerEffect says what a trigger qmail-send or qmail-queue cannot open
// costs, "" when both can.
func triggerEffect(p string, rs []runner) string {
	const wait = "new mail waits up to 25 minutes for the regular scan of the queue"
	fi, err := os.Lstat(p)
	if err != nil {
		return "qmail-send has none to read: " + wait
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		return "qmail-send does not read it: " + wait
	}
	if d, err := runnerNamed(rs, "qmails").denied(p, accRead|accWrite); err == nil && d != nil {
		return "qmail-send cannot open it: " + wait
	}
	// qmail-queue: set-uid qmailq, with its caller's groups.
	q := runnerNamed(rs, "qmailq")
	q.groups = nil
	if d, err := q.denied(p, accWrite); err == nil && d != nil {
		return "qmail-queue cannot wake qmail-send: " + wait
	}
	if fi.Mode()&0o004 != 0 {
		return "anyone can read it and take the wake-ups meant for qmail-send"
	}
	return ""
}

func checkEntry(root string, e Entry, own *owners, rs []runner) []string {
	out := compareEntry(root, e, own)
	if e.Path == "queue/lock/trigger" && len(out) > 0 {
		if eff := triggerEffect(filepath.Join(root, e.Path), rs); eff != "" {
			// On the kind's or the mode's line, not the links'.
			i := len(out) - 1
			if i > 0 && strings.Contains(out[i], " hard links, want 1") {
				i--
			}
			out[i] += ": " + eff
		}
	}
	return out
}

// compareEntry compares one path with its entry. A symbolic link is not
// followed below the root (the root itself, which the administrator
// named, is): it gets one line, without its owner or mode, since a chown
// or chmod of that name would change the link's target.
func compareEntry(root string, e Entry, own *owners) []string {
	p := filepath.Join(root, e.Path)
	stat, lstat := syscall.Lstat, os.Lstat
	if e.Path == "." {
		stat, lstat = syscall.Stat, os.Stat
	}
	var st syscall.Stat_t
	if err := stat(p, &st); err != nil {
		return []string{fmt.Sprintf("%s: %v", e.Path, err)}
	}
	var out []string
	fi, err := lstat(p)
	if err == nil && e.Path != "." && fi.Mode()&fs.ModeSymlink != 0 && linkFollowed(root, e.Path) {
		return followedEntry(root, e)
	}
	if err == nil {
		want := e.Kind
		if want == Prog {
			want = File
		}
		if k := kindOf(fi); k != want {
			l := fmt.Sprintf("%s: is a %s, want a %s", e.Path, kindName(fi), e.Kind)
			link := fi.Mode()&fs.ModeSymlink != 0
			switch {
			case link && rootDirs[filepath.Dir(e.Path)]:
				l += ": not followed, as " + notFollowed(root, e.Path, own)
			case link && e.Kind == Dir:
				l += ": not followed"
			}
			if e.Kind == Dir {
				l += "; nothing below it was checked"
			}
			if link {
				return []string{l}
			}
			out = append(out, l)
		}
	}
	uid, gid, err := own.resolve(e)
	if err != nil {
		return append(out, err.Error())
	}
	n := len(out)
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
	if l := linksLine(p, e.Path, &st, own, len(out) > n); l != "" {
		out = append(out, l)
	}
	return out
}

// linksLine names a file or FIFO (p, stat st) with more than one link in
// a directory that another user than root (or the owner of a tree of an
// ordinary user) can write, whose owner, group, mode or size must change
// (wrong), as the repair does not change it through that name (settle):
// a cache is replaced by a new file, a file with data is left alone. ""
// otherwise: one that is right already is left as it is.
func linksLine(p, rel string, st *syscall.Stat_t, own *owners, wrong bool) string {
	if !wrong || st.Nlink <= 1 || st.Mode&syscall.S_IFMT == syscall.S_IFDIR || st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		return ""
	}
	var dir syscall.Stat_t
	if syscall.Stat(filepath.Dir(p), &dir) == nil && (dir.Uid == 0 || own.shared && int(dir.Uid) == own.uid) && dir.Mode&0o022 == 0 {
		return ""
	}
	switch {
	case sendHeld[rel]:
		// Not while qmail-send runs (running.go).
		return fmt.Sprintf("%s: %d hard links, want 1 (a re-run with qmail-send stopped replaces it)", rel, uint64(st.Nlink))
	case cacheFiles[rel]:
		return fmt.Sprintf("%s: %d hard links, want 1 (a re-run replaces it)", rel, uint64(st.Nlink))
	}
	return fmt.Sprintf("%s: %d hard links, want 1: a re-run leaves it alone while it must change; remove the other link "+
		"and run qmail-install again", rel, uint64(st.Nlink))
}

// aliasesEffect is what an aliases database fastforward cannot read
// costs: it defers, and so does every delivery ~alias/.qmail-default
// makes, those to root and postmaster included.
const aliasesEffect = "fastforward defers every delivery through ~alias/.qmail-default"

// aliasesDB checks etc/aliases.cdb (newaliases makes it), when it
// exists: a regular file (symbolic links followed, as fastforward opens
// it) that, in a tree with qmail's users, the alias user can read.
func aliasesDB(root string, rs []runner, own *owners, blocked map[string]bool, shared bool) []string {
	rel := aliases.DBFile
	if wayBlocked(root, rel) {
		return nil
	}
	p := filepath.Join(root, rel)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		if why := notFollowed(root, rel, own); why != "" {
			return []string{fmt.Sprintf("%s: is a symbolic link, want a regular file: not followed, as %s: %s (put the file it names in its place)", rel, why, aliasesEffect)}
		}
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // fastforward finds no alias, and uses the Maildir
	case err != nil:
		return []string{fmt.Sprintf("%s: %v: %s", rel, err, aliasesEffect)}
	case !fi.Mode().IsRegular():
		return []string{fmt.Sprintf("%s: is a %s, want a regular file: %s (remove it and run newaliases)", rel, kindName(fi), aliasesEffect)}
	}
	var out []string
	if !shared {
		for _, l := range whoCannot(rel, p, accRead, "readable", []runner{runnerNamed(rs, "alias")}, blocked, own, "chmod 644") {
			out = append(out, l+": "+aliasesEffect)
		}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return out // root's own link: its target's mode is the administrator's
	}
	// The repair gives it mode 0644 (the line above says so, if any).
	wrong := st.Mode&0o7777 != 0o644
	if wrong && len(out) == 0 {
		out = append(out, fmt.Sprintf("%s: mode %04o, want 0644", rel, st.Mode&0o7777))
	}
	if l := linksLine(p, rel, &st, own, wrong); l != "" {
		out = append(out, l)
	}
	return out
}

// sendStops names, in -check's words, what keeps qmail-send from
// starting and the repair never changes, for the repair to say: a
// control file qmail-send reads that is no file, or, in a tree with
// qmail's users, that qmails cannot read. (-check itself names those in
// unreadableControls, with every reader.)
func sendStops(root string, own *owners) []string {
	if wayBlocked(root, "control/me") {
		return nil
	}
	var names []string
	for n, eff := range controlEffects {
		if strings.Contains(eff, effSend) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	// The readers' part: in a tree with qmail's users that qmails can
	// reach (a root it cannot, under a 0700 directory, is -check's).
	reader := !own.shared
	var qs runner
	if reader {
		qs = runnerNamed(runners(own.ids), "qmails")
		if d, err := qs.denied(root, accSearch); err != nil || d != nil {
			reader = false
		}
	}
	var out []string
	for _, n := range names {
		p := filepath.Join(root, "control", n)
		if l := notAFile(n, p); l != "" {
			out = append(out, l)
			continue
		}
		if !reader || n == "holdlocal" { // only its presence counts
			continue
		}
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		for _, l := range whoCannot("control/"+n, p, accRead, "readable", []runner{qs}, nil, own, "chmod 644") {
			out = append(out, l+": "+effSend)
		}
	}
	return out
}

// rcpthostsMissing is what -check and the repair say of a tree that is
// not new (writeControl) without control/rcpthosts, which the repair does
// not make there: qmail's default, which is no restriction.
const rcpthostsMissing = "control/rcpthosts: missing, so qmail-smtpd accepts mail for every domain, an open relay if it listens on the network; " +
	"list the domains this host takes mail for in control/rcpthosts, one a line: control/me, localhost, and those of control/locals " +
	"and control/virtualdomains (qmail-install makes it only in a new tree)"

// meMissing is what -check says of a tree that is not new without
// control/me: the repair makes me alone (writeControl).
const meMissing = "control/me: missing: qmail-remote and qmail-smtpd cannot work without it " +
	"(a re-run makes control/me, from -me or the host name, and no other control file, as the tree is not new)"

// missingControls names the missing control files of DefaultControl as
// the repair treats them (writeControl). A tree with etc/ids (Check's)
// is new to the repair when control/me and users/assign are both absent:
// it makes each, named with that re-run. In a tree that is not new, a
// missing one stays missing and qmail's default holds (me for
// defaultdomain, plusdomain and locals: no deviation), but a missing
// rcpthosts accepts every domain, which is said (rcpthostsMissing), and
// a missing me, which hqmail's programs need, is said too (meMissing:
// the repair makes it).
func missingControls(root string) []string {
	if wayBlocked(root, "control/me") {
		return nil
	}
	missing := func(rel string) bool {
		_, err := os.Lstat(filepath.Join(root, rel))
		return errors.Is(err, fs.ErrNotExist)
	}
	// A users/ the repair leaves alone counts as one with users/assign
	// (walker.assignExists).
	if missing("control/me") && !wayBlocked(root, "users/assign") && missing("users/assign") {
		var names []string
		for n := range DefaultControl("x") {
			names = append(names, n)
		}
		sort.Strings(names)
		var out []string
		for _, n := range names {
			if missing("control/" + n) {
				out = append(out, fmt.Sprintf("control/%s: missing (a re-run makes it, as a new install does)", n))
			}
		}
		return out
	}
	var out []string
	if missing("control/me") {
		out = append(out, meMissing)
	}
	if missing("control/rcpthosts") {
		out = append(out, rcpthostsMissing)
	}
	return out
}

// staleUsersCDB names a users/cdb that is not what users/assign compiles
// to, which the repair rebuilds (and a users/assign it cannot compile).
// A users/assign that is no regular file, or a link the repair does not
// follow, is the table's line. A cdb that qmail's own qmail-newu built
// from the same users/assign is no deviation either, though its bytes
// differ when a key repeats (=alice and =ALICE): qmail-newu writes a
// record for every line, where the repair keeps the first of each key;
// a lookup finds the same (sameLookups).
func staleUsersCDB(root string) []string {
	if wayBlocked(root, "users/assign") {
		return nil
	}
	p := filepath.Join(root, "users", "assign")
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() && !(fi.Mode()&fs.ModeSymlink != 0 && linkFollowed(root, "users/assign")) {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	want, err := usersCDB(b)
	if err != nil {
		return []string{fmt.Sprintf("%v: users/cdb cannot be rebuilt (the repair fails)", err)}
	}
	if got, err := os.ReadFile(filepath.Join(root, "users", "cdb")); err == nil && !bytes.Equal(got, want) && !sameLookups(got, want) {
		return []string{"users/cdb: not compiled from the users/assign there (a re-run rebuilds it, as qmail-newu does)"}
	}
	return nil
}

// sameLookups reports whether the databases a and b give every lookup the
// same answer: the same keys, each with the same data in its first
// record (the one a lookup finds), whatever later records of a key
// follow it, and each key found through the hash tables. Both are read
// as cdb_make lays a database out: the records from byte 2048 up to the
// first hash table, whose position the header's first pair gives.
func sameLookups(a, b []byte) bool {
	ka, ok := firstRecords(a)
	if !ok {
		return false
	}
	kb, ok := firstRecords(b)
	if !ok || len(ka) != len(kb) {
		return false
	}
	ra, err := cdb.NewReader(bytes.NewReader(a), int64(len(a)))
	if err != nil {
		return false
	}
	for k, d := range kb {
		if da, ok := ka[k]; !ok || !bytes.Equal(da, d) {
			return false
		}
		if got, found, err := ra.Get([]byte(k)); err != nil || !found || !bytes.Equal(got, d) {
			return false
		}
	}
	return true
}

// firstRecords reads the records of the cdb db in order and returns the
// data of the first record of each key; ok is false for a damaged one.
func firstRecords(db []byte) (map[string][]byte, bool) {
	if len(db) < 2048 {
		return nil, false
	}
	end := uint64(binary.LittleEndian.Uint32(db))
	if end < 2048 || end > uint64(len(db)) {
		return nil, false
	}
	first := map[string][]byte{}
	for pos := uint64(2048); pos < end; {
		if pos+8 > end {
			return nil, false
		}
		kl := uint64(binary.LittleEndian.Uint32(db[pos:]))
		dl := uint64(binary.LittleEndian.Uint32(db[pos+4:]))
		pos += 8
		if pos+kl+dl > end {
			return nil, false
		}
		k := string(db[pos : pos+kl])
		if _, seen := first[k]; !seen {
			first[k] = db[pos+kl : pos+kl+dl]
		}
		pos += kl + dl
	}
	return first, true
}
