// Package qread reads qmail's queue for the inspection tools: qmail-qread
// (mailq, sendmail -bp), qmail-qstat and the "status" and "queue" commands
// of qmailctl (spec/queue.md §8).
//
// It only reads, and may run as root (mailq, qmailctl): a queue file is
// never opened through a symbolic link and must be a regular file
// (qhome.OpenQueueFile). Every file it looks at may vanish or change while
// it reads (qmail-send and qmail-clean keep working): a message whose info
// file is gone is skipped silently (it left the queue), and so is one whose
// todo file is still there (not preprocessed yet, its info file stale or
// partial); any other trouble is reported for that message and the scan
// goes on.
package qread

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Record is one recipient of a channel file.
type Record struct {
	Addr string
	Done bool // 'D': delivered or failed for good
}

// Message is one preprocessed message (one info file).
type Message struct {
	ID       uint64
	Birth    time.Time // mtime of info/S/ID
	Size     int64     // size of mess/S/ID
	Sender   string    // without the leading 'F'
	Bouncing bool      // bounce/ID exists
	Local    []Record
	Remote   []Record
	Err      error // trouble reading this message; other fields may be partial
}

// Pending counts the records not yet done on each channel.
func (m *Message) Pending() (local, remote int) {
	for _, r := range m.Local {
		if !r.Done {
			local++
		}
	}
	for _, r := range m.Remote {
		if !r.Done {
			remote++
		}
	}
	return
}

// Sub is the split subdirectory of a message id.
func Sub(id uint64) string { return strconv.FormatUint(id%qhome.Split, 10) }

// ErrDamaged reports a queue file that is not in qmail's format.
var ErrDamaged = errors.New("file damaged")

// Scan reads every preprocessed message of the queue directory q
// (ROOT/queue), walking info/0..22 and sorting the ids of each
// subdirectory numerically (qmail prints them in directory order; sorting
// makes the output stable). A message whose todo/ID exists is skipped,
// whatever info file it has: qmail-send preprocesses it (again) from
// todo/ID (ScanTodo lists those). It costs one stat of todo/ID per
// message. An error is returned only when an info subdirectory cannot be
// read at all.
func Scan(q string) ([]Message, error) {
	var out []Message
	err := ScanEach(q, func(m *Message) { out = append(out, *m) })
	return out, err
}

// ScanEach is Scan giving each message to fn as it is read, in Scan's
// order, instead of keeping them all: qmail-qread lists a queue of any
// size in the memory of one subdirectory's names. m is fn's only for the
// call.
func ScanEach(q string, fn func(m *Message)) error {
	for s := 0; s < qhome.Split; s++ {
		dir := filepath.Join(q, "info", strconv.Itoa(s))
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("unable to read %s: %w", missingDir(err, q, filepath.Join(q, "info"), dir), qerr.Bare(err))
		}
		var ids []uint64
		for _, e := range ents {
			id, err := strconv.ParseUint(e.Name(), 10, 64)
			if err != nil {
				continue // not a message: qmail-qread ignores it too
			}
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			m, gone := readMessage(q, id)
			if gone {
				continue
			}
			fn(&m)
		}
	}
	return nil
}

// missingDir is the directory to name when reading the last of dirs (a
// queue directory, then the directories below it on the way) failed with
// err: for a missing one, the first of dirs that does not exist, so a
// root with no queue at all (a source checkout's bin/ run by hand) is told
// as that, not as a missing info/0.
func missingDir(err error, dirs ...string) string {
	last := dirs[len(dirs)-1]
	if !errors.Is(err, fs.ErrNotExist) {
		return last
	}
	for _, d := range dirs[:len(dirs)-1] {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			return d
		}
	}
	return last
}

// ReadMessage reads the preprocessed message id of queue directory q.
// found is false when it has no info file, or when its todo/ID is there
// (not preprocessed yet: see Scan); err is set only when the info
// directory itself cannot be read. Trouble with the message's files is in
// m.Err.
func ReadMessage(q string, id uint64) (m Message, found bool, err error) {
	if _, err := os.Stat(filepath.Join(q, "info", Sub(id))); err != nil {
		return m, false, fmt.Errorf("unable to read %s: %w", filepath.Join(q, "info", Sub(id)), qerr.Bare(err))
	}
	m, gone := readMessage(q, id)
	return m, !gone, nil
}

// readMessage reads one message; gone is true when its info file vanished
// between the directory read and the open.
func readMessage(q string, id uint64) (m Message, gone bool) {
	m.ID = id
	name := strconv.FormatUint(id, 10)
	sub := Sub(id)
	info := filepath.Join(q, "info", sub, name)
	todo := filepath.Join(q, "todo", name)
	// While todo/ID is there the message is not preprocessed: qmail-send
	// ignores any info and channel files it has (left by a preprocessing
	// cut short, or being written now) and makes them anew from todo/ID
	// (spec/queue.md §5, §6), so what they say is not the message's state.
	// Looked at before the info file: qmail-send removes todo/ID only once
	// info and the channel files are complete, so when it is gone now they
	// are whole. Any other trouble with it is reported: whether the
	// message is preprocessed cannot be told.
	if _, err := os.Lstat(todo); err == nil {
		return m, true
	} else if !errors.Is(err, fs.ErrNotExist) {
		m.Err = fmt.Errorf("unable to stat todo file: %w", why(err))
		return m, false
	}
	f, err := qhome.OpenQueueFile(info, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return m, true
		}
		m.Err = fmt.Errorf("unable to open info file: %w", why(err))
		return m, false
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		m.Err = fmt.Errorf("unable to stat info file: %w", why(err))
		return m, false
	}
	m.Birth = st.ModTime()
	b, err := readAll(f, 1<<20)
	f.Close()
	if err != nil {
		m.Err = fmt.Errorf("unable to read info file: %w", why(err))
		return m, false
	}
	end := bytes.IndexByte(b, 0)
	if len(b) == 0 || b[0] != 'F' || end < 0 {
		if exists(todo) {
			// A new message under the same id (an inode number)
			// queued since todo/ID was looked at, and qmail-send
			// writing its info file: not damaged, not yet in.
			return m, true
		}
		m.Err = fmt.Errorf("info file: %w", ErrDamaged)
		return m, false
	}
	m.Sender = string(b[1:end])

	afterInfo()
	mst, err := statMess(filepath.Join(q, "mess", sub, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !exists(info) {
			// Delivered and removed while we looked: info goes first,
			// then mess.
			return m, true
		}
		m.Err = fmt.Errorf("unable to stat mess file: %w", why(err))
		return m, false
	}
	m.Size = mst.Size()

	if _, err := os.Lstat(filepath.Join(q, "bounce", name)); err == nil {
		m.Bouncing = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		m.Err = fmt.Errorf("unable to stat bounce file: %w", why(err))
		return m, false
	}

	if m.Local, err = readChannel(filepath.Join(q, "local", sub, name)); err != nil {
		m.Err = fmt.Errorf("unable to read local file: %w", why(err))
		return m, false
	}
	if m.Remote, err = readChannel(filepath.Join(q, "remote", sub, name)); err != nil {
		m.Err = fmt.Errorf("unable to read remote file: %w", why(err))
		return m, false
	}
	return m, false
}

// statMess looks at a mess file without following a symbolic link (run
// as root, a link planted in the queue must not tell the size of its
// target); anything but a regular file is an error.
func statMess(path string) (os.FileInfo, error) {
	st, err := os.Lstat(path)
	if err == nil && !st.Mode().IsRegular() {
		err = &fs.PathError{Op: "stat", Path: path, Err: qhome.ErrNotRegular}
		if st.Mode()&fs.ModeSymlink != 0 {
			err = &fs.PathError{Op: "stat", Path: path, Err: qhome.ErrSymlink}
		}
		return nil, err
	}
	return st, err
}

// afterInfo runs between reading a message's info file and looking at its
// mess file (tests remove the message there).
var afterInfo = func() {}

// exists reports whether path exists; an error other than "not there"
// counts as existing, so that it is reported rather than skipped.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// readAll reads at most limit bytes of f.
func readAll(f *os.File, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(&limitedReader{f, limit})
	return buf.Bytes(), err
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// readChannel parses a local or remote file: T/D records ended by NUL. A
// missing file has no records. A trailing record without its NUL is not
// complete and is left out; a record with another letter is skipped.
func readChannel(path string) ([]Record, error) {
	b, err := qhome.ReadQueueFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return ParseChannel(b), nil
}

// ParseChannel parses the contents of a local or remote file.
func ParseChannel(b []byte) []Record {
	var out []Record
	for len(b) > 0 {
		end := bytes.IndexByte(b, 0)
		if end < 0 {
			break
		}
		rec := b[:end]
		b = b[end+1:]
		if len(rec) == 0 {
			continue
		}
		switch rec[0] {
		case 'T':
			out = append(out, Record{Addr: string(rec[1:])})
		case 'D':
			out = append(out, Record{Addr: string(rec[1:]), Done: true})
		}
	}
	return out
}

// Todo is a message queued but not yet preprocessed (todo/ID).
type Todo struct {
	ID         uint64
	Queued     time.Time // mtime of todo/ID
	Size       int64     // size of mess/S/ID, -1 when unknown
	Sender     string
	Recipients int
	Err        error
}

// ScanTodo reads todo/ for messages qmail-send has not preprocessed yet.
func ScanTodo(q string) ([]Todo, error) {
	dir := filepath.Join(q, "todo")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("unable to read %s: %w", missingDir(err, q, dir), qerr.Bare(err))
	}
	var out []Todo
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || id == 0 {
			continue // qmail-send ignores these names too
		}
		if t, gone := readTodo(q, id, e.Name()); !gone {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ReadTodo reads todo/ID of queue directory q as ScanTodo reads each;
// found is false when there is none (or it went while it was read: the
// message was preprocessed meanwhile).
func ReadTodo(q string, id uint64) (t Todo, found bool) {
	t, gone := readTodo(q, id, strconv.FormatUint(id, 10))
	return t, !gone
}

// readTodo reads todo/name, the file of message id: its envelope's
// sender and recipient count, its time, and the size of its message; gone
// when it is not there (or went, with its message, while it was read).
// Trouble is in t.Err.
func readTodo(q string, id uint64, name string) (t Todo, gone bool) {
	dir := filepath.Join(q, "todo")
	t = Todo{ID: id, Size: -1}
	f, err := qhome.OpenQueueFile(filepath.Join(dir, name), os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return t, true // preprocessed meanwhile
		}
		t.Err = err
		return t, false
	}
	if st, err := f.Stat(); err == nil {
		t.Queued = st.ModTime()
	}
	b, err := readAll(f, 16<<20)
	f.Close()
	if err != nil {
		t.Err = err
	}
	for _, rec := range bytes.Split(b, []byte{0}) {
		switch {
		case len(rec) > 0 && rec[0] == 'F':
			t.Sender = string(rec[1:])
		case len(rec) > 0 && rec[0] == 'T':
			t.Recipients++
		}
	}
	if st, err := statMess(filepath.Join(q, "mess", Sub(id), name)); err == nil {
		t.Size = st.Size()
	} else if errors.Is(err, fs.ErrNotExist) && t.Err == nil {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			return t, true // preprocessed and delivered meanwhile
		}
		t.Err = fmt.Errorf("mess/%s/%s: no such file (todo/%s names no message)", Sub(id), name, name)
	}
	return t, false
}

// Counts are qmail-qstat's two numbers.
type Counts struct {
	Messages int // files under mess/*/
	Todo     int // files in todo/
}

// Count counts the messages of queue directory q as qmail-qstat does.
func Count(q string) (Counts, error) {
	var c Counts
	subs, err := os.ReadDir(filepath.Join(q, "mess"))
	if err != nil {
		return c, fmt.Errorf("unable to read %s: %w", missingDir(err, q, filepath.Join(q, "mess")), qerr.Bare(err))
	}
	for _, s := range subs {
		if !s.IsDir() {
			continue // not a split directory: no message of the queue
		}
		n, err := countFiles(filepath.Join(q, "mess", s.Name()))
		if err != nil {
			return c, err
		}
		c.Messages += n
	}
	n, err := countFiles(filepath.Join(q, "todo"))
	if err != nil {
		return c, err
	}
	c.Todo = n
	return c, nil
}

func countFiles(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("unable to read %s: %w", dir, qerr.Bare(err))
	}
	n := 0
	for _, e := range ents {
		if e.Type().IsRegular() {
			n++
		}
	}
	return n, nil
}

// why strips the path from a file error: the message names the file.
func why(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
