package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/sched"
	"golang.org/x/sys/unix"
)

// errSendRunning refuses a queue change while qmail-send runs.
var errSendRunning = errors.New("qmail-send is running; stop it first: " +
	"messages are deleted or bounced only while qmail-send is stopped")

// lockOutSend takes the exclusive flock on queue/lock/sendmutex, so that no
// qmail-send runs (or starts) while the queue is changed. A qmail-send
// started meanwhile fails with "qmail-send is already running". The file
// is opened as a queue file (qhome.OpenQueueFile): queue/lock is qmailq's,
// and root never locks a file a link planted there points to.
func lockOutSend(root string) (unlock func(), err error) {
	path := filepath.Join(root, MutexFile)
	f, err := qhome.OpenQueueFile(path, os.O_RDONLY)
	if err != nil {
		return nil, openError(path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, errSendRunning
		}
		return nil, fmt.Errorf("unable to lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// DeleteMessage ends the deliveries of a preprocessed message while
// qmail-send is stopped (the caller holds the sendmutex lock): every
// pending record of its local and remote files is marked done, as
// qmail-send marks a finished delivery (one byte, T to D, in place), the
// file is synced and then removed, as qmail-send removes a channel file
// whose records are all done (qhome.RemoveQueueFile: run as root, a split
// directory qmails replaced with a symbolic link is never followed, for
// the removal as for the rewrite). info, mess and any bounce/ID are left
// alone: at its next start qmail-send finds a message with no channel
// file, sends the bounce of earlier failures if there is one, logs "end
// msg ID" and has qmail-clean remove it. It returns the number of
// recipients left undelivered.
func DeleteMessage(q string, id uint64) (int, error) {
	name := strconv.FormatUint(id, 10)
	if err := checkNotTodo(q, id); err != nil {
		return 0, err
	}
	if _, err := os.Lstat(filepath.Join(q, "info", qread.Sub(id), name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, errNoMessage
		}
		return 0, err
	}
	dropped := 0
	for _, ch := range []string{"local", "remote"} {
		dir := filepath.Join(q, ch, qread.Sub(id))
		n, err := markAllDone(filepath.Join(dir, name))
		if err != nil {
			return dropped, fmt.Errorf("%s/%s/%s: %w", ch, qread.Sub(id), name, err)
		}
		if n < 0 {
			continue // no such channel file
		}
		dropped += n
		if err := qhome.RemoveQueueFile(filepath.Join(dir, name)); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

var errNoMessage = errors.New("not in the queue")

// checkNotTodo refuses a message that has a todo/ID, whatever else it
// has: qmail-send preprocesses it (again) from todo/ID at its next start,
// making its channel files anew with every recipient pending and ignoring
// an info file left by a preprocessing cut short (spec/queue.md §6), so a
// delete or bounce marked in those files now would be undone, and a
// bounce sent besides. A todo/ID that cannot be looked at is refused too.
func checkNotTodo(q string, id uint64) error {
	_, err := os.Lstat(filepath.Join(q, "todo", strconv.FormatUint(id, 10)))
	switch {
	case err == nil:
		return fmt.Errorf("message %d is not preprocessed yet; start qmail-send and try again later", id)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return nil
}

// markAllDone overwrites the letter of every T record with D and syncs the
// file. It returns -1 when the file does not exist. Run as root on a file
// of a directory qmails owns, it refuses a symbolic link (in place of the
// file or of its split directory), a hard link, or anything but a regular
// file there (qhome.OpenQueueFile), and reads what it opened.
func markAllDone(path string) (int, error) {
	f, err := qhome.OpenQueueFile(path, os.O_RDWR)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return -1, nil
		}
		return 0, err
	}
	defer f.Close()
	b, err := qhome.ReadCapped(f)
	if err != nil {
		return 0, err
	}
	n := 0
	for off := 0; off < len(b); {
		end := bytes.IndexByte(b[off:], 0)
		if end < 0 {
			break // an incomplete last record is no recipient
		}
		if b[off] == 'T' {
			if _, err := f.WriteAt([]byte{'D'}, int64(off)); err != nil {
				return n, err
			}
			n++
		}
		off += end + 1
	}
	return n, f.Sync()
}

// del is "qmailctl delete ID...".
func (c *cmd) del(args []string) int {
	return c.perMessage("delete", args, func(id uint64) (int, string, error) {
		n, err := DeleteMessage(c.queueDir(), id)
		if err != nil {
			return n, "", err
		}
		return n, dropUnsendableBounce(c.queueDir(), id), nil
	}, "will not be delivered; qmail-send is not running and removes the message at its next start")
}

// dropUnsendableBounce removes, for a delete while qmail-send is
// stopped, the bounce of a message's earlier failures (bounce/ID) when it
// can never be sent (sched.UnsendableBounce): qmail-send would try to send
// it at every pass and keep the message for good; it removes one itself
// for a delete while it runs. It returns what the answer adds ("" when
// there was nothing to remove).
func dropUnsendableBounce(q string, id uint64) string {
	why := sched.UnsendableBounce(q, id)
	if why == "" {
		return ""
	}
	name := strconv.FormatUint(id, 10)
	if err := qhome.RemoveQueueFile(filepath.Join(q, "bounce", name)); err != nil {
		return fmt.Sprintf("; its earlier failures cannot be reported (%s) and bounce/%s could not be removed: %v", why, name, err)
	}
	return fmt.Sprintf("; its earlier failures are not reported (%s: bounce/%s removed)", why, name)
}

// perMessage runs "qmailctl VERB ID...": through qmail-send when it runs;
// otherwise with qmail-send locked out, act on each message in turn and
// print "message ID: N <done>".
func (c *cmd) perMessage(verb string, args []string, act func(id uint64) (int, string, error), done string) int {
	if len(args) == 0 {
		return c.fail(ExitUsage, "usage: qmailctl %s ID...", verb)
	}
	ids, err := parseIDs(args)
	if err != nil {
		return c.fail(ExitUsage, "%v", err)
	}
	unlock, err := lockOutSend(c.root)
	if errors.Is(err, errSendRunning) {
		return c.viaSend(verb, idStrings(ids))
	}
	if err != nil {
		return c.fail(ExitTemp, "%v", err)
	}
	defer unlock()
	code := ExitOK
	for _, id := range ids {
		n, note, err := act(id)
		switch {
		case errors.Is(err, errNoMessage):
			c.fail(ExitUsage, "message %d is not in the queue", id)
			code = max(code, ExitUsage)
		case err != nil:
			c.fail(ExitTemp, "unable to %s message %d: %v", verb, id, err)
			code = ExitTemp
		default:
			fmt.Fprintf(c.out, "message %d: %s %s%s\n", id, plural(n, "recipient"), done, note)
		}
	}
	if code == ExitOK {
		// Done, and waiting for qmail-send's next start: what exit 3
		// says for the hold flags too.
		code = ExitNotRunning
	}
	return code
}

// plural renders "1 recipient", "2 recipients".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
