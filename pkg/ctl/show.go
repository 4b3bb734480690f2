package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qread"
)

// show prints the messages named by ids in detail:
//
//	message ID
//	  birth  DATE (AGE ago)
//	  size   SIZE
//	  from   <SENDER>
//	  state  STATE
//	  local  ADDRESS  pending|held|done
//	  remote ADDRESS  pending|held|done
//
// A message with a todo/ID is not preprocessed yet and shows its todo
// envelope, even when an info file from an earlier, interrupted
// preprocessing is there too. An id that is not
// in the queue is reported (exit 100 once all ids are shown); a message that
// cannot be read exits 111; a hold flag or heldmsgs that cannot be read
// is warned about (listingHolds). Nothing is changed.
func (c *cmd) show(ids []string) int {
	local, remote, held, err := c.listingHolds()
	if err != nil {
		return c.fail(ExitTemp, "unable to read the hold flags: %v", err)
	}
	q := c.queueDir()
	code := ExitOK
	for _, arg := range ids {
		parsed, err := parseIDs([]string{arg})
		if err != nil {
			c.fail(ExitUsage, "%v", err)
			code = max(code, ExitUsage)
			continue
		}
		id := parsed[0]
		// todo/ID first, as qmail-send looks: while it exists, an info
		// file and channel files beside it are a preprocessing that
		// was cut short (or is under way), made anew from todo/ID
		// (spec/queue.md §6); what they say is not the message's state.
		if t, ok := c.todo(q, id); ok {
			if t.Err != nil {
				c.fail(ExitTemp, "trouble with message %d: %v", id, t.Err)
				code = ExitTemp
				continue
			}
			state := "todo (not yet preprocessed by qmail-send; " + plural(t.Recipients, "recipient") + ")"
			if held[id] {
				state += " (held by qmailctl hold " + strconv.FormatUint(id, 10) + ")"
			}
			fmt.Fprintf(c.out, "message %d\n  queued %s (%s)\n  size   %d\n  from   <%s>\n  state  %s\n",
				id, qdate.Qread(t.Queued), ago(c.now().Sub(t.Queued)), t.Size, qread.Safe(t.Sender), state)
			continue
		}
		m, found, err := qread.ReadMessage(q, id)
		if err != nil {
			c.fail(ExitTemp, "unable to read message %d: %v", id, err)
			code = ExitTemp
			continue
		}
		if !found {
			c.fail(ExitUsage, "message %d is not in the queue", id)
			code = max(code, ExitUsage)
			continue
		}
		if m.Err != nil {
			c.fail(ExitTemp, "trouble with message %d: %v", id, m.Err)
			code = ExitTemp
			continue
		}
		state := messageState(&m, local, remote)
		if held[id] {
			state += " (held by qmailctl hold " + strconv.FormatUint(id, 10) + ")"
		}
		fmt.Fprintf(c.out, "message %d\n  birth  %s (%s)\n  size   %d\n  from   <%s>\n  state  %s\n",
			id, qdate.Qread(m.Birth), ago(c.now().Sub(m.Birth)), m.Size, qread.Safe(m.Sender), state)
		for _, r := range m.Local {
			fmt.Fprintf(c.out, "  local  %s  %s\n", qread.Safe(r.Addr), recState(r, local.Set || held[id]))
		}
		for _, r := range m.Remote {
			fmt.Fprintf(c.out, "  remote %s  %s\n", qread.Safe(r.Addr), recState(r, remote.HoldsAddress(r.Addr) || held[id]))
		}
	}
	return code
}

func recState(r qread.Record, held bool) string {
	switch {
	case r.Done:
		return "done"
	case held:
		return "held"
	}
	return "pending"
}

// todo reads todo/ID of a message not yet preprocessed; ok is false when
// there is no todo/ID (or it went while we looked: preprocessed meanwhile).
// Trouble with the message's files is in t.Err.
func (c *cmd) todo(q string, id uint64) (t qread.Todo, ok bool) {
	if _, err := os.Lstat(filepath.Join(q, "todo", strconv.FormatUint(id, 10))); errors.Is(err, fs.ErrNotExist) {
		return qread.Todo{}, false
	} else if err != nil {
		return qread.Todo{ID: id, Err: err}, true
	}
	return qread.ReadTodo(q, id)
}

// todoIDs lists the ids in todo/: messages qmail-send preprocesses (again)
// whatever info file they have. Read it before the info files, so that a
// message preprocessed in between is found in one or the other.
func todoIDs(q string) map[uint64]bool {
	ids := map[uint64]bool{}
	ents, _ := os.ReadDir(filepath.Join(q, "todo"))
	for _, e := range ents {
		if id, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && id != 0 {
			ids[id] = true
		}
	}
	return ids
}
