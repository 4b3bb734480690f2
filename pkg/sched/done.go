package sched

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

// addBounce appends a failure paragraph to bounce/ID, retrying every 10 s
// until it succeeds (qmail's behaviour: the report must not be lost).
// The paragraph is on disk before it returns, and so is the file's name
// when this made the file: the caller marks the recipient done next, and
// a crash that kept that mark, or the channel file's removal, but not the
// paragraph would lose the failure notice (qmail does not flush it).
//
// Why a try failed is logged before qmail's alert, once for each new
// reason, so that the log tells a full disk from a FIFO, directory or
// link put in bounce/ID's place, which waits for the administrator. The
// recipient is not marked done meanwhile (the caller does that once this
// returns): no failure notice loses its paragraph.
func (s *Sched) addBounce(id uint64, recip, text string) {
	p := BounceParagraph(s.cf.unvirtual(recip), text)
	bn := fnFlat("bounce", id)
	n := s.path(bn)
	var a appending
	said := ""
	for {
		err := a.appendRest(n, p)
		if err == nil {
			return
		}
		if why := readReason(err); why != said {
			said = why
			s.log.line("warning: unable to append to ", bn, ": ", why)
		}
		s.sleepRetry("alert: unable to append to bounce message; HELP! sleeping...")
	}
}

// appending is one paragraph's progress through appendRest's tries.
type appending struct {
	done int  // bytes of the paragraph written
	made bool // a try made the file, so its directory needs a flush
}

// syncFile and syncDir flush a file and a directory; variables so that
// tests can see the flushes.
var (
	syncFile = (*os.File).Sync
	syncDir  = qhome.SyncDir
)

// appendRest appends to file name what of p is not written yet
// (p[a.done:]), so that a write cut short (a full disk) is taken up where
// it stopped, as qmail does, instead of starting the paragraph again behind
// its first part. Then it flushes the file, and its directory if a try
// made the file; a failed flush is an error, tried again as a failed
// write is.
//
// An existing file is opened as a queue file (qhome.OpenQueueFile):
// non-blocking, so that a FIFO there does not hold qmail-send in open(2)
// until a reader comes (with none the open fails at once), and
// regular only, so that no paragraph goes into a pipe (with a reader
// there it did, and the recipient was then marked done: the failure
// notice lost it), a device or through a link. Anything else is
// qhome.ErrNotRegular (or ErrSymlink, ErrHardLink), an error tried again
// like any other.
func (a *appending) appendRest(name string, p []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		a.made = true
	} else if os.IsExist(err) {
		f, err = qhome.OpenQueueFile(name, os.O_WRONLY|os.O_APPEND)
	}
	if err != nil {
		return err
	}
	k, err := f.Write(p[a.done:])
	a.done += k
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && a.made {
		err = syncDir(filepath.Dir(name))
	}
	return err
}

// messDone finishes a message whose channel files are gone
// (spec/scheduler.md §8).
func (s *Sched) messDone(id uint64) {
	if s.ending(id) {
		// Being removed (the done list may hold it twice). Look again
		// once that is over rather than drop the entry: the removal's
		// last step frees the inode, so a new message may have this id
		// already, queued and preprocessed before the loop saw the
		// removal end, and this entry may be its only one (a message
		// without recipients goes straight to the done list). For the
		// old message the second look finds no info file and does
		// nothing.
		s.done.insert(id, s.now()+1)
		return
	}
	retry := func() { s.done.insert(id, s.now()+sleepSysfail) }
	// A file that cannot be looked at is warned about at each retry,
	// as qmail's messdone does.
	statFailed := func(name string) {
		s.statLater(name)
		retry()
	}
	for c := 0; c < 2; c++ {
		n := fnChan(c, id)
		if _, err := os.Stat(s.path(n)); err == nil {
			return
		} else if !isNoent(err) {
			statFailed(n)
			return
		}
	}
	todo := fnFlat("todo", id)
	if _, err := os.Stat(s.path(todo)); err == nil {
		return
	} else if !isNoent(err) {
		statFailed(todo)
		return
	}
	info := fnSplit("info", id)
	if _, err := os.Stat(s.path(info)); err != nil {
		if !isNoent(err) {
			statFailed(info)
		}
		return
	}
	if !s.injectBounce(id) {
		retry()
		return
	}
	s.log.line("end msg ", utoa(id))
	s.forget(id)
	s.remove(removal{id: id, info: true}) // info, then foop/ID; then removedEvent
}

// injectBounce sends bounce/ID back to the sender, if it exists. It
// reports false when it has to be tried again later. The bounce is
// streamed into qmail-queue: bounce/ID is read through fixed buffers
// (bounce.go), never whole, however many recipients it reports.
func (s *Sched) injectBounce(id uint64) bool {
	bn := fnFlat("bounce", id)
	rf, err := qhome.OpenRegular(s.path(bn), os.O_RDONLY)
	if err != nil {
		if isNoent(err) {
			return true
		}
		s.log.line("warning: unable to read ", bn) // qmail says stat; the read is what fails
		return false
	}
	defer rf.Close()
	st, err := rf.Stat()
	if err != nil {
		s.log.line("warning: unable to read ", bn)
		return false
	}
	sender, _, ok := s.getinfo(id)
	if !ok {
		s.log.line("warning: unable to read ", fnSplit("info", id))
		return false
	}
	if strings.HasSuffix(sender, "-@[]") {
		sender = sender[:len(sender)-4]
	}
	switch {
	case sender == "#@[]":
		s.log.line("triple bounce: discarding ", bn)
	case sender == "" && s.cf.doublebounceto == "":
		// An empty first line in control/doublebounceto turns double
		// bounces off, as in qmail (its recipient would be "@host").
		s.log.line("double bounce: discarding ", bn)
	default:
		mn := fnSplit("mess", id)
		mess, err := qhome.OpenRegular(s.path(mn), os.O_RDONLY)
		if err != nil {
			s.log.line("warning: unable to open ", mn)
			return false
		}
		defer mess.Close()
		b := &bounce{
			date:       time.Unix(s.now(), 0),
			nonce:      strconv.FormatInt(time.Now().UnixNano(), 36),
			from:       s.cf.bouncefrom,
			host:       s.cf.bouncehost,
			sender:     sender,
			report:     io.NewSectionReader(rf, 0, st.Size()),
			dbto:       s.cf.doublebounceto + "@" + s.cf.doublebouncehost,
			dsn:        s.cf.dsn,
			orig:       mess,
			id:         id,
			reportHost: s.cf.bouncehost,
		}
		// The first pass (what a DSN's head must say of the report)
		// comes before qmail-queue runs, so that a report that cannot
		// be read is said so.
		if err := b.prepare(); err != nil {
			s.log.line("warning: unable to read ", bn)
			return false
		}
		envSender, recip := "", sender
		if sender == "" {
			envSender, recip = "#@[]", b.dbto
		}
		// A goroutine writes the bounce into a pipe that qmail-queue's
		// input is copied from. It touches no scheduler state, and is
		// waited for before the files close: closing the pipe's reading
		// end makes a write it is blocked in return.
		pr, pw := io.Pipe()
		werr := make(chan error, 1)
		go func() {
			err := b.writeHead(pw)
			if err == nil {
				_, err = io.Copy(pw, mess)
			}
			if err == nil {
				_, err = pw.Write(b.tail())
			}
			pw.CloseWithError(err) // nil: the reader sees the end
			werr <- err
		}()
		pid, err := s.inject(pr, envSender, []string{recip})
		pr.Close()
		if wErr := <-werr; err == nil && wErr != nil {
			// A message that was not read whole is not queued
			// (pkg/qq sends no envelope then); an injector that says
			// otherwise is not believed: a bounce twice rather than a
			// bounce cut short.
			err = wErr
		}
		if err != nil {
			if pid == 0 {
				s.log.line("warning: unable to start qmail-queue, will try later")
			} else {
				s.log.line("warning: trouble injecting bounce message, will try later")
			}
			return false
		}
		s.log.line("bounce msg ", utoa(id), " qp ", itoa(pid))
	}
	if err := unlink(s.path(bn)); err != nil && !isNoent(err) {
		s.log.line("warning: unable to unlink ", bn)
		return false
	}
	return true
}

// inject queues a bounce. It runs qmail-queue itself, as qmail-send does
// in qmail, never through the queue service: any local user can keep the
// service busy, and each caller then waits up to qq.AnswerTimeout before
// it falls back; qmail-send's loop must not stop for that (a bounce is
// rare, its process start cheap).
//
// The child's descriptor 2 is qmail-send's log (its fd 0), or /dev/null,
// never qmail-send's own descriptor 2: that is the read end of
// qmail-lspawn's report pipe (qmail-start's layout), and a $QMAILQUEUE
// program that read it took reports qmail-send waits for (the deliveries
// then never ended, and were made again after a restart), while
// qmail-queue's own crash trace was lost to EBADF.
func (s *Sched) inject(msg io.Reader, sender string, recips []string) (int, error) {
	if s.opt.Inject != nil {
		return s.opt.Inject(msg, sender, recips)
	}
	stderr, _ := s.opt.Log.(*os.File)
	if stderr == nil {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return 0, qerr.Wrap(err, false, "unable to exec qq (#4.3.0)")
		}
		defer null.Close()
		stderr = null
	}
	return qq.Queue(qq.Options{Root: s.root, NoService: true, Stderr: stderr}, msg, &qq.Envelope{Sender: sender, Recipients: recips})
}
