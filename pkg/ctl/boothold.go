package ctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// bootSteps are what a boot hold does at each of its steps (bootHold),
// each called with the control directory's lock held and its path.
type bootSteps struct {
	// released: a network hook released remote delivery since the
	// machine booted; nothing is held.
	released func(dir string)
	// refused, if set, is told why a linkwant that is there was not
	// read (hold.LinkWantRefused: a file of another user), before the
	// hold: a release recorded in it is not taken, and the admin
	// learns why the boot holds.
	refused func(err error)
	// hold makes the hold. An error ends the boot hold with it, and
	// nothing is taken back.
	hold func(dir string) error
	// takeBack undoes the hold as the hook's apply would: a release was
	// recorded while the hold was made.
	takeBack func(dir string) error
}

// bootHold is the one implementation of the boot hold, for qmailctl boot
// and for qmail-start's control/startheld (StartHeld): remote delivery
// held at start, unless a network hook has released it since the machine
// booted (hold.ReleasedSinceBoot: the link came up before qmail did, or
// qmail is restarted while online, and no later link event would release
// a hold made now).
//
// The look at the last link event, the hold and the look again are made
// under the control directory's lock (control/lock, lockDir), the one a
// hook's "qmailctl linkwant release" (recording) and "linkwant apply"
// take: a hook's release is either recorded before the look, and nothing is
// held, or after the hold, and its apply, which follows, releases it. No
// release is undone, whatever holdremote held before (domains held by
// name, or everything after the last ip-down).
//
// A release recorded while the hold is made by a writer that does not
// take the lock (a hook or an admin writing control/linkwant itself) is
// told by linkwant's change since the look
// (hold.LinkWantStamp: its word, boot id or file), not by what holdremote
// held before: takeBack then releases as that hook's apply would.
func bootHold(root string, wait time.Duration, s bootSteps) error {
	dir := control.Open(root).Path
	unlock, err := lockDir(dir, wait)
	if err != nil {
		return err
	}
	defer unlock()
	if hold.ReleasedSinceBoot(root) {
		s.released(dir)
		return nil
	}
	if err := hold.LinkWantRefused(root); err != nil && s.refused != nil {
		s.refused(err)
	}
	seen := hold.ReadLinkWantStamp(root)
	afterBootCheck()
	if err := s.hold(dir); err != nil {
		return err
	}
	if hold.ReadLinkWantStamp(root) != seen && hold.ReleasedSinceBoot(root) {
		return s.takeBack(dir)
	}
	return nil
}

// afterBootCheck runs in a boot hold between its look at the link's last
// event and its hold, with the lock held (tests record a release there,
// as a writer that does not take the lock would).
var afterBootCheck = func() {}

// StartHeld applies control/startheld for qmail-start (qmail-start(8),
// START HELD), through bootHold as qmailctl boot does: when startheld
// exists, remote delivery is held unless a network hook has released it
// since the machine booted. What is held is what startheld says, read as
// a hold file: everything when it is empty or lists no domain, otherwise
// the domains it lists. A missing control/holdremote is created with
// startheld's contents ("1\n" when it is empty), mode 0644, flushed; an
// existing one is edited as "qmailctl hold remote [DOMAIN...]" does
// ("*" put above the domains held by name, or the domains added). It
// reports whether control/holdremote holds more than before.
//
// The caller has made sure that no qmail-send is known to run (one that
// sendlock.Locate names; qmail-start's startHeldIfStopped): none is told.
func StartHeld(root string) (bool, error) { return StartHeldTo(root, io.Discard) }

// StartHeldTo is StartHeld, with what qmailctl would note on its standard
// error written to warn as "qmail-start: note: ...": a holdremote that
// was a symbolic link is a file of its own now, the link's target left as
// it was (editHold never writes through a link).
func StartHeldTo(root string, warn io.Writer) (bool, error) {
	dir := control.Open(root).Path
	b, err := qhome.ReadRegular(filepath.Join(dir, "startheld")) // a FIFO must not stop the boot
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want := hold.Parse(b)
	var domains []string // nil: everything
	if !want.All {
		domains = want.Domains
	}
	var before hold.Flag
	var changed bool
	err = bootHold(root, lockWait, bootSteps{
		released: func(string) {},
		refused: func(err error) {
			fmt.Fprintf(warn, "qmail-start: note: %v\n", err)
		},
		hold: func(dir string) error {
			var err error
			var link string
			before, changed, link, err = startHold(dir, b, domains)
			if link != "" {
				fmt.Fprintf(warn, "qmail-start: note: control/%s was a symbolic link to %s: it is a file of its own now, and %s is left as it was\n",
					hold.RemoteFile, link, link)
			}
			return err
		},
		takeBack: func(dir string) error {
			changed = false
			// As the hook's apply: the hold of everything goes, the
			// domains held by name before stay.
			if _, err := editHold(dir, hold.RemoteFile, false, nil); err != nil {
				return err
			}
			var added []string
			for _, d := range domains {
				if !slices.Contains(before.Domains, hold.CanonDomain(d)) {
					added = append(added, d)
				}
			}
			if len(added) == 0 {
				return nil
			}
			_, err := editHold(dir, hold.RemoteFile, false, added)
			if errors.Is(err, errAllHeld) {
				return nil // held by a file of junk before: nothing was added
			}
			return err
		},
	})
	return changed, err
}

// startHold is StartHeld's hold, under the lock: it returns holdremote as
// it was before, whether it changed, and the target of the symbolic link
// it replaced, if it was one.
func startHold(dir string, startheld []byte, domains []string) (hold.Flag, bool, string, error) {
	before, err := hold.Read(dir, hold.RemoteFile)
	if err != nil {
		return before, false, "", err
	}
	if _, err := os.Lstat(filepath.Join(dir, hold.RemoteFile)); errors.Is(err, fs.ErrNotExist) {
		if len(startheld) == 0 {
			startheld = []byte("1\n")
		}
		err := createFlag(filepath.Join(dir, hold.RemoteFile), startheld)
		if !errors.Is(err, fs.ErrExist) {
			return before, err == nil, "", err
		}
		// Made meanwhile by a writer without the lock: edited as below.
	}
	res, err := editHold(dir, hold.RemoteFile, true, domains)
	return before, res.Changed, res.ReplacedLink, err
}

// createFlag creates the flag file path (O_EXCL, mode 0644 whatever the
// umask, flushed, its directory flushed) with contents b.
func createFlag(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil { // umask 077 is in force
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	qhome.SyncDir(filepath.Dir(path)) // as qmail-start always did: the file is there
	return nil
}
