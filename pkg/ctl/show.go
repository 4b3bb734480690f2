package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/sched"
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
// A message not yet preprocessed shows its todo envelope. An id that is not
// in the queue is reported (exit 100 once all ids are shown); a message that
// cannot be read exits 111. Nothing is changed.
func (c *cmd) show(ids []string) int {
	dir := control.Open(c.root).Path
	local, err := hold.Read(dir, hold.LocalFile)
	if err != nil {
		return c.fail(ExitTemp, "unable to read the hold flags: %v", err)
	}
	remote, err := hold.Read(dir, hold.RemoteFile)
	if err != nil {
		return c.fail(ExitTemp, "unable to read the hold flags: %v", err)
	}
	q := c.queueDir()
	held, _ := sched.LoadHeld(q)
	code := ExitOK
	for _, arg := range ids {
		parsed, err := parseIDs([]string{arg})
		if err != nil {
			c.fail(ExitUsage, "%v", err)
			code = max(code, ExitUsage)
			continue
		}
		id := parsed[0]
		m, found, err := qread.ReadMessage(q, id)
		if err != nil {
			c.fail(ExitTemp, "unable to read message %d: %v", id, err)
			code = ExitTemp
			continue
		}
		if !found {
			if t, ok := c.todo(q, id); ok {
				fmt.Fprintf(c.out, "message %d\n  queued %s (%s)\n  size   %d\n  from   <%s>\n  state  todo (not yet preprocessed by qmail-send; %s)\n",
					id, qdate.Qread(t.Queued), ago(c.now().Sub(t.Queued)), t.Size, qread.Safe(t.Sender), plural(t.Recipients, "recipient"))
				continue
			}
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

// todo reads todo/ID when the message is not preprocessed yet.
func (c *cmd) todo(q string, id uint64) (qread.Todo, bool) {
	if _, err := os.Stat(filepath.Join(q, "todo", strconv.FormatUint(id, 10))); errors.Is(err, fs.ErrNotExist) || err != nil {
		return qread.Todo{}, false
	}
	all, err := qread.ScanTodo(q)
	if err != nil {
		return qread.Todo{}, false
	}
	for _, t := range all {
		if t.ID == id && t.Err == nil {
			return t, true
		}
	}
	return qread.Todo{}, false
}
