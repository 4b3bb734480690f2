package install

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/aliases"
)

// apply creates e if missing and sets its owner and mode, through the
// walker (no link below the root followed). A path of the wrong kind is
// reported and left alone (with everything below it, for a directory),
// but a regular file where a FIFO belongs, which is replaced.
func (w *walker) apply(e Entry, own *owners) error {
	uid, gid, err := own.resolve(e)
	if err != nil {
		return err
	}
	if e.Kind == Dir {
		return w.applyDir(e, uid, gid)
	}
	return w.applyFile(e, uid, gid)
}

func (w *walker) applyDir(e Entry, uid, gid int) error {
	if e.Path != "." {
		parent, name, err := w.parent(e.Path)
		if err == errSkipped {
			return nil
		}
		if err != nil {
			return err
		}
		if _, exists, err := statAt(parent, name); err != nil {
			return fmt.Errorf("unable to stat %s: %v", w.path(e.Path), err)
		} else if !exists {
			if err := unix.Mkdirat(parent, name, 0o700); err != nil && err != unix.EEXIST {
				return fmt.Errorf("unable to create %s: %v", w.path(e.Path), err)
			}
		}
	}
	fd, err := w.dir(e.Path)
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
	if w.linked[e.Path] {
		return nil // root's own link: its target is left as it is
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return fixOwnerMode(fd, &st, uid, gid, e.Mode, w.path(e.Path))
}

func (w *walker) applyFile(e Entry, uid, gid int) error {
	dir, name, err := w.parent(e.Path)
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
	st, exists, err := statAt(dir, name)
	if err != nil {
		return fmt.Errorf("unable to stat %s: %v", w.path(e.Path), err)
	}
	if exists && w.follows(filepath.Dir(e.Path), &st) {
		// root's own link in root's directory.
		w.followLink(dir, e.Path)
		return nil
	}
	if exists && statKind(st.Mode) != e.Kind {
		// A wrong kind is repaired only for the FIFO (a plain file left
		// where the trigger belongs); anything else needs a human.
		if e.Kind != Fifo || st.Mode&unix.S_IFMT != unix.S_IFREG {
			w.skip(e.Path, e.Kind, &st)
			return nil
		}
		if w.leaveHeld(e.Path, "is a regular file, want a fifo") {
			return nil
		}
		if err := unix.Unlinkat(dir, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("unable to remove %s: %v", w.path(e.Path), err)
		}
		exists = false
	}
	if !exists {
		switch e.Kind {
		case File:
			_, err = w.createAt(dir, e.Path, e.Init, uid, gid, e.Mode)
		case Fifo:
			if err = unix.Mkfifoat(dir, name, 0o600); err == unix.EEXIST {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("unable to create %s: %v", w.path(e.Path), err)
		}
	}
	flags := unix.O_RDONLY
	if e.Path == "queue/lock/tcpto" {
		flags = unix.O_RDWR // its size is repaired
	}
	fd, st, err := openAt(dir, e.Path, flags)
	if err == unix.ELOOP {
		// Made a link since it was looked at.
		w.skip(e.Path, e.Kind, &unix.Stat_t{Mode: unix.S_IFLNK})
		return nil
	}
	if err != nil {
		return fmt.Errorf("unable to open %s: %v", w.path(e.Path), err)
	}
	defer unix.Close(fd)
	if statKind(st.Mode) != e.Kind {
		w.skip(e.Path, e.Kind, &st)
		return nil
	}
	// tcpto's size is repaired too: with extra links, by a new file (a
	// resize through this name would reach the other).
	extra := ""
	if e.Path == "queue/lock/tcpto" && st.Size != TcptoSize {
		extra = fmt.Sprintf("size %d, want %d", st.Size, TcptoSize)
	}
	replaced, err := w.settle(dir, fd, &st, e, uid, gid, extra)
	if err != nil || replaced || extra == "" || w.replaces(filepath.Dir(e.Path), &st) {
		return err
	}
	return fixTcptoSize(fd, &st, w.path(e.Path))
}

// fixTcptoSize gives queue/lock/tcpto (open read-write as fd) its size,
// under the lock its users take: the bytes past it are never read, and
// the missing ones read as empty entries.
func fixTcptoSize(fd int, st *unix.Stat_t, p string) error {
	if st.Size == TcptoSize {
		return nil
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("unable to lock %s: %v", p, err)
	}
	if err := unix.Ftruncate(fd, TcptoSize); err != nil {
		return fmt.Errorf("unable to resize %s: %v", p, err)
	}
	return nil
}

// repairSendFiles gives each of sendFiles that exists to qmails with mode
// 0600, as qmail-send makes them. They are not in the table, since they
// exist only once there is something to record; anything but a regular
// file is left alone and reported (heldmsgs: qmail-send does not start).
func (w *walker) repairSendFiles(own *owners) error {
	for _, f := range sendFiles {
		e := Entry{Path: "queue/bounce/" + f.name, Kind: File, Owner: "qmails", Group: "qmail", Mode: 0o600}
		if err := w.repairExisting(e, own, false, f.effect, "remove it"); err != nil {
			return err
		}
	}
	return nil
}

// repairQueuedLock gives an existing regular queue/lock/queued (the lock
// qmail-queued makes) to qmailq, group qmail, with mode 0600, as the
// service makes it: one a qmail-queued run by hand as root left to root
// keeps the service, started as qmailq, from opening it. Anything else
// there is left alone and reported, to be removed.
func (w *walker) repairQueuedLock(own *owners) error {
	e := Entry{Path: queuedLock, Kind: File, Owner: "qmailq", Group: "qmail", Mode: 0o600}
	return w.repairExisting(e, own, false, queuedEffect, "remove it")
}

// repairAliasesDB gives an existing regular etc/aliases.cdb (newaliases
// makes it) mode 0644, so that fastforward, as alias, can read it; its
// owner is kept.
func (w *walker) repairAliasesDB() error {
	e := Entry{Path: aliases.DBFile, Kind: File, Mode: 0o644}
	return w.repairExisting(e, nil, true, aliasesEffect, "remove it and run newaliases")
}

// repairExisting gives the regular file e.Path, when it exists, e's
// owner (its own when keepOwner) and mode. A link followed (root's own,
// in root's directory) is left as it is. Anything else there is left
// alone and reported, with what it costs (effect) and what to do (fix,
// for another kind than a link; "" for skip's words).
func (w *walker) repairExisting(e Entry, own *owners, keepOwner bool, effect, fix string) error {
	dir, name, err := w.parent(e.Path)
	if err == errSkipped {
		return nil
	}
	if err != nil {
		return err
	}
	st, exists, err := statAt(dir, name)
	if err != nil || !exists {
		return nil
	}
	if w.follows(filepath.Dir(e.Path), &st) {
		// root's own link in root's directory (users/assign,
		// etc/aliases.cdb kept elsewhere): read through, never changed.
		w.followLink(dir, e.Path)
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		w.leaveKind(e.Path, &st, effect, fix)
		return nil
	}
	fd, st, err := openAt(dir, e.Path, unix.O_RDONLY)
	if err != nil {
		return nil // gone or changed since: left alone
	}
	defer unix.Close(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // changed since: -check, or the next run, names it
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if !keepOwner {
		if uid, gid, err = own.resolve(e); err != nil {
			return err
		}
	}
	_, err = w.settle(dir, fd, &st, e, uid, gid, "")
	return err
}

// leaveKind reports the file rel that is no regular file (stat st) and
// leaves it alone: a link as skip does (it may name the real file: put
// that in its place), anything else with fix.
func (w *walker) leaveKind(rel string, st *unix.Stat_t, effect, fix string) {
	if effect == "" {
		w.skip(rel, File, st)
		return
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK && rel != queuedLock {
		// It may name the real file; a lock has no contents to keep.
		fix = "put the file it names in its place"
	}
	w.skipWith(rel, File, st, effect, fix)
}

// sendFileEffect is what is lost when qmail-send cannot read and write
// rel, one of sendFiles ("" for another file).
func sendFileEffect(rel string) string {
	for _, f := range sendFiles {
		if rel == "queue/bounce/"+f.name {
			return f.effect
		}
	}
	return ""
}
