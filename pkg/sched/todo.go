package sched

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/nofile"
	"github.com/hqmail/hqmail/pkg/qerr"
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

// isDamage reports whether err says a queue file is wrong in itself (a
// directory or special file, a mode or owner that shuts qmails out, a
// symbolic link loop), which waiting 123 seconds does not mend: such a
// todo/ID waits for the ordinary scan, as one with an unknown record
// type does, instead of bringing every scan forward (todoSoon).
func isDamage(err error) bool {
	return errors.Is(err, syscall.EISDIR) || errors.Is(err, qhome.ErrNotRegular) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR)
}

// unlink removes the file p in one system call. os.Remove would try
// rmdir(2) too when unlink(2) fails, and many of qmail-send's removals
// (preprocessing's "unlink if present") are of files that are not there.
func unlink(p string) error { return unix.Unlink(p) }

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

// statLater logs that queue file name (relative to queue/) could not be
// looked at, for a reason other than its absence, and that the message
// is tried again in 123 seconds: qmail's messdone and pqadd log it at
// each try.
func (s *Sched) statLater(name string) {
	s.log.line("warning: unable to stat ", name, "; will try again later")
}

// pqadd schedules one preprocessed message from its files.
func (s *Sched) pqadd(id uint64) {
	todo := fnFlat("todo", id)
	if _, err := os.Stat(s.path(todo)); err == nil {
		return // preprocessed again later
	} else if !isNoent(err) {
		s.statLater(todo)
		s.holds.noteBirth(0) // a birth not known: see holdLog.prune
		s.fail.insert(id, s.recent+sleepSysfail)
		return
	}
	info := fnSplit("info", id)
	st, err := os.Stat(s.path(info))
	if err != nil {
		if !isNoent(err) {
			s.statLater(info)
			s.holds.noteBirth(0)
			s.fail.insert(id, s.recent+sleepSysfail)
		}
		return
	}
	s.holds.noteBirth(st.ModTime().Unix())
	mess := fnSplit("mess", id)
	if _, err := os.Stat(s.path(mess)); isNoent(err) {
		s.dropRemains(id)
		return
	} else if err != nil {
		s.statLater(mess)
		s.fail.insert(id, s.recent+sleepSysfail)
		return
	}
	// Both channels are looked at before either is scheduled: a channel
	// scheduled before the other's stat failed was scheduled again at
	// each retry of the failed one, and its deliveries ran in parallel.
	var due [2]int64
	var have [2]bool
	for c := 0; c < 2; c++ {
		n := fnChan(c, id)
		st, err := os.Stat(s.path(n))
		if err == nil {
			due[c], have[c] = st.ModTime().Unix(), true
		} else if !isNoent(err) {
			s.statLater(n)
			s.fail.insert(id, s.recent+sleepSysfail)
			return
		}
	}
	for c := 0; c < 2; c++ {
		if have[c] && s.dropDoneHeld(c, id) {
			have[c] = false
		}
		if have[c] {
			s.sched[c].insert(id, due[c])
		}
	}
	if !have[chanLocal] && !have[chanRemote] {
		s.done.insert(id, s.recent)
	}
}

// dropDoneHeld removes channel c's file of message id when c is held and
// the file has nothing left to deliver, and reports whether it did. A
// held channel starts no pass, and only a pass reading a file to its end
// ends a message: one whose last deliveries ended while the previous
// qmail-send was exiting (a pass suspended with every slot busy, its
// results recorded as done) would otherwise stay in the queue, done,
// for the whole hold, where qmail's first pass after the start ends it.
// The file goes as a finished pass's does (before info/ID); a removal
// that fails leaves it scheduled, for the release.
func (s *Sched) dropDoneHeld(c int, id uint64) bool {
	if !s.cf.hold.held(c) || s.hasPending(c, id) {
		return false
	}
	n := fnChan(c, id)
	if err := unlink(s.path(n)); err != nil && !isNoent(err) {
		s.log.line("warning: unable to unlink ", n, "; will try again later")
		return false
	}
	return true
}

// dropRemains removes what is left of a message whose message file is
// gone: its channel files, bounce/ID and info/S/ID, in the order a message
// leaves the queue. qmail removes a done message's files without flushing
// their directories in between, so a crash (a power cut on a file system
// that writes its directories back in any order) can keep the message
// file's removal and lose the others'; qmail then retries such a message
// for ever ("unable to open message") and at its queue lifetime tries to
// bounce a message already delivered. Nothing of it can be delivered or
// bounced any more either way, and it is more likely done than not: it is
// logged and removed, then "end msg ID" is logged. A removal that fails
// is tried again later.
func (s *Sched) dropRemains(id uint64) {
	s.log.line("warning: message ", utoa(id), " has no message file (", fnSplit("mess", id),
		"), left by a crash or removed by hand: removing its queue files")
	for _, n := range remains(id) {
		if err := unlink(s.path(n)); err != nil && !isNoent(err) {
			s.log.line("warning: unable to unlink ", n, "; will try again later")
			s.fail.insert(id, s.recent+sleepSysfail)
			return
		}
	}
	// Logged as a message that ends is, so that log readers (matchup,
	// isoqlog) close it: they would carry it as pending for ever.
	s.log.line("end msg ", utoa(id))
	// Gone as a message that ends is: a hold or delete asked for it
	// would otherwise outlive it and take the next message given its id
	// (the inode).
	s.forget(id)
}

// remains are the files of message id that qmail-send writes, besides
// the message file and its todo and intd entries, in the order it removes
// them: the channel files, bounce/ID, and info/S/ID last (the file that
// says the message was preprocessed).
func remains(id uint64) []string {
	return []string{fnChan(chanLocal, id), fnChan(chanRemote, id), fnFlat("bounce", id), fnSplit("info", id)}
}

// Preprocessing runs in batches (docs/performance.md, "qmail-send
// preprocessing"). One step takes the todo/ entries of the running scan,
// up to batchMax of them or as many as it reaches within batchTime, and
// writes each message's info and channel files (flushed, write-back
// started) one message after the other, with its "new msg" and "info msg"
// lines as before. Then every one of those files and every split directory
// they were made in (each directory once) is fsynced in one concurrent
// round, at most syncMax at a time. Only after that round has returned is
// qmail-clean asked, in order, to remove each todo/ID whose files and
// directories all synced without error. So the order of queue.md §5 holds for every message
// (todo/ID, the commit point, goes only once its info, local and remote
// files and their entries are durable), but the disk waits of a message,
// and of the messages found together, overlap instead of queueing one
// behind the other in the loop.
const (
	batchMax  = 32                     // messages per step
	batchTime = 100 * time.Millisecond // writing time per step (then the round)
	syncMax   = 8                      // fsyncs in flight at once
	// Buffer sizes of one message's reader and writers: a batch holds up
	// to batchMax messages' writers at once, and each fsync in flight
	// blocks an OS thread, so both are kept small for qmail-send's memory
	// (docs/performance.md). Larger envelopes are simply written in parts.
	readBuf  = 1024
	writeBuf = 512
)

// Descriptors of preprocessing, for fitting the batch to RLIMIT_NOFILE
// (fitBatch). A message of a batch holds fdsPerMessage from its creation
// until the round has synced them: its info file and its local and remote
// files. A step holds fdsPerStep besides: the todo/ directory of the scan,
// the todo/ID being read (closed once its message is written), and in the
// round up to syncMax split directories being synced. The rest of
// qmail-send holds fdsOther meanwhile: descriptors 0-6 (the log, the pipes
// to the spawners and qmail-clean), the copy of the log the runtime's
// crash output goes to, the runtime's epoll descriptor, its wake-up
// eventfd and the two cgroup CPU-limit files it keeps open, lock/sendmutex,
// lock/trigger and lock/sendctl (15, counted in /proc/PID/fd of an idle
// qmail-send under qmail-start); what stays open from one loop
// turn to the next: the channel file of each channel's pass and the mess/
// directory of the cleanup walk (3); and six to spare, for descriptors a
// parent left open. Everything else (a bounce's files and qmail-queue's
// pipes, a state file being replaced) is opened and closed within a loop
// turn, never during a step. A batchMax of 32 thus needs 130 descriptors;
// a limit of 64 fits 10 messages per step, one of 39 or less fits 1.
const (
	fdsPerMessage = 3
	fdsPerStep    = 2 + syncMax
	fdsOther      = 24
)

// nofileLimits raises the soft RLIMIT_NOFILE toward need as far as the
// hard limit allows and returns both (nofile.Raise); a variable so that
// tests can pretend a limit.
var nofileLimits = nofile.Raise

// fitBatch sizes the preprocessing batch, once at start, to the
// descriptors qmail-send can spare: a batch of batchMax under a low limit
// ran out of them (EMFILE) in every step, each step at every retry, and
// no message was preprocessed any more (QA: 195 of 200 left in todo/
// under a limit of 32). It says so when the batch is smaller than
// batchMax.
func (s *Sched) fitBatch() {
	soft, hard := nofileLimits(fdsOther + fdsPerStep + fdsPerMessage*batchMax)
	s.batchSize = nofile.Fit(batchMax, fdsPerMessage, fdsOther+fdsPerStep, soft)
	if s.batchSize < batchMax {
		s.log.line("warning: preprocessing batch lowered from ", itoa(batchMax), " messages to ", itoa(s.batchSize),
			": the descriptor limit (RLIMIT_NOFILE) is ", strconv.FormatInt(soft, 10), ", hard limit ",
			strconv.FormatInt(hard, 10), "; a message holds up to ", itoa(fdsPerMessage),
			" while its batch is written and ", itoa(fdsOther+fdsPerStep), " are kept for the rest")
	}
}

// batchLimit is the number of messages a step takes: the fitted batch,
// halved at each step that ran out of descriptors (0, in a Sched built
// without Run, is batchMax).
func (s *Sched) batchLimit() int {
	if s.batchSize <= 0 {
		return batchMax
	}
	return s.batchSize
}

// shrinkBatch halves the batch, down to 1, after a step that ran out of
// descriptors (err): the limit is lower than fitBatch counted on, or
// something else holds more than it counted, and the same batch would
// fail the same way at every retry. The smaller batch stays until
// qmail-send is started again.
func (s *Sched) shrinkBatch(err error) {
	was := s.batchLimit()
	if was <= 1 {
		return
	}
	s.batchSize = was / 2
	s.log.line("warning: preprocessing batch lowered from ", itoa(was), " messages to ", itoa(s.batchSize),
		": ", qerr.Bare(err).Error())
}

// syncHook performs one disk wait of preprocessing; rel names the file or
// directory relative to queue/. It is a package variable so that tests
// can record the order of syncs and qmail-clean requests and make a sync
// fail.
var syncHook = func(rel string, sync func() error) error { return sync() }

// todoStep preprocesses the next batch of todo/ entries; it returns the
// number of messages it preprocessed (the loop makes as many pass rounds).
func (s *Sched) todoStep() int {
	if s.exitasap {
		return 0
	}
	if s.todo == nil {
		if s.recent < s.todoBackoff {
			// Out of descriptors a moment ago: each new message's
			// trigger would start a scan that fails at once, a
			// warning per message. The scan at nextTodo (todoSoon)
			// finds them all.
			s.triggered = false
			return 0
		}
		if !s.triggered && s.recent < s.nextTodo {
			return 0
		}
		s.todoRescan = s.recent >= s.nextTodo
		s.triggered = false
		s.pruneDamaged()
		f, err := os.Open(s.path("todo"))
		if err != nil {
			s.sleepRetry("alert: unable to opendir todo, sleeping...")
			return 0
		}
		s.todo = f
		s.nextTodo, s.todoWait = s.recent+sleepTodo, sleepTodo
	}
	deadline := time.Now().Add(batchTime)
	limit := s.batchLimit()
	s.todoHalt, s.noFilesErr = false, nil // a batch of one (preprocess) may have left them
	var batch []*prepared
	for read := 0; len(batch) < limit && (read == 0 || time.Now().Before(deadline)); read++ {
		names, err := s.todo.Readdirnames(1)
		if err != nil || len(names) == 0 {
			s.todo.Close()
			s.todo = nil
			break
		}
		id, ok := parseID(names[0])
		if !ok || inBatch(batch, id) {
			continue
		}
		if s.damagedTodo[id] != "" && !s.todoRescan {
			// Read again, it fails again, and says so: qmail
			// logged a damaged todo/ID once per message queued
			// (a trigger each). The periodic scan tries it.
			continue
		}
		if p := s.prepare(id); p != nil {
			batch = append(batch, p)
		}
		if s.todoHalt {
			break
		}
	}
	s.commit(batch)
	if s.todoHalt {
		// Out of descriptors, in a message's files or in the round:
		// every other todo/ID would fail the same way, one warning
		// each. The scan ends; the next one comes sleepSysfail
		// seconds on (todoBackoff), with a smaller batch.
		s.todoHalt = false
		s.shrinkBatch(s.noFilesErr)
		s.noFilesErr = nil
		if s.todo != nil {
			s.todo.Close()
			s.todo = nil
		}
	}
	return len(batch)
}

// openQueue opens a queue file for preprocessing; a variable so that
// tests can make it fail.
var openQueue = func(path string, flag int) (*os.File, error) {
	if flag&os.O_CREATE != 0 {
		return os.OpenFile(path, flag, 0o600)
	}
	return qhome.OpenRegular(path, flag)
}

// noFiles ends the running scan of todo/ (todoHalt), and makes the next
// wait sleepSysfail seconds whatever triggers come (todoBackoff), when
// err says the process or the system has no descriptor to give (EMFILE,
// ENFILE).
func (s *Sched) noFiles(err error) {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		s.todoHalt = true
		s.noFilesErr = err
		s.todoBackoff = s.recent + sleepSysfail
	}
}

// todoSoon brings the next scan of todo/ forward to sleepSysfail from now.
// A message left in todo/ by a system failure (a full disk, an I/O error,
// qmail-clean refusing) is tried again then, without waiting for the next
// trigger or the 1500 s rescan: on a full queue no trigger comes, since
// qmail-queue refuses everything. A todo/ID that is merely malformed
// (an unknown record type) waits for the ordinary rescan, as in qmail, so
// it does not fill the log every two minutes.
func (s *Sched) todoSoon() {
	s.nextTodo = min(s.nextTodo, s.recent+sleepSysfail)
	s.todoWait = min(s.todoWait, sleepSysfail)
}

func inBatch(batch []*prepared, id uint64) bool {
	for _, p := range batch {
		if p.id == id {
			return true
		}
	}
	return false
}

// preprocess turns one todo/ID into info, local and remote files now
// (a batch of one; qmailctl's delete and bounce of a queued message).
func (s *Sched) preprocess(id uint64) {
	if p := s.prepare(id); p != nil {
		s.commit([]*prepared{p})
	}
}

// Why preprocessing of a todo/ID failed for good: no later attempt can
// succeed until the administrator changes the queue (damagedTodo).
const (
	whyUnknownRecord = "todo file damaged (unknown record type)"
	whyEmptyRecord   = "todo file damaged (empty record)"
	whyMessMissing   = "message file missing"
)

// markDamaged records that preprocessing todo/ID failed for good.
func (s *Sched) markDamaged(id uint64, why string) {
	if s.damagedTodo == nil {
		s.damagedTodo = map[uint64]string{}
	}
	s.damagedTodo[id] = why
}

// pruneDamaged forgets, at the start of each scan of todo/, the damaged
// todo/IDs that are gone (removed by hand): no later preprocessing of
// theirs would clear them.
func (s *Sched) pruneDamaged() {
	for id := range s.damagedTodo {
		if _, err := os.Lstat(s.path(fnFlat("todo", id))); isNoent(err) {
			delete(s.damagedTodo, id)
		}
	}
}

// prepared is a message whose files are written but not yet durable.
type prepared struct {
	id     uint64
	files  []queueFile // info, then the channel files made
	chans  [2]bool     // which channel files exist
	failed bool        // a sync of its files or directories failed
}

// queueFile is an open file of preprocessing, rel relative to queue/.
type queueFile struct {
	rel string
	f   *os.File
}

// prepare does steps 1-3 of queue.md §5 for todo/ID and flushes the files
// it wrote; nil means it failed (logged; todo/ID is left for a later scan).
// A failure no retry can mend (an unknown record type or an empty record
// in todo/ID, or no mess file) is recorded in damagedTodo; any other
// outcome clears what an earlier attempt recorded there.
func (s *Sched) prepare(id uint64) *prepared {
	delete(s.damagedTodo, id)
	todoName := fnFlat("todo", id)
	tf, err := openQueue(s.path(todoName), os.O_RDONLY)
	if err != nil {
		if !isNoent(err) {
			s.noFiles(err)
			s.log.line("warning: unable to open ", todoName)
			if !isDamage(err) {
				s.todoSoon()
			}
		}
		return nil
	}
	defer tf.Close()
	messName := fnSplit("mess", id)
	mst, err := os.Stat(s.path(messName))
	if err != nil {
		s.log.line("warning: unable to stat ", messName)
		if isNoent(err) {
			s.markDamaged(id, whyMessMissing)
		} else if !isDamage(err) {
			s.todoSoon()
		}
		return nil
	}
	infoName := fnSplit("info", id)
	// A bounce/ID found here is another message's: a crash (a power cut
	// that kept the info file's removal but not the bounce file's) left
	// it behind when that message, which had this inode, was done. Kept,
	// it would be sent to this message's sender as a failure notice
	// once this one is delivered (crash QA); qmail leaves it too.
	bounceName := fnFlat("bounce", id)
	for _, n := range remains(id) {
		err := unlink(s.path(n))
		if err != nil && !isNoent(err) {
			s.log.line("warning: unable to unlink ", n)
			s.todoSoon()
			return nil
		}
		if err == nil && n == bounceName {
			s.log.line("warning: removed ", bounceName, ", left by an earlier message with this id")
		}
	}
	info, err := openQueue(s.path(infoName), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		s.noFiles(err)
		s.log.line("warning: unable to create ", infoName)
		s.todoSoon()
		return nil
	}
	p := &prepared{id: id, files: []queueFile{{infoName, info}}}
	var chans [2]*bufio.Writer
	var writers []*bufio.Writer // one per file of p.files
	fail := func() *prepared {
		p.close()
		return nil
	}
	s.log.line("new msg ", utoa(id))
	// A new message on the inode of one that ended: the old one's
	// remover is through (its foop/ID freed the inode), whether or
	// not the loop has seen it yet, so info/ID is this message's.
	delete(s.ended, id)
	infoW := bufio.NewWriterSize(info, writeBuf)
	writers = append(writers, infoW)
	r := bufio.NewReaderSize(tf, readBuf)
	var uid, pid string
	for {
		rec, err := r.ReadString(0)
		if err == io.EOF {
			break // a record without its NUL is ignored
		}
		if err != nil {
			s.log.line("warning: trouble reading ", todoName)
			s.todoSoon()
			return fail()
		}
		rec = rec[:len(rec)-1]
		if rec == "" {
			s.log.line("warning: unknown record type in ", todoName)
			s.markDamaged(id, whyEmptyRecord)
			return fail()
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
			if chans[c] == nil {
				n := fnChan(c, id)
				f, err := openQueue(s.path(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
				if err != nil {
					s.noFiles(err)
					s.log.line("warning: unable to create ", n)
					s.todoSoon()
					return fail()
				}
				p.files = append(p.files, queueFile{n, f})
				p.chans[c] = true
				chans[c] = bufio.NewWriterSize(f, writeBuf)
				writers = append(writers, chans[c])
			}
			chans[c].WriteByte('T')
			chans[c].WriteString(addr)
			chans[c].WriteByte(0)
		default:
			s.log.line("warning: unknown record type in ", todoName)
			s.markDamaged(id, whyUnknownRecord)
			return fail()
		}
	}
	for i, w := range writers {
		if w.Flush() != nil {
			s.log.line("warning: trouble writing to ", p.files[i].rel)
			s.todoSoon()
			return fail()
		}
		// Start write-back now, so the data is on its way while the rest
		// of the batch is written; the fsync of the round waits for it.
		_ = unix.SyncFileRange(int(p.files[i].f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return p
}

func (p *prepared) close() {
	for _, f := range p.files {
		f.f.Close()
	}
}

// dirs lists the split directories p's files were made in.
func (p *prepared) dirs() []string {
	d := []string{"info/" + split(p.id)}
	for c := range p.chans {
		if p.chans[c] {
			d = append(d, chanName[c]+"/"+split(p.id))
		}
	}
	return d
}

// commit makes the batch durable (syncRound), then asks qmail-clean to
// remove todo/ID of each message that synced (step 5 of queue.md §5, the
// commit point), in order, and schedules it.
func (s *Sched) commit(batch []*prepared) {
	if len(batch) == 0 {
		return
	}
	s.syncRound(batch)
	for _, p := range batch {
		p.close()
	}
	for _, p := range batch {
		if p.failed || !s.cleanRequest("todo", p.id) {
			s.todoSoon()
			continue
		}
		any := false
		for c := range p.chans {
			if p.chans[c] {
				s.sched[c].insert(p.id, s.recent)
				any = true
			}
		}
		if !any {
			s.done.insert(p.id, s.recent)
		}
	}
}

// syncJob is one fsync of a round and the messages waiting for it.
type syncJob struct {
	rel   string
	f     *os.File // nil: the directory rel
	users []*prepared
	err   error
}

// syncRound fsyncs every file of the batch and every directory they were
// made in (each once), at most syncMax at a time, and returns when all
// have returned. A message any of whose syncs failed is marked failed.
func (s *Sched) syncRound(batch []*prepared) {
	var jobs []*syncJob
	dirJob := map[string]*syncJob{}
	for _, p := range batch {
		for _, f := range p.files {
			jobs = append(jobs, &syncJob{rel: f.rel, f: f.f, users: []*prepared{p}})
		}
		for _, d := range p.dirs() {
			j := dirJob[d]
			if j == nil {
				j = &syncJob{rel: d}
				dirJob[d] = j
				jobs = append(jobs, j)
			}
			j.users = append(j.users, p)
		}
	}
	run := func(j *syncJob) {
		j.err = syncHook(j.rel, func() error {
			if j.f != nil {
				return j.f.Sync()
			}
			return qhome.SyncDir(s.path(j.rel))
		})
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, syncMax)
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(j)
			<-sem
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		if j.err != nil {
			s.noFiles(j.err) // a directory could not be opened to be synced
			s.log.line("warning: trouble writing to ", j.rel)
			for _, p := range j.users {
				p.failed = true
			}
		}
	}
}
