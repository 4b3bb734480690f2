package sched

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
)

// Queue paths of a message.
func split(id uint64) string { return strconv.FormatUint(id%qhome.Split, 10) }

// fn names a queue file relative to queue/, for logs.
func fnSplit(dir string, id uint64) string { return dir + "/" + split(id) + "/" + utoa(id) }
func fnFlat(dir string, id uint64) string  { return dir + "/" + utoa(id) }

func (s *Sched) path(rel string) string { return filepath.Join(s.queue, rel) }

func fnChan(c int, id uint64) string { return fnSplit(chanName[c], id) }

func isNoent(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// parseID accepts names made only of digits.
func parseID(name string) (uint64, bool) {
	if name == "" {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(name, 10, 64)
	return id, err == nil && id != 0
}

// sleepRetry logs an alert and sleeps 10 s, for qmail's "HELP!" loops.
func (s *Sched) sleepRetry(msg string) {
	s.log.line(msg)
	time.Sleep(10 * time.Second)
}

// scanInfo puts every preprocessed message on its schedules
// (queue.md §6).
func (s *Sched) scanInfo() {
	for i := 0; i < qhome.Split; i++ {
		dir := s.path("info/" + itoa(i))
		var f *os.File
		for {
			var err error
			if f, err = os.Open(dir); err == nil {
				break
			}
			s.sleepRetry("alert: unable to opendir " + "info/" + itoa(i) + ", sleeping...")
		}
		for {
			names, err := f.Readdirnames(256)
			for _, n := range names {
				if id, ok := parseID(n); ok {
					s.pqadd(id)
				}
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
}

// pqadd schedules one preprocessed message from its files.
func (s *Sched) pqadd(id uint64) {
	if _, err := os.Stat(s.path(fnFlat("todo", id))); err == nil {
		return // preprocessed again later
	} else if !isNoent(err) {
		s.fail.insert(id, s.recent+sleepSysfail)
		return
	}
	if _, err := os.Stat(s.path(fnSplit("info", id))); err != nil {
		if !isNoent(err) {
			s.fail.insert(id, s.recent+sleepSysfail)
		}
		return
	}
	any := false
	for c := 0; c < 2; c++ {
		st, err := os.Stat(s.path(fnChan(c, id)))
		if err == nil {
			s.sched[c].insert(id, st.ModTime().Unix())
			any = true
		} else if !isNoent(err) {
			s.fail.insert(id, s.recent+sleepSysfail)
			return
		}
	}
	if !any {
		s.done.insert(id, s.recent)
	}
}

// todoStep handles one entry of todo/ per loop iteration.
func (s *Sched) todoStep() {
	if s.exitasap {
		return
	}
	if s.todo == nil {
		if !s.triggered && s.recent < s.nextTodo {
			return
		}
		s.triggered = false
		f, err := os.Open(s.path("todo"))
		if err != nil {
			s.sleepRetry("alert: unable to opendir todo, sleeping...")
			return
		}
		s.todo = f
		s.nextTodo = s.recent + sleepTodo
	}
	names, err := s.todo.Readdirnames(1)
	if err != nil || len(names) == 0 {
		s.todo.Close()
		s.todo = nil
		return
	}
	if id, ok := parseID(names[0]); ok {
		s.preprocess(id)
	}
}

// chanFile is a channel file being written by preprocessing.
type chanFile struct {
	f *os.File
	w *bufio.Writer
}

// preprocess turns todo/ID into info, local and remote files
// (queue.md §5); any failure leaves todo/ID for a later scan.
func (s *Sched) preprocess(id uint64) {
	todoName := fnFlat("todo", id)
	tf, err := os.Open(s.path(todoName))
	if err != nil {
		if !isNoent(err) {
			s.log.line("warning: unable to open ", todoName)
		}
		return
	}
	defer tf.Close()
	messName := fnSplit("mess", id)
	mst, err := os.Stat(s.path(messName))
	if err != nil {
		s.log.line("warning: unable to stat ", messName)
		return
	}
	infoName := fnSplit("info", id)
	for _, n := range []string{fnChan(0, id), fnChan(1, id), infoName} {
		if err := os.Remove(s.path(n)); err != nil && !isNoent(err) {
			s.log.line("warning: unable to unlink ", n)
			return
		}
	}
	info, err := os.OpenFile(s.path(infoName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		s.log.line("warning: unable to create ", infoName)
		return
	}
	var chans [2]chanFile
	closeAll := func() {
		info.Close()
		for c := range chans {
			if chans[c].f != nil {
				chans[c].f.Close()
			}
		}
	}
	s.log.line("new msg ", utoa(id))
	infoW := bufio.NewWriter(info)
	r := bufio.NewReader(tf)
	var uid, pid string
	for {
		rec, err := r.ReadString(0)
		if err == io.EOF {
			break // a record without its NUL is ignored
		}
		if err != nil {
			s.log.line("warning: trouble reading ", todoName)
			closeAll()
			return
		}
		rec = rec[:len(rec)-1]
		if rec == "" {
			s.log.line("warning: unknown record type in ", todoName)
			closeAll()
			return
		}
		switch rec[0] {
		case 'u':
			uid = rec[1:]
		case 'p':
			pid = rec[1:]
		case 'F':
			infoW.WriteString(rec)
			infoW.WriteByte(0)
			s.log.line("info msg ", utoa(id), ": bytes ", strconv.FormatInt(mst.Size(), 10),
				" from <", safe(rec[1:]), "> qp ", pid, " uid ", uid)
		case 'T':
			c, addr := s.cf.rewrite(rec[1:])
			if chans[c].f == nil {
				n := fnChan(c, id)
				f, err := os.OpenFile(s.path(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					s.log.line("warning: unable to create ", n)
					closeAll()
					return
				}
				chans[c] = chanFile{f: f, w: bufio.NewWriter(f)}
			}
			chans[c].w.WriteByte('T')
			chans[c].w.WriteString(addr)
			chans[c].w.WriteByte(0)
		default:
			s.log.line("warning: unknown record type in ", todoName)
			closeAll()
			return
		}
	}
	// Flush and fsync the files, then their directory entries.
	sync := func(name string, f *os.File, w *bufio.Writer) bool {
		if w.Flush() != nil || f.Sync() != nil {
			s.log.line("warning: trouble writing to ", name)
			return false
		}
		return true
	}
	ok := sync(infoName, info, infoW)
	for c := range chans {
		if ok && chans[c].f != nil {
			ok = sync(fnChan(c, id), chans[c].f, chans[c].w)
		}
	}
	closeAll()
	if !ok {
		return
	}
	dirs := []string{"info/" + split(id)}
	for c := range chans {
		if chans[c].f != nil {
			dirs = append(dirs, chanName[c]+"/"+split(id))
		}
	}
	for _, d := range dirs {
		if err := syncDir(s.path(d)); err != nil {
			s.log.line("warning: trouble writing to ", d)
			return
		}
	}
	if !s.cleanRequest("todo", id) {
		return
	}
	any := false
	for c := range chans {
		if chans[c].f != nil {
			s.sched[c].insert(id, s.recent)
			any = true
		}
	}
	if !any {
		s.done.insert(id, s.recent)
	}
}

// syncDir fsyncs a directory so the entries made in it are durable.
func syncDir(dir string) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Fsync(fd)
}
