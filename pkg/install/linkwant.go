package install

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hqmail/hqmail/pkg/hold"
	"golang.org/x/sys/unix"
)

// oldLinkWantNote is what a run says of a tree that has the
// queue/lock/linkwant an older qmailctl wrote (hold.OldLinkWantFile) and
// no control/linkwant (hold.LinkWantFile), where qmailctl records the
// last link event now: queue/lock is qmailq's, who could put back there a
// release root had recorded once (QA rtoday6), so it is not read at all.
// The files are left: a qmail-linkwatch started before the upgrade still
// records and reads its words there until it is restarted.
const oldLinkWantNote = hold.OldLinkWantFile + ", where an older qmailctl recorded the link's last event for the network hooks, " +
	"is no longer read (qmailctl keeps it in " + hold.LinkWantFile + " now, out of qmailq's reach): until an event is recorded there " +
	"(the next one, or qmailctl linkwant release run by hand while the link is up), a boot hold (qmailctl boot, control/startheld) " +
	"holds remote delivery at a start, as when no event was ever recorded; restart qmail-linkwatch if it runs, then remove " +
	hold.OldLinkWantFile + " and " + hold.OldLinkWantBootFile + " (left as they are)"

// staleLinkWantNote is what a run says of a tree whose
// queue/lock/linkwant, saying old, is newer than its control/linkwant,
// saying cur (linkWantWord's words): the tree went back to a release
// whose hooks and qmailctl record there (and do not read or update
// control/linkwant) and came forward again, so control/linkwant holds an
// event older than the link's last one, and a boot hold goes by it (QA
// rupgrade2: a hold recorded before the downgrade held all remote mail
// after the second upgrade, though the older release had recorded a
// release since).
func staleLinkWantNote(old, cur string) string {
	return hold.OldLinkWantFile + " (" + old + ") is newer than " + hold.LinkWantFile + " (" + cur + "): an older release's network hooks " +
		"or qmailctl recorded a later link event there, which is no longer read; a boot hold (qmailctl boot, control/startheld) goes by " +
		hold.LinkWantFile + " until the next event is recorded there: record the link's state by hand (qmailctl linkwant release while the link " +
		"is up, qmailctl linkwant hold while it is down) or wait for the next link event (with this release's network hooks in place); " +
		"restart qmail-linkwatch if it runs, then remove " + hold.OldLinkWantFile + " and " + hold.OldLinkWantBootFile + " (left as they are)"
}

// oldLinkWant says oldLinkWantNote, or staleLinkWantNote, through the
// run's log when it applies. It changes nothing.
func (w *walker) oldLinkWant() {
	if w.log == nil {
		return
	}
	lock, err := w.dir(filepath.Dir(hold.OldLinkWantFile))
	if err != nil {
		return
	}
	ctl, err := w.dir(filepath.Dir(hold.LinkWantFile))
	if err != nil {
		return
	}
	oldSt, old, err := statAt(lock, filepath.Base(hold.OldLinkWantFile))
	if err != nil || !old {
		return
	}
	curSt, cur, err := statAt(ctl, filepath.Base(hold.LinkWantFile))
	switch {
	case err != nil:
	case !cur:
		fmt.Fprintf(w.log, "qmail-install: note: %s\n", oldLinkWantNote)
	case oldSt.Mode&unix.S_IFMT == unix.S_IFREG && curSt.Mode&unix.S_IFMT == unix.S_IFREG && oldSt.Mtim.Nano() > curSt.Mtim.Nano():
		fmt.Fprintf(w.log, "qmail-install: note: %s\n",
			staleLinkWantNote(linkWantWord(lock, hold.OldLinkWantFile), linkWantWord(ctl, hold.LinkWantFile)))
	}
}

// linkWantWord says what the linkwant file rel in dir says: "says hold",
// "says release", or, for anything else, what it begins with (quoted) or
// why it cannot be read. A link there is not followed, a FIFO not waited
// on.
func linkWantWord(dir int, rel string) string {
	fd, err := unix.Openat(dir, filepath.Base(rel), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	defer unix.Close(fd)
	buf := make([]byte, 64)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	line, _, _ := strings.Cut(string(buf[:max(n, 0)]), "\n")
	switch w := strings.TrimSpace(line); w {
	case "hold", "release":
		return "says " + w
	case "":
		return "says nothing"
	default:
		return fmt.Sprintf("says %q", w)
	}
}
