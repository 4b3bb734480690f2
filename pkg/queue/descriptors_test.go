package queue

// Tests of a queue writer short of descriptors: nothing may need one after
// the commit link (a failure there is a message queued while its caller
// hears a temporary failure, and the caller's retry queues it twice), the
// service fits its jobs to RLIMIT_NOFILE, and says why a job failed.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// watchOpens replaces sysOpenat and sysLinkat for the rest of the test:
// opens of a name that fail says fail with EMFILE, and every open made
// after a todo/ link has succeeded is recorded in the returned list.
func watchOpens(t *testing.T, fail func(name string) bool) (after func() []string) {
	t.Helper()
	restoreFileOps(t)
	var mu sync.Mutex
	var committed bool
	var late []string
	sysLinkat = func(a int, o string, b int, n string, f int) error {
		err := unix.Linkat(a, o, b, n, f)
		if err == nil && strings.HasPrefix(n, "todo/") {
			mu.Lock()
			committed = true
			mu.Unlock()
		}
		return err
	}
	sysOpenat = func(d int, p string, fl int, m uint32) (int, error) {
		mu.Lock()
		if committed {
			late = append(late, p)
		}
		mu.Unlock()
		if fail(p) {
			return -1, unix.EMFILE
		}
		return unix.Openat(d, p, fl, m)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), late...)
	}
}

func isTodo(p string) bool { return p == "todo" || strings.HasSuffix(p, "/todo") }

// isSplitDir is a directory mess/S itself, not a file in it.
func isSplitDir(p string) bool {
	return strings.HasPrefix(p, "mess/") && !strings.Contains(p[len("mess/"):], "/")
}

// A job whose todo/ directory (or trigger) cannot be opened for want of
// descriptors fails before the commit and leaves nothing; it never fails
// with the message in todo/ (as it did when todo/ was opened for its
// fsync after the link). Nothing at all is opened after the link. The
// same job code serves qmail-queue -m.
func TestNothingOpenedAfterCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(string) bool
		code int
	}{
		{"todo/ cannot be opened", isTodo, qq.ExitTodo},
		{"lock/trigger cannot be opened", func(p string) bool { return p == "lock/trigger" }, qq.ExitTodo},
		// The directories flushed before the commit (qmail-queue at a
		// descriptor limit of 12 and 13): trouble with mess/ and intd/,
		// as for the steps that made the names in them; it was 53,
		// "write error or disk full".
		{"mess/S/ cannot be opened", isSplitDir, qq.ExitMess},
		{"intd/ cannot be opened", func(p string) bool { return p == "intd" }, qq.ExitIntd},
		{"nothing fails", func(string) bool { return false }, 0},
	} {
		for _, multi := range []bool{false, true} {
			name := tc.name
			if multi {
				name += ", -m"
			}
			t.Run(name, func(t *testing.T) {
				after := watchOpens(t, tc.fail)
				root := newRoot(t)
				// A FIFO with a reader, as qmail-send keeps it, so that
				// opening the trigger succeeds when not made to fail.
				trigger := filepath.Join(root, "queue/lock/trigger")
				if err := unix.Mkfifo(trigger, 0o622); err != nil {
					t.Fatal(err)
				}
				rd, err := unix.Open(trigger, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(rd)
				var code int
				if multi {
					var results strings.Builder
					code = RunMulti(&MultiConfig{Root: root, In: strings.NewReader("2:x\n,0:,"),
						Envelope: strings.NewReader("Fa@b\x00Tc@d\x00\x00"), Results: &results,
						UID: 1234, PID: 4321, Clock: func() time.Time { return now }})
					if code != 0 && results.String() != strconv.Itoa(code)+" 0\n" {
						t.Errorf("result line %q for exit %d", results.String(), code)
					}
				} else {
					code = run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00"))
				}
				todo, _ := os.ReadDir(filepath.Join(root, "queue", "todo"))
				if code != 0 && len(todo) != 0 {
					t.Fatalf("exit %d with the message in todo/: a retry queues it twice", code)
				}
				if code != tc.code {
					t.Errorf("exit %d, want %d", code, tc.code)
				}
				if f := files(t, root); code != 0 && len(f) != 0 {
					t.Errorf("failed job left %v", f)
				}
				if late := after(); len(late) != 0 {
					t.Errorf("opened after the commit link: %q", late)
				}
				b := make([]byte, 8)
				if n, _ := unix.Read(rd, b); code == 0 && n != 1 {
					t.Errorf("trigger got %d bytes, want 1", n)
				}
			})
		}
	}
}

// A service job opens the directories it flushes before its commit: with
// todo/ impossible to open, a job fails before its commit (nothing stays,
// and the log says why); once todo/ can be opened again the next job
// opens it before its commit and succeeds.
func TestServiceNothingOpenedAfterCommit(t *testing.T) {
	var failTodo atomic.Bool
	failTodo.Store(true)
	watchOpens(t, func(p string) bool { return failTodo.Load() && isTodo(p) })
	root := newRoot(t)
	var log testutil.SyncBuffer
	serviceLog(t, root, 0, &log)
	_, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Perm || qe.Text != qq.ExitError(qq.ExitTodo).Error() {
		t.Errorf("todo/ not openable: %v, want the temporary failure of exit 66", err)
	}
	if f := files(t, root); len(f) != 0 {
		t.Errorf("failed job left %v", f)
	}
	want := "qmail-queued: warning: job failed with 66: open todo: too many open files\n"
	waitFor(t, func() bool { return strings.Contains(log.String(), want) })
	failTodo.Store(false)
	if _, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}); err != nil {
		t.Fatalf("todo/ openable again: %v", err)
	}
	if todo, _ := os.ReadDir(filepath.Join(root, "queue", "todo")); len(todo) != 1 {
		t.Errorf("todo/ holds %d, want 1", len(todo))
	}
}

// fitService: the wanted limits when the descriptors suffice; otherwise
// limits that fit them, with one closer and one waiting refusal at least,
// never more than wanted, and no job at all when not even one fits.
func TestFitService(t *testing.T) {
	want := serviceLimits{jobs: MaxJobs, closers: 4, backlog: 64}
	full := want.need()
	least := serviceLimits{jobs: 1, closers: 1, backlog: 1}.need() // one job
	for _, tc := range []struct {
		nofile int64
		want   serviceLimits
	}{
		{0, want},
		{1 << 20, want},
		{full, want},
		{4096, serviceLimits{jobs: 15, closers: 1, backlog: 16}},
		{1024, serviceLimits{jobs: 2, closers: 1, backlog: 64}},
		{600, serviceLimits{jobs: 1, closers: 1, backlog: 64}},
		{least, serviceLimits{jobs: 1, closers: 1, backlog: 1}},
		{least - 1, serviceLimits{jobs: 0, closers: 1, backlog: 64}},
		{64, serviceLimits{jobs: 0, closers: 1, backlog: 1}},
		{20, serviceLimits{jobs: 0, closers: 1, backlog: 1}},
		{10, serviceLimits{jobs: 0, closers: 1, backlog: 1}},
		{full - 1, serviceLimits{jobs: 64, closers: 4, backlog: 63}},
	} {
		if got := fitService(want, tc.nofile); got != tc.want {
			t.Errorf("fitService(%v, %d) = %v, want %v", want, tc.nofile, got, tc.want)
		}
	}
	prev := 0
	refuse := serviceLimits{jobs: 0, closers: 1, backlog: 1}.need()
	for n := int64(1); n <= full+10; n++ {
		got := fitService(want, n)
		if got.jobs < 0 || got.closers < 1 || got.backlog < 1 ||
			got.jobs > want.jobs || got.closers > want.closers || got.backlog > want.backlog {
			t.Fatalf("nofile %d: %v out of range", n, got)
		}
		if n >= refuse && got.need() > n {
			t.Fatalf("nofile %d: %v needs %d", n, got, got.need())
		}
		if (got.jobs == 0) != (n < least) {
			t.Fatalf("nofile %d: %d jobs (one job needs %d)", n, got.jobs, least)
		}
		if got.jobs < prev {
			t.Fatalf("nofile %d: %d jobs, fewer than with one descriptor less", n, got.jobs)
		}
		prev = got.jobs
	}
}

// With a small descriptor limit the service takes only the jobs that fit
// at once (and says so): the next caller is answered "no" and runs
// qmail-queue. When not one job fits, every caller is answered "no" (not
// "go", then a job that fails for want of descriptors: the caller would
// get a temporary failure where qmail-queue can queue).
func TestServiceFitsDescriptorLimit(t *testing.T) {
	least := serviceLimits{jobs: 1, closers: 1, backlog: 1}.need()
	for _, tc := range []struct {
		nofile int64
		jobs   int
		log    string
	}{
		{least + perJob, 2, "fits 2 jobs at once, not 64\n"},
		{least, 1, "fits 1 job at once, not 64\n"},
		{least - 1, 0, "fits 0 jobs at once, not 64: every caller runs qmail-queue\n"},
		{5, 0, "fits 0 jobs at once, not 64: every caller runs qmail-queue\n"},
	} {
		t.Run(strconv.FormatInt(tc.nofile, 10), func(t *testing.T) {
			saved := nofileFor
			t.Cleanup(func() { nofileFor = saved })
			nofileFor = func(int64) int64 { return tc.nofile }
			root := newRoot(t)
			var log testutil.SyncBuffer
			serviceLog(t, root, 0, &log)
			for range tc.jobs {
				holdSlot(t, root)
			}
			mr, mw, _ := os.Pipe()
			defer mr.Close()
			defer mw.Close()
			s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(mr.Fd()))
			unix.Close(s)
			if a != "no" {
				t.Errorf("caller after %d with a limit of %d descriptors: answer %q, want no", tc.jobs, tc.nofile, a)
			}
			if tc.jobs == 0 {
				// The caller queues all the same, with qmail-queue (absent
				// from this tree: its exec is tried).
				_, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
				if err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
					t.Errorf("caller of a service with no job: %v, want qmail-queue's exec to be tried", err)
				}
			}
			want := "qmail-queued: warning: descriptor limit " + strconv.FormatInt(tc.nofile, 10) + " " + tc.log
			if !strings.Contains(log.String(), want) {
				t.Errorf("log %q, want %q", log.String(), want)
			}
		})
	}
}

// The job log writes at most one line per interval and counts the lines
// it held back in the next one.
func TestErrLogRateLimited(t *testing.T) {
	var buf testutil.SyncBuffer
	l := &errLog{w: &buf, every: time.Hour}
	state := func() (writing bool, dropped int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.writing, l.dropped
	}
	l.warn("a")
	waitFor(t, func() bool { w, _ := state(); return !w && buf.String() != "" })
	l.warn("b") // within the hour, no write in progress: held back
	l.warn("c")
	if w, d := state(); w || d != 2 {
		t.Fatalf("after two lines within the interval: writing %v, %d held back; want false, 2", w, d)
	}
	l.mu.Lock()
	l.next = time.Time{} // the interval is over
	l.mu.Unlock()
	l.warn("d")
	want := "qmail-queued: warning: a\nqmail-queued: warning: d (and 2 more not shown)\n"
	waitFor(t, func() bool { return buf.String() == want })
}

// fakeTimers stands in for the errLog's clock and timer: the clock moves
// only when told, and scheduled functions run only when fired.
type fakeTimers struct {
	mu  sync.Mutex
	now time.Time
	due []func()
}

func (f *fakeTimers) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTimers) after(_ time.Duration, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.due = append(f.due, fn)
}

func (f *fakeTimers) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// fire runs the functions scheduled so far; it reports whether there
// were any.
func (f *fakeTimers) fire() bool {
	f.mu.Lock()
	due := f.due
	f.due = nil
	f.mu.Unlock()
	for _, fn := range due {
		fn()
	}
	return len(due) > 0
}

// A burst of failures that no other failure follows is counted all the
// same: once the interval is over a timer writes how many lines were held
// back. While a write blocks the count waits for it.
func TestErrLogCountWritten(t *testing.T) {
	var buf testutil.SyncBuffer
	ft := &fakeTimers{now: now}
	l := &errLog{w: &buf, every: time.Second, clock: ft.clock, after: ft.after}
	l.warn("a")
	waitFor(t, func() bool { return buf.String() != "" })
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return !l.writing })
	l.warn("b")
	l.warn("c")
	l.warn("d")
	ft.advance(time.Second)
	if !ft.fire() {
		t.Fatal("3 lines held back and no count scheduled")
	}
	want := "qmail-queued: warning: a\nqmail-queued: warning: 3 more job failures not shown\n"
	waitFor(t, func() bool { return buf.String() == want })
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return !l.writing })
	// The count started no interval: the next failure is shown at once.
	l.warn("e")
	want += "qmail-queued: warning: e\n"
	waitFor(t, func() bool { return buf.String() == want })

	// A log that blocks: lines are counted, and the count is written
	// once the write has ended.
	bw := &blockingWriter{release: make(chan struct{})}
	ft = &fakeTimers{now: now}
	l = &errLog{w: bw, every: time.Second, clock: ft.clock, after: ft.after}
	l.warn("a") // blocks
	ft.advance(time.Second)
	l.warn("b") // interval over, but the write still blocks: held back
	ft.advance(time.Second)
	if !ft.fire() {
		t.Fatal("a line held back and no count scheduled")
	}
	if got := bw.String(); got != "" {
		t.Fatalf("written while the first write blocks: %q", got)
	}
	close(bw.release)
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return !l.writing })
	ft.advance(time.Second)
	if !ft.fire() {
		t.Fatal("count not scheduled again while the write blocked")
	}
	want = "qmail-queued: warning: a\nqmail-queued: warning: 1 more job failure not shown\n"
	waitFor(t, func() bool { return bw.String() == want })
}

// Lines still held back when the service stops are counted then (the
// timer that would have counted them ends with the process), and a log
// that blocks does not hold the stop.
func TestErrLogCountAtClose(t *testing.T) {
	var buf testutil.SyncBuffer
	ft := &fakeTimers{now: now}
	l := &errLog{w: &buf, every: time.Second, clock: ft.clock, after: ft.after}
	l.warn("a")
	waitFor(t, func() bool { l.mu.Lock(); defer l.mu.Unlock(); return !l.writing })
	l.warn("b")
	l.warn("c")
	l.close(10 * time.Second)
	want := "qmail-queued: warning: a\nqmail-queued: warning: 2 more job failures not shown\n"
	if got := buf.String(); got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	ft.fire() // the timer, had it run after all: nothing left to count
	if got := buf.String(); got != want {
		t.Errorf("after the timer: %q, want %q", got, want)
	}

	bw := &blockingWriter{release: make(chan struct{})}
	defer close(bw.release)
	l = &errLog{w: bw, every: time.Hour, clock: ft.clock, after: ft.after}
	l.mu.Lock()
	l.dropped = 1
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.close(50 * time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("close waited for a log that blocks")
	}
}

// blockingWriter blocks every write until release is closed.
type blockingWriter struct {
	release chan struct{}
	buf     testutil.SyncBuffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.buf.Write(p)
}

func (b *blockingWriter) String() string { return b.buf.String() }
