package ctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/sched"
)

// BounceText is the failure report given for every recipient of a message
// bounced with "qmailctl bounce".
// It is the text qmail-send uses for the same command while it runs.
const BounceText = sched.AdminBounceText

// BounceMessage returns every pending recipient of a preprocessed message
// to its sender while qmail-send is stopped (the caller holds the sendmutex
// lock): a failure paragraph per pending recipient is appended to
// bounce/ID (owned by qmails, mode 0600, synced), then the message is
// treated as by DeleteMessage. At its next start qmail-send sends the bounce
// (with the paragraphs of earlier failures) and removes the message.
func BounceMessage(root string, id uint64) (int, error) {
	q := filepath.Join(root, "queue")
	name := strconv.FormatUint(id, 10)
	// Before anything is appended to bounce/ID.
	if err := checkNotTodo(q, id); err != nil {
		return 0, err
	}
	m, found, err := qread.ReadMessage(q, id)
	switch {
	case err != nil:
		return 0, err
	case !found:
		return 0, errNoMessage
	case m.Err != nil:
		return 0, m.Err
	}
	lines, _, err := control.Open(root).ReadList("virtualdomains")
	if err != nil {
		return 0, fmt.Errorf("unable to read control/virtualdomains: %w", err)
	}
	// The paragraphs qmail-send would write (sched: one formatter, one
	// virtual-domain table).
	vdoms := sched.VirtualDomains(lines)
	var report []byte
	for _, r := range append(m.Local, m.Remote...) {
		if !r.Done {
			report = append(report, sched.BounceParagraph(sched.Unvirtual(vdoms, r.Addr), BounceText)...)
		}
	}
	if len(report) > 0 {
		if err := appendBounce(root, filepath.Join(q, "bounce", name), report); err != nil {
			return 0, fmt.Errorf("unable to append to bounce/%s: %w", name, err)
		}
	}
	return DeleteMessage(q, id)
}

// appendBounce appends to bounce/ID as qmail-send would (O_APPEND, mode
// 0600), giving a new file to qmails when run as root. qmail-send is not
// running (it makes its own bounces), so nobody else appends, and a write
// cut short is cut back whole (qhome.AppendWhole): a later run does not
// put the whole paragraph behind its first part.
func appendBounce(root, path string, data []byte) error {
	var prep func(*os.File) error
	if os.Geteuid() == 0 {
		prep = func(f *os.File) error {
			ids, err := qhome.LoadIDs(root)
			if err != nil {
				return err
			}
			return f.Chown(ids.Qmails.UID, ids.Qmails.GID)
		}
	}
	return qhome.AppendWhole(path, data, 0o600, prep)
}

// bounce is "qmailctl bounce ID...".
func (c *cmd) bounce(args []string) int {
	return c.perMessage("bounce", args, func(id uint64) (int, string, error) {
		n, err := BounceMessage(c.root, id)
		return n, "", err
	}, "bounced; qmail-send is not running and sends the bounce at its next start")
}
