package qread

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Holds are the hold flags qmail-qread marks recipients with.
type Holds struct {
	Local, Remote hold.Flag
	// Msgs are the messages held by id (qmailctl hold ID): every recipient
	// not yet done is held.
	Msgs map[uint64]bool
}

// HoldError is trouble with one source of the hold marks (a hold flag
// file, the list of messages held by id): the recipients it would mark
// are not marked, the others are.
type HoldError struct {
	Unmarked string // what goes unmarked, naming the source
	Err      error
}

func (e *HoldError) Error() string { return e.Unmarked + " are not marked: " + e.Err.Error() }

func (e *HoldError) Unwrap() error { return e.Err }

// LoadHolds reads the hold marks of root: control/holdlocal, which holds
// all local delivery as long as it exists (it is not read: qmail-send and
// qmailctl only ask whether the name exists, os.Stat, so a directory or a
// file only root may read holds too), control/holdremote, and the messages
// held by id (queue/bounce/heldmsgs). Each source stands alone: one that
// cannot be read (or, for holdlocal, whose existence cannot be told)
// marks nothing and is reported in errs, and the others still mark.
func LoadHolds(root string) (h Holds, errs []error) {
	ctl := control.Open(root)
	local, err := ctl.Exists(hold.LocalFile)
	if err != nil {
		errs = append(errs, &HoldError{"local recipients held by control/" + hold.LocalFile, err})
	} else if local {
		h.Local = hold.ParseFile(hold.LocalFile, nil)
	}
	if h.Remote, err = hold.Read(ctl.Path, hold.RemoteFile); err != nil {
		errs = append(errs, &HoldError{"remote recipients held by control/" + hold.RemoteFile, err})
	}
	if h.Msgs, err = hold.ReadMsgs(filepath.Join(root, "queue")); err != nil {
		h.Msgs = nil
		errs = append(errs, &HoldError{"recipients of messages held by id (queue/bounce/" + hold.MsgsName + ")", err})
	}
	return h, errs
}

// Safe replaces every byte outside 32..126 with '_', as qmail-qread does.
func Safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

// HeldSuffix is appended to a recipient line whose delivery is held: on a
// held channel, or of a message held by id.
const HeldSuffix = " held"

// Format writes msgs in qmail-qread's format. Recipients not yet done on a
// held channel (holdlocal: every local one; holdremote: every remote one
// whose domain it lists) or of a message held by id get HeldSuffix. A message with trouble is printed
// as "warning: trouble with #ID: REASON" instead.
func Format(w io.Writer, msgs []Message, holds Holds) error {
	bw := bufio.NewWriter(w)
	for i := range msgs {
		formatMessage(bw, &msgs[i], holds)
	}
	return bw.Flush()
}

// formatMessage writes one message of Format's listing.
func formatMessage(bw *bufio.Writer, m *Message, holds Holds) {
	if m.Err != nil {
		fmt.Fprintf(bw, "warning: trouble with #%d: %v\n", m.ID, m.Err)
		return
	}
	fmt.Fprintf(bw, "%s  #%d  %d  <%s> ", qdate.Qread(m.Birth), m.ID, m.Size, Safe(m.Sender))
	if m.Bouncing {
		bw.WriteString(" bouncing")
	}
	bw.WriteString("\n")
	byID := holds.Msgs[m.ID]
	writeRecords(bw, "local", m.Local, func(string) bool { return byID || holds.Local.Set })
	writeRecords(bw, "remote", m.Remote, func(a string) bool { return byID || holds.Remote.HoldsAddress(a) })
}

func writeRecords(bw *bufio.Writer, channel string, recs []Record, held func(string) bool) {
	for _, r := range recs {
		if r.Done {
			bw.WriteString("  done")
		}
		bw.WriteString("\t" + channel + "\t" + Safe(r.Addr))
		if !r.Done && held(r.Addr) {
			bw.WriteString(HeldSuffix)
		}
		bw.WriteString("\n")
	}
}

// Main is qmail-qread: it lists the queue of root on stdout and returns the
// exit code (0; 111 when the queue cannot be read).
func Main(root string, stdout, stderr io.Writer) int {
	// qmail's qmail-qread reads no control file: trouble with a hold
	// flag must not stop the listing, only that flag's marks (LoadHolds).
	// When the queue cannot be read either, its fatal line says what
	// matters (whoever cannot read heldmsgs cannot read the queue).
	// The listing is written as the queue is read (ScanEach): memory does
	// not grow with the queue.
	holds, herrs := LoadHolds(root)
	bw := bufio.NewWriter(stdout)
	err := ScanEach(filepath.Join(root, "queue"), func(m *Message) { formatMessage(bw, m, holds) })
	// Flushed before the warning, so that it never lands inside a line of
	// the listing when both go to one terminal or file.
	ferr := bw.Flush()
	if err == nil {
		for _, herr := range herrs {
			fmt.Fprintf(stderr, "qmail-qread: warning: %v\n", herr)
		}
	}
	if ferr != nil {
		fmt.Fprintf(stderr, "qmail-qread: fatal: unable to write output: %v\n", ferr)
		return 111
	}
	if err != nil {
		fatal(stderr, "qmail-qread", root, err)
		return 111
	}
	return 0
}

// fatal says why the queue of root could not be read, and, in a source
// checkout's bin/ that was never installed, which tree to use instead.
func fatal(stderr io.Writer, prog, root string, err error) {
	if why := qhome.Uninstalled(root, prog); why != "" {
		fmt.Fprintf(stderr, "%s: fatal: %s\n", prog, why)
		return
	}
	fmt.Fprintf(stderr, "%s: fatal: %v\n", prog, err)
}

// StatMain is qmail-qstat: two lines of counts on stdout; 111 when the
// queue cannot be read.
func StatMain(root string, stdout, stderr io.Writer) int {
	c, err := Count(filepath.Join(root, "queue"))
	if err != nil {
		fatal(stderr, "qmail-qstat", root, err)
		return 111
	}
	_, err = io.WriteString(stdout, "messages in queue: "+strconv.Itoa(c.Messages)+
		"\nmessages in queue but not yet preprocessed: "+strconv.Itoa(c.Todo)+"\n")
	if err != nil {
		fmt.Fprintf(stderr, "qmail-qstat: fatal: unable to write output: %v\n", err)
		return 111
	}
	return 0
}
