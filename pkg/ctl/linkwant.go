package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
)

// linkWant is "qmailctl linkwant [hold|release|apply [nowait]]": the
// network hooks record the state the last link event wants in
// control/linkwant (hold.LinkWantFile), and their background job reads
// it back and applies it, through qmailctl. The word is written with
// hold.WriteLinkWant, as the hold flags are (qhome.ReplaceFile: a
// temporary file made anew, flushed, renamed; no link followed), and
// read with hold.ReadLinkWant (no link, a regular file, and root's, the
// tree owner's or this user's); only "hold" or "release" is ever
// printed. It was kept in queue/lock, qmailq's directory, where qmailq
// could save a release root had recorded and put it back after the next
// ip-down's hold (QA rtoday6); queue/lock/linkwant is not read any more.
//
// Recording and applying both take the control directory's lock (lockDir),
// the one every hold and release takes: apply reads the word, changes the
// flag and signals qmail-send under it, and lets it go before it waits
// for qmail-send's confirmation. So once a word is recorded, no apply that
// read the word before it is still changing the flag: a release decided
// for an earlier ip-up cannot overtake the hold a later ip-down recorded,
// and the ip-down does not wait for qmail-send to answer the release.
func (c *cmd) linkWant(args []string) int {
	switch {
	case len(args) == 1 && (args[0] == "hold" || args[0] == "release"):
		unlock, err := lockDir(control.Open(c.root).Path, c.timeout+lockWait)
		if err != nil {
			return c.fail(ExitTemp, "unable to write %s: %v", hold.LinkWantFile, err)
		}
		defer unlock()
		if err := hold.WriteLinkWant(c.root, args[0]); err != nil {
			return c.fail(ExitTemp, "unable to write %s: %v", hold.LinkWantFile, err)
		}
		return ExitOK
	case len(args) == 1 && args[0] == "apply":
		return c.applyLinkWant(true)
	case len(args) == 2 && args[0] == "apply" && args[1] == "nowait":
		return c.applyLinkWant(false)
	case len(args) == 0:
		w, err := c.readLinkWant()
		if err != nil {
			return c.fail(ExitTemp, "%v", err)
		}
		fmt.Fprintln(c.out, w)
		return ExitOK
	}
	return c.fail(ExitUsage, "usage: qmailctl linkwant [hold|release|apply [nowait]]")
}

// readLinkWant returns what control/linkwant says, "hold" or "release".
func (c *cmd) readLinkWant() (string, error) {
	b, err := hold.ReadLinkWant(c.root, hold.LinkWantFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist: no link event recorded", hold.LinkWantFile)
	}
	var fe *hold.ForeignLinkWantError
	if errors.As(err, &fe) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("unable to read %s: %v", hold.LinkWantFile, err)
	}
	w := string(bytes.TrimSpace(b))
	if w != "hold" && w != "release" {
		return "", fmt.Errorf("%s says neither hold nor release", hold.LinkWantFile)
	}
	return w, nil
}

// applyLinkWant is "qmailctl linkwant apply [nowait]": under the control
// directory's lock it reads linkwant and holds or releases remote delivery
// as it says, exactly as "hold remote" or "release remote" would. The word
// applied is printed first, alone on its line (before any warning or
// error, so a hook reading both streams finds it on the first line), then
// the hold state as hold prints it. nowait signals qmail-send without
// waiting for its confirmation and lets the lock go at once: a down hook
// makes its hold before it returns (its caller may kill what it leaves
// behind) and waits for qmail-send in the background.
func (c *cmd) applyLinkWant(wait bool) int {
	dir := control.Open(c.root).Path
	lockUnlock, err := lockDir(dir, c.timeout+lockWait)
	if err != nil {
		return c.fail(ExitTemp, "unable to change control/%s: %v", hold.RemoteFile, err)
	}
	var once sync.Once
	unlock := func() { once.Do(lockUnlock) }
	defer unlock()
	w, err := c.readLinkWant()
	if err != nil {
		return c.fail(ExitTemp, "nothing applied: %v", err)
	}
	afterLinkWantRead()
	fmt.Fprintln(c.out, w)
	return c.holdLocked(dir, "remote", w == "hold", nil, wait, unlock)
}

// afterLinkWantRead runs between apply's reading of linkwant and its change
// of the flag, with the lock held (tests record another word there).
var afterLinkWantRead = func() {}
