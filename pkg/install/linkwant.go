package install

import (
	"fmt"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/hold"
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

// oldLinkWant says oldLinkWantNote through the run's log when it applies.
// It changes nothing.
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
	_, old, err := statAt(lock, filepath.Base(hold.OldLinkWantFile))
	if err != nil || !old {
		return
	}
	if _, cur, err := statAt(ctl, filepath.Base(hold.LinkWantFile)); err == nil && !cur {
		fmt.Fprintf(w.log, "qmail-install: note: %s\n", oldLinkWantNote)
	}
}
