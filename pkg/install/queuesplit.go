package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// A qmail built with another conf-split than hqmail's 23 (spec/queue.md
// §1) leaves a queue whose split directories run 0..N-1 and whose files
// sit in the one of their id modulo N. hqmail's programs look for a
// message only in the directory of its id modulo 23, never in 23 and
// above: such mail would be neither delivered nor bounced, and nothing
// would say so. Both -check and the repair count those files; neither
// moves them (mail is moved by a human, with qmail-send stopped).
//
// The walk is bounded: one readdir of each queue directory that is split
// and one of each of its numbered subdirectories, names only (no file is
// stat'ed), read in chunks, so that a queue of 100,000 messages costs a
// few hundred getdents calls and no more memory than one chunk.

// splitQueueDirs are the queue directories split by id (spec/queue.md §1;
// pid, intd, todo and bounce are not).
var splitQueueDirs = []string{"mess", "info", "local", "remote"}

// strays counts the files of the split queue directories that are not in
// the subdirectory of their id modulo qhome.Split.
type strays struct {
	per     map[string]int // split queue directory -> files out of place
	total   int
	beyond  int    // of total, those in subdirectories numbered Split and above
	high    int    // highest numbered subdirectory seen (-1: none)
	example string // one of them, relative to queue/
	errs    []string
}

// queueID parses a queue file name: a plain decimal number, without a
// sign or a leading zero, as qmail names them. Anything else (a temporary
// file's name) is no message.
func queueID(name string) (uint64, bool) {
	if name == "" || len(name) > 1 && name[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(name, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// quietOpenErr reports whether a failure to open a directory of the
// queue says nothing about misplaced mail: gone, no directory, a
// symbolic link (never followed there: the table's lines name it), or
// not readable by the caller (-check run by another user than the
// queue's).
func quietOpenErr(err error) bool {
	return err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP || err == unix.EACCES
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// eachName calls fn with every name of the directory open as fd (which it
// closes), reading the names in chunks.
func eachName(fd int, path string, fn func(string)) error {
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			fn(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// scanQueue counts the misplaced files below the queue directory open as
// queue (left open); shown is the queue's path in messages.
func scanQueue(queue int, shown string) *strays {
	s := &strays{per: map[string]int{}, high: -1}
	for _, d := range splitQueueDirs {
		s.scanDir(queue, d, shown)
	}
	return s
}

// scanDir counts the misplaced files below queue/d, each of its
// subdirectories reached from d's descriptor without following a link.
func (s *strays) scanDir(queue int, d, shown string) {
	dfd, err := unix.Openat(queue, d, dirFlags, 0)
	if err != nil {
		if !quietOpenErr(err) {
			s.errs = append(s.errs, fmt.Sprintf("queue/%s: unable to open: %v", d, err))
		}
		return
	}
	defer unix.Close(dfd)
	var subs []int
	fd, err := unix.Openat(dfd, ".", dirFlags, 0)
	if err == nil {
		err = eachName(fd, filepath.Join(shown, d), func(n string) {
			if id, ok := queueID(n); ok && id < 1<<31 {
				subs = append(subs, int(id))
			}
		})
	}
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("queue/%s: unable to read: %v", d, err))
		return
	}
	sort.Ints(subs)
	for _, sub := range subs {
		s.scanSplit(dfd, d, sub, shown)
	}
}

// scanSplit counts the misplaced files of queue/d/sub (dfd: queue/d).
func (s *strays) scanSplit(dfd int, d string, sub int, shown string) {
	rel := d + "/" + strconv.Itoa(sub)
	fd, err := unix.Openat(dfd, strconv.Itoa(sub), dirFlags, 0)
	if err != nil {
		if !quietOpenErr(err) {
			s.errs = append(s.errs, fmt.Sprintf("queue/%s: unable to open: %v", rel, err))
		}
		return
	}
	if sub > s.high {
		s.high = sub
	}
	err = eachName(fd, filepath.Join(shown, rel), func(n string) {
		id, ok := queueID(n)
		if !ok || id%qhome.Split == uint64(sub) {
			return
		}
		s.per[d]++
		s.total++
		if sub >= qhome.Split {
			s.beyond++
		}
		if s.example == "" {
			s.example = rel + "/" + n
		}
	})
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("queue/%s: unable to read: %v", rel, err))
	}
}

// MoveCommand is the shell command that moves every file of the split
// queue directories of queue (a path) to the subdirectory of its id
// modulo qhome.Split, for sh as root with qmail-send stopped. Names that
// are no id (a temporary file, an empty directory's unmatched pattern)
// are skipped, and a file whose place is taken is left where it is
// (a -check after it names what is left).
func MoveCommand(queue string) string {
	return fmt.Sprintf(`cd %s && for d in %s; do for f in $d/*/*; do id=${f##*/}; case $id in ''|*[!0-9]*|0?*) continue;; esac; `+
		`t=$d/$((id%%%d))/$id; [ "$f" = "$t" ] || [ -e "$t" ] || mv "$f" "$t"; done; done`,
		shellQuote(queue), strings.Join(splitQueueDirs, " "), qhome.Split)
}

// shellQuote quotes s for sh when it holds anything but plain path
// characters.
func shellQuote(s string) string {
	plain := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+,:@%=", c)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lines says what s found: one line for the misplaced files (none when
// there are none), with the likely cause and the fix for the queue at
// queue (an absolute path), then one for each directory that could not
// be read. The repair's line says it left them alone, and to run it
// again; -check's, to check again.
func (s *strays) lines(queue string, repair bool) []string {
	var out []string
	if s.total > 0 {
		var per []string
		for _, d := range splitQueueDirs {
			if n := s.per[d]; n > 0 {
				per = append(per, fmt.Sprintf("%s %d", d, n))
			}
		}
		where := ""
		if s.beyond > 0 {
			where = fmt.Sprintf("; %d of them in split directories numbered %d and above, which hqmail does not have", s.beyond, qhome.Split)
			if s.high >= qhome.Split {
				where += fmt.Sprintf(" (the highest is %d: a conf-split of %d?)", s.high, s.high+1)
			}
		}
		left, again := ".", "qmail-install -check"
		if repair {
			left, again = "; left alone (qmail-install never moves mail).", "qmail-install"
		}
		out = append(out, fmt.Sprintf("queue: %d file(s) not in the split directory of their id modulo %d (%s; e.g. queue/%s)%s: "+
			"qmail-send looks for a message only in the directory of its id modulo %d, so their mail is neither delivered nor bounced; "+
			"likely a queue left by a qmail built with a conf-split other than %d%s "+
			"Stop qmail-send, then move each file to the directory of its id modulo %d, as root: %s "+
			"(a file whose place is taken is left), and run %s again",
			s.total, qhome.Split, strings.Join(per, ", "), s.example, where, qhome.Split,
			qhome.Split, left, qhome.Split, MoveCommand(queue), again))
	}
	return append(out, s.errs...)
}

// strayQueue is -check's part: the misplaced queue files of the tree at
// root, unless a directory on the way to queue/ is one the other lines
// name (wayBlocked).
func strayQueue(root string) []string {
	if wayBlocked(root, "queue/mess") {
		return nil
	}
	q := filepath.Join(root, "queue")
	// queue/ in the tree's root is reached as wayBlocked allows (root's
	// own link there followed); below it no link is.
	fd, err := unix.Open(q, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if quietOpenErr(err) {
			return nil
		}
		return []string{fmt.Sprintf("queue: unable to open: %v", err)}
	}
	defer unix.Close(fd)
	if abs, err := filepath.Abs(q); err == nil {
		q = abs
	}
	return scanQueue(fd, q).lines(q, false)
}

// strayQueue is the repair's part: the misplaced queue files, left where
// they are and named (the run exits 111).
func (w *walker) strayQueue() {
	fd, err := w.dir("queue")
	if err != nil {
		return // skipped (named already) or unreadable (the table's steps said so)
	}
	q := w.path("queue")
	for _, l := range scanQueue(fd, q).lines(q, true) {
		w.problem("%s", l)
	}
}

// noIDs is Check's error for a root without etc/ids: no tree, with a
// hint when root holds queue/ and control/, as a tree qmail itself
// installed does (qmail has no etc/ids).
func noIDs(root string) error {
	why := qhome.IDsFile + " missing"
	if !queueAndControl(root) {
		return noTree(root, why)
	}
	return qerr.Wrap(ErrNoTree, true, fmt.Sprintf("no qmail tree at %s (%s): it has queue/ and control/ but no %s, "+
		"so it looks like a tree qmail itself installed; with qmail stopped, qmail-install -root %s (make install) "+
		"takes it over, keeping its queue and control files (see docs/migrating.md, \"From qmail\"), "+
		"then run qmail-install -check again", root, why, qhome.IDsFile, shellQuote(root)))
}

// queueAndControl reports whether root holds queue/ and control/ as
// directories (a link there followed), as a tree qmail installed does.
func queueAndControl(root string) bool {
	for _, d := range []string{"queue", "control"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// qmailInstalled reports whether root looks like a tree qmail itself
// installed, as noIDs tells it: queue/ and control/, and no etc/ids
// (qmail has none). A first run of qmail-install that stopped before it
// wrote etc/ids leaves the same.
func qmailInstalled(root string) bool {
	_, err := os.Lstat(filepath.Join(root, qhome.IDsFile))
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return false
	}
	return queueAndControl(root)
}

// takenOver reports whether root, as it is before a run, is a tree qmail
// itself installed (qmailInstalled) and ran: something is in its
// control/. A tree taken over is never new to writeControl. An empty
// control/ is no configuration to keep (qmail-send cannot start without
// control/me or control/locals, qmail-smtpd without me or smtpgreeting),
// and it is what a first run that stopped before etc/ids leaves: that
// tree stays new (so does one with only qmailctl's lock in it). A
// control/ that cannot be read counts as one with something in it.
func takenOver(root string) bool {
	if !qmailInstalled(root) {
		return false
	}
	ents, err := os.ReadDir(filepath.Join(root, "control"))
	if err != nil {
		return true
	}
	for _, e := range ents {
		if e.Name() != control.LockName {
			return true
		}
	}
	return false
}
