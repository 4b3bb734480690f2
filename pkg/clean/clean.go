// Package clean implements qmail-clean (spec/scheduler.md §10, queue.md §6):
// the only program that removes a message's files from mess/, intd/ and
// todo/, on qmail-send's request. It runs as qmailq in QMAILHOME/queue,
// answers each request with one byte and, at start and every 30 requests,
// removes pid/ files left more than 36 hours ago by an interrupted
// qmail-queue.
package clean

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sigcatch"
	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// StaleAge is how old (by atime) a pid/ file must be before it is removed:
// 36 h, longer than qmail-queue's 24 h suicide timer.
const StaleAge = 129600 * time.Second

// SweepEvery is the number of requests between two sweeps of pid/.
const SweepEvery = 30

// Cleaner serves qmail-clean requests in a queue directory.
type Cleaner struct {
	Queue string           // the queue directory (QMAILHOME/queue)
	Now   func() time.Time // clock, for tests
}

// Sweep removes files in pid/ whose atime is older than StaleAge.
func (c *Cleaner) Sweep() {
	dir := filepath.Join(c.Queue, "pid")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	now := c.now()
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			continue
		}
		atime := time.Unix(st.Atim.Unix())
		if now.Sub(atime) > StaleAge {
			_ = os.Remove(p)
		}
	}
}

func (c *Cleaner) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// unlink removes a file; a file that is already gone counts as removed.
func unlink(p string) bool {
	err := syscall.Unlink(p) // one call: os.Remove would also try rmdir(2)
	return err == nil || errors.Is(err, fs.ErrNotExist)
}

// Handle performs one parsed request and returns the reply byte.
func (c *Cleaner) Handle(kind string, id uint64) byte {
	name := strconv.FormatUint(id, 10)
	if !unlink(filepath.Join(c.Queue, "intd", name)) {
		return spawnproto.CleanFail
	}
	var p string
	if kind == spawnproto.CleanFoop {
		p = filepath.Join(c.Queue, "mess", strconv.FormatUint(id%qhome.Split, 10), name)
	} else {
		p = filepath.Join(c.Queue, "todo", name)
	}
	if !unlink(p) {
		return spawnproto.CleanFail
	}
	return spawnproto.CleanDone
}

// Serve answers requests from in on out until in ends (then it returns
// nil) or a read/write error occurs. An input that ends inside a request
// ends the service as cleanly as one that ends between two: the partial
// request gets no answer, as in qmail, whose loop stops at the first
// request without its NUL and exits 0.
func (c *Cleaner) Serve(in io.Reader, out io.Writer) error {
	c.Sweep()
	r := bufio.NewReader(in)
	count := 0
	for {
		kind, id, err := spawnproto.ReadCleanRequest(r)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		reply := byte(spawnproto.CleanBad)
		switch {
		case err == nil:
			reply = c.Handle(kind, id)
		case errors.Is(err, spawnproto.ErrCleanRequest):
		default:
			return err
		}
		if _, err := out.Write([]byte{reply}); err != nil {
			return err
		}
		if count++; count >= SweepEvery {
			count = 0
			c.Sweep()
		}
	}
}

// Main runs qmail-clean for the tree at root: it changes to root/queue,
// serves fd 0 -> fd 1 and returns the exit code (0 at EOF, even inside a
// request; 111 on trouble: a read error other than EOF, a failed write).
//
// A TERM is taken and dropped (qmail's dies of it): a stop that signals
// the whole process group reaches qmail-clean with qmail-send, which then
// finishes its running deliveries and still removes what they complete
// (as the spawners do: spawn.Main).
func Main(root string, in io.Reader, out io.Writer) int {
	sigcatch.Drop(syscall.SIGTERM)
	q := filepath.Join(root, "queue")
	if err := os.Chdir(q); err != nil {
		return 111
	}
	c := &Cleaner{Queue: "."}
	if err := c.Serve(in, out); err != nil {
		return 111
	}
	return 0
}
