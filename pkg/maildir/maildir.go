// Package maildir delivers one message into a Maildir the way qmail-local
// does (spec/delivery.md §4, "Maildir"): write the file under tmp/ with a
// name nobody else can be using, flush it to disk, link it into new/,
// flush new/, and remove the tmp/ name. A reader of new/ never sees a
// partial message, and success is reported only once both the file and
// the directory entry that names it are on disk.
//
// Unique names are "<sec>.M<usec>P<pid>Q<n>.<host>": seconds and
// microseconds of the delivery time, the process id, the number of
// deliveries this process has made (one qmail-local may deliver to the
// same Maildir several times within a second, which qmail's plain
// "<sec>.<pid>.<host>" could not do in a single process), and the host
// name with '/' and ':' written as "\057" and "\072". These are the
// fields the Maildir description recommends; readers treat the name as
// opaque.
//
// Every failure is temporary: the caller retries later.
package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// Report texts of qmail-local for Maildir failures (all exit 111).
const (
	TextChdir   = "Unable to chdir to maildir. (#4.2.1)"
	TextTimeout = "Timeout on maildir delivery. (#4.3.0)"
	TextRead    = "Unable to read message. (#4.3.0)"
	TextTemp    = "Temporary error on maildir delivery. (#4.3.0)"
)

// Knobs, variables so that tests can shorten them.
var (
	// Timeout bounds one whole delivery (qmail's 24 hour alarm).
	Timeout = 24 * time.Hour
	// Retry is the pause after a tmp/ name turned out to be in use.
	Retry = 2 * time.Second
	// Tries is how many names are tried before giving up.
	Tries = 3
	// now and hostname are replaced by tests.
	now      = time.Now
	hostname = os.Hostname
)

var seq atomic.Uint64

// UniqueName returns a new file name for tmp/ and new/.
func UniqueName() string {
	t := now()
	host, err := hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", t.Unix(), t.Nanosecond()/1000, os.Getpid(), seq.Add(1), host)
}

// readError marks a failure to read the message, as opposed to writing it.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

type tagReader struct{ r io.Reader }

func (t tagReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}

// Deliver writes head followed by everything read from msg as one new
// message in the Maildir dir (a path relative to the working directory, or
// absolute). It returns nil once the message is safely in dir/new, else a
// temporary *qerr.Error with qmail-local's text.
//
// The working directory is not changed: dir is opened once and every name
// is resolved relative to it.
func Deliver(dir string, head []byte, msg io.Reader) error {
	done := make(chan error, 1)
	g := &gate{dfd: -1}
	go func() { done <- deliver(dir, head, msg, g) }()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		if !g.abandon() {
			// The message is being linked into new/: that outcome, not
			// the time-out, is the delivery's.
			return <-done
		}
		return qerr.Temp(TextTimeout)
	}
}

// gate decides, once, between a delivery that links its message into new/
// and a time-out that abandons it. Without it an abandoned delivery could
// still link the message after the time-out was reported, and the retry
// would deliver it twice (qmail-local exits at its alarm, but in keep mode
// the process lives on). It also holds the Maildir's descriptor and the
// tmp/ name, so that a time-out removes the unfinished file at once even
// when the delivery stays stuck in a read or a write.
type gate struct {
	mu        sync.Mutex
	abandoned bool
	linking   bool
	dfd       int    // the Maildir, -1 when closed
	tmp       string // "tmp/NAME" once created
}

// created records the Maildir descriptor and the tmp/ file, and reports
// whether the delivery goes on. One abandoned before its file existed
// (abandon had nothing to remove) must not: it removes the file itself,
// rather than leave it in tmp/ for as long as its read of the message
// blocks.
func (g *gate) created(dfd int, tmp string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abandoned {
		return false
	}
	g.dfd, g.tmp = dfd, tmp
	return true
}

// close closes the Maildir descriptor, once.
func (g *gate) close(dfd int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	unix.Close(dfd)
	g.dfd = -1
}

// link reports whether the delivery may go on to link its message.
func (g *gate) link() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.linking = !g.abandoned
	return g.linking
}

// abandon reports whether the delivery was abandoned before linking; if
// so, its tmp/ file is gone.
func (g *gate) abandon() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.abandoned = !g.linking
	if g.abandoned && g.dfd >= 0 && g.tmp != "" {
		unix.Unlinkat(g.dfd, g.tmp, 0)
	}
	return g.abandoned
}

func deliver(dir string, head []byte, msg io.Reader, g *gate) error {
	// Opening dir/. needs exactly what chdir(dir) needs: every component
	// searchable, and dir itself a searchable directory.
	if dir == "" {
		return qerr.Wrap(unix.ENOENT, false, TextChdir)
	}
	dfd, err := unix.Open(strings.TrimSuffix(dir, "/")+"/.", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if qerr.TempErrno(err) {
			return qerr.Wrap(err, false, TextTemp)
		}
		return qerr.Wrap(err, false, TextChdir)
	}
	var name string
	var fd int
	for try := 1; ; try++ {
		name = UniqueName()
		fd, err = unix.Openat(dfd, "tmp/"+name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0644)
		if err == nil {
			break
		}
		if err != unix.EEXIST || try >= Tries {
			g.close(dfd)
			return qerr.Wrap(err, false, TextTemp)
		}
		time.Sleep(Retry)
	}
	tmp := "tmp/" + name
	fail := func(err error, text string) error {
		unix.Unlinkat(dfd, tmp, 0)
		g.close(dfd)
		return qerr.Wrap(err, false, text)
	}
	if !g.created(dfd, tmp) {
		// Timed out meanwhile: the delivery was reported deferred.
		unix.Close(fd)
		return fail(unix.ETIMEDOUT, TextTimeout)
	}

	f := os.NewFile(uintptr(fd), tmp)
	w := bufio.NewWriterSize(f, 64*1024)
	_, err = w.Write(head)
	if err == nil {
		_, err = io.Copy(w, tagReader{msg})
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		f.Close()
		var re readError
		if errors.As(err, &re) {
			return fail(re.err, TextRead)
		}
		return fail(err, TextTemp)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fail(err, TextTemp)
	}
	if err := f.Close(); err != nil {
		return fail(err, TextTemp)
	}
	if !g.link() {
		// Timed out meanwhile: the delivery was reported deferred.
		return fail(unix.ETIMEDOUT, TextTimeout)
	}
	// Any link failure is temporary, "file exists" included: the name
	// was free in tmp/, so new/ holding it means something is wrong.
	if err := unix.Linkat(dfd, tmp, dfd, "new/"+name, 0); err != nil {
		return fail(err, TextTemp)
	}
	if err := syncDir(dfd, "new"); err != nil {
		// Not durable: take the message back and let the sender retry.
		// A reader may have taken it already (renamed it into cur/):
		// then it is in the user's hands, and a retry would deliver it
		// twice; it counts as delivered. Any other failure to take it
		// back defers too: a duplicate rather than a loss.
		if uerr := unix.Unlinkat(dfd, "new/"+name, 0); uerr != unix.ENOENT {
			return fail(err, TextTemp)
		}
	}
	unix.Unlinkat(dfd, tmp, 0)
	g.close(dfd)
	return nil
}

// syncDir flushes the directory sub of dfd (a variable for the tests).
var syncDir = func(dfd int, sub string) error {
	fd, err := unix.Openat(dfd, sub, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.Fsync(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}
