package queue

import (
	"errors"
	"github.com/hqmail/hqmail/internal/testutil"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// service runs the queue service on root until the test ends.
func service(t *testing.T, root string, maxJobs int) (stop func()) {
	t.Helper()
	return serviceLog(t, root, maxJobs, nil)
}

// serviceLog is service with its warnings written to log (nil: stderr).
func serviceLog(t *testing.T, root string, maxJobs int, log io.Writer) (stop func()) {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "public"), 0o755)
	sock, lock, err := Listen(root)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// Jobs still running after the grace (a test that stops the service
	// while a slot is held) end once the test's other cleanups have let
	// them go: wait for them last, so that none runs into the next test
	// (which may replace the file operation hooks they use).
	var jobs sync.WaitGroup
	t.Cleanup(func() {
		ended := make(chan struct{})
		go func() { jobs.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			t.Error("service jobs still running 30 s after the test")
		}
	})
	done := make(chan struct{})
	go func() {
		Serve(&ServiceConfig{Root: root, Listener: sock, Stop: int(r.Fd()), MaxJobs: maxJobs,
			Clock: func() time.Time { return now }, Grace: 5 * time.Second, Log: log, jobs: &jobs})
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			w.Close()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("service did not stop")
			}
			r.Close()
			unix.Close(lock)
		})
	}
	t.Cleanup(stop)
	return stop
}

// The service queues what qmail-queue would, naming the caller (its
// kernel uid and pid) in the Received line and intd/.
func TestServiceQueues(t *testing.T) {
	for _, long := range []bool{false, true} {
		t.Run("long root "+strconv.FormatBool(long), func(t *testing.T) {
			root := newRoot(t)
			if long { // beyond a socket address: reached through /proc/self/fd
				deep := filepath.Join(root, strings.Repeat("d", 60), strings.Repeat("e", 60))
				os.MkdirAll(deep, 0o755)
				os.Rename(filepath.Join(root, "queue"), filepath.Join(deep, "queue"))
				root = deep
			}
			service(t, root, 0)
			// No bin/qmail-queue in this tree: only the service can queue.
			pid, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("Subject: x\n\nbody\n"),
				&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d", "e@f"}})
			if err != nil {
				t.Fatalf("Queue: %v", err)
			}
			if pid != os.Getpid() {
				t.Errorf("pid %d, want the caller's %d", pid, os.Getpid())
			}
			fs := files(t, root)
			if len(fs) != 3 {
				t.Fatalf("queue files %v, want mess, intd, todo", fs)
			}
			var mess, intd string
			for _, f := range fs {
				b, _ := os.ReadFile(filepath.Join(root, "queue", f))
				switch {
				case strings.HasPrefix(f, "mess/"):
					mess = string(b)
				case strings.HasPrefix(f, "intd/"):
					intd = string(b)
				}
			}
			uid := os.Getuid()
			wantRecv := "Received: (qmail " + strconv.Itoa(os.Getpid()) + " invoked by uid " + strconv.Itoa(uid) + "); 26 Sep 1995 04:46:54 -0000\nSubject: x\n\nbody\n"
			if mess != wantRecv {
				t.Errorf("mess = %q, want %q", mess, wantRecv)
			}
			wantIntd := "u" + strconv.Itoa(uid) + "\x00p" + strconv.Itoa(os.Getpid()) + "\x00Fa@b\x00Tc@d\x00Te@f\x00"
			if intd != wantIntd {
				t.Errorf("intd = %q, want %q", intd, wantIntd)
			}
		})
	}
}

// A message whose envelope never comes (the caller's copy failed) is
// refused with 54 and leaves nothing behind; so is a bad envelope (91).
func TestServiceRefuses(t *testing.T) {
	root := newRoot(t)
	service(t, root, 0)
	_, err := qq.Queue(qq.Options{Root: root}, &failingReader{}, &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Perm || qe.Text != qq.ExitError(qq.ExitRead).Error() {
		t.Errorf("broken message: %v, want the text of exit 54", err)
	}
	_, err = qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{strings.Repeat("x", qq.MaxAddr+1)}})
	if err == nil || err.Error() != qq.ExitError(qq.ExitAddrTooLong).Error() {
		t.Errorf("long address: %v, want the text of exit 11", err)
	}
	if fs := files(t, root); len(fs) != 0 {
		t.Errorf("left in the queue: %v", fs)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		return 0, errors.New("read error")
	}
	f.n++
	return copy(p, "Subject: half\n"), nil
}

// rawRequest connects and sends a request; it returns the connection and
// the service's answer. A reset or the end of the connection without an
// answer is returned as "no": serve.go's refusal may close a connection
// with the request still unread, and the caller then sees the reset before
// the "no" queued ahead of it, which means the same (pkg/qq's caller takes
// anything but "go" as not taken).
func rawRequest(t *testing.T, root, hello string, fds ...int) (int, string) {
	t.Helper()
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectService(s, root); err != nil {
		t.Fatal(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// A service that refuses at once may answer "no" and close before
	// the request is there (the caller then sees "no" or a reset, which
	// mean the same): the send fails, and the answer is still to read.
	if err := unix.Sendmsg(s, []byte(hello), oob, nil, unix.MSG_NOSIGNAL); err != nil && err != unix.EPIPE {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	b := make([]byte, 64)
	n, err := recvAnswer(s, b)
	if err == unix.ECONNRESET || (err == nil && n == 0) {
		return s, "no"
	}
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return s, string(b[:n])
}

// Requests of another protocol, or without exactly two descriptors, are
// answered "no" (the caller runs qmail-queue) and nothing is read.
func TestServiceBadRequests(t *testing.T) {
	root := newRoot(t)
	service(t, root, 0)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		hello string
		fds   []int
	}{
		{"Q2", []int{int(r.Fd()), int(r.Fd())}},
		{"Q1", nil},
		{"Q1", []int{int(r.Fd())}},
		{"Q1", []int{int(r.Fd()), int(r.Fd()), int(r.Fd())}},
		{"Q1xxxxxxxxxxxxxxxxxxxxxxxxx", []int{int(r.Fd()), int(r.Fd())}},
	} {
		s, a := rawRequest(t, root, tc.hello, tc.fds...)
		unix.Close(s)
		if a != "no" {
			t.Errorf("%q with %d fds: answer %q, want no", tc.hello, len(tc.fds), a)
		}
	}
	if fs := files(t, root); len(fs) != 0 {
		t.Errorf("left in the queue: %v", fs)
	}
}

// With every job slot taken by a caller that does not write, the service
// answers "no" at once; the slot's job then ends with the caller's pipes.
func TestServiceBusy(t *testing.T) {
	root := newRoot(t)
	service(t, root, 1)
	mr, mw, _ := os.Pipe()
	er, ew, _ := os.Pipe()
	s1, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(er.Fd()))
	defer unix.Close(s1)
	mr.Close()
	er.Close()
	if a != "go" {
		t.Fatalf("first caller: %q", a)
	}
	// A second caller is not taken: qq.Queue runs qmail-queue (absent
	// here, so its exec failure is the result) instead of waiting.
	_, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	if err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
		t.Errorf("second caller while busy: %v, want qmail-queue's exec to be tried", err)
	}
	// The first caller gives up: its job ends with 54, nothing stays.
	mw.Close()
	ew.Close()
	b := make([]byte, 64)
	n, _, _, _, err := unix.Recvmsg(s1, b, nil, 0)
	if err != nil || string(b[:n]) != "54 0" {
		t.Errorf("result of the abandoned job: %q %v, want \"54 0\"", b[:n], err)
	}
	if fs := files(t, root); len(fs) != 0 {
		t.Errorf("left in the queue: %v", fs)
	}
}

// Once stopped, the socket is gone and callers fall back to qmail-queue
// (absent in this tree: the exec failure is the result). A second service
// on a tree already served is refused.
func TestServiceStopAndSecond(t *testing.T) {
	root := newRoot(t)
	stop := service(t, root, 0)
	if _, _, err := Listen(root); !errors.Is(err, ErrRunning) {
		t.Errorf("second Listen: %v, want ErrRunning", err)
	}
	stop()
	if _, err := os.Lstat(filepath.Join(root, qq.ServiceSocket)); !os.IsNotExist(err) {
		t.Errorf("socket after stop: %v", err)
	}
	_, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	if err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
		t.Errorf("after stop: %v, want qmail-queue's exec to be tried", err)
	}
}

// Many callers at once: every message queued once, each under its own
// id, and no pid/ file left.
func TestServiceConcurrent(t *testing.T) {
	root := newRoot(t)
	service(t, root, 0)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("Subject: "+strconv.Itoa(i)+"\n\n"),
				&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	todo, _ := os.ReadDir(filepath.Join(root, "queue", "todo"))
	pid, _ := os.ReadDir(filepath.Join(root, "queue", "pid"))
	if len(todo) != n || len(pid) != 0 {
		t.Errorf("todo %d (want %d), pid/ %d (want 0)", len(todo), n, len(pid))
	}
}

// groupSync: callers that ask while an fsync runs share the next one, and
// every caller returns only after an fsync that started after it asked.
func TestGroupSync(t *testing.T) {
	root := newRoot(t)
	g := &groupSync{}
	var events atomic.Int64 // numbers callers' requests and fsync starts in one order
	var mu sync.Mutex
	var done []int64 // start numbers of finished fsyncs
	first := make(chan struct{})
	old := sysFsync
	t.Cleanup(func() { sysFsync = old })
	var calls atomic.Int64
	sysFsync = func(fd int) error {
		start := events.Add(1)
		if calls.Add(1) == 1 {
			<-first // hold the first round until every caller waits
		}
		err := old(fd)
		mu.Lock()
		done = append(done, start)
		mu.Unlock()
		return err
	}
	const n = 20
	var wg sync.WaitGroup
	asked := make([]int64, n)
	// Each caller has its own descriptor of intd/, as each job has: they
	// share the fsyncs all the same (the same directory).
	fds := make([]int, n)
	for i := range fds {
		fd, err := unix.Open(filepath.Join(root, "queue", "intd"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		fds[i] = fd
	}
	wg.Add(1)
	go func() { // caller 0 starts the first round
		defer wg.Done()
		asked[0] = events.Add(1)
		if err := g.sync("intd", fds[0]); err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, func() bool { return calls.Load() == 1 })
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			asked[i] = events.Add(1)
			if err := g.sync("intd", fds[i]); err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range done {
				if s > asked[i] {
					return
				}
			}
			t.Errorf("caller %d (asked at %d) returned without an fsync started after it: %v", i, asked[i], done)
		}(i)
	}
	waitFor(t, func() bool { return g.waiting() == n-1 })
	close(first)
	wg.Wait()
	if c := calls.Load(); c != 2 {
		t.Errorf("%d fsyncs for %d callers, want 2 (the first, and one for all who asked during it)", c, n)
	}
}

// waitFor polls cond for up to 30 s. The bound is generous: on a machine
// busy with other test runs a close handed to the service's closer was once
// seen to take over 10 s to start.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30 s")
		}
	}
}

// A caller that hangs up in the middle of its message has given it up, as
// one that kills its qmail-queue has: the job ends and leaves nothing, even
// when the message descriptor does not end (a pipe still open here; it
// could as well be /dev/zero, which would fill the disk).
func TestServiceCallerGone(t *testing.T) {
	root := newRoot(t)
	service(t, root, 0)
	mr, mw, _ := os.Pipe()
	defer mr.Close()
	defer mw.Close()
	er, ew, _ := os.Pipe()
	defer er.Close()
	defer ew.Close()
	mw.WriteString("Subject: never ends\n")
	s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(er.Fd()))
	if a != "go" {
		t.Fatalf("answer %q", a)
	}
	// Wait until the job has made its files and is reading, then leave.
	waitFor(t, func() bool { return len(files(t, root)) > 0 })
	unix.Close(s)
	waitFor(t, func() bool { return len(files(t, root)) == 0 })
}

// A service started while a stopping one still holds the tree's lock (a
// quick restart: the old one finishes its jobs for up to a minute) waits
// and takes over, instead of exiting and leaving the tree without one.
func TestServiceWaitsForLock(t *testing.T) {
	saved := lockWait
	t.Cleanup(func() { lockWait = saved })
	lockWait = 20 * time.Second
	root := newRoot(t)
	stop := service(t, root, 0)
	type result struct {
		sock, lock int
		err        error
	}
	got := make(chan result, 1)
	go func() {
		s, l, err := listenWaiting(root, -1)
		got <- result{s, l, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("returned while the lock was held: %v", r.err)
	case <-time.After(1500 * time.Millisecond):
	}
	stop()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("after the first stopped: %v", r.err)
		}
		unix.Close(r.sock)
		unix.Close(r.lock)
	case <-time.After(15 * time.Second):
		t.Fatal("did not take over within 15 s of the first one's stop")
	}
}

// tcpState is the state of the IPv4 TCP socket with local port port in
// /proc/net/tcp ("04" is FIN_WAIT1: closed by its owner with data still
// to send), or "" if there is none.
func tcpState(t *testing.T, port int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := "0100007F:" + strings.ToUpper(strconv.FormatInt(int64(port)|0x10000, 16)[1:])
	state := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == want {
			// Linux lets connections to other destinations share a local
			// port (another program's, on a busy machine): a line in
			// FIN_WAIT1 is the one looked for.
			if f[3] == finWait1 {
				return f[3]
			}
			if state == "" {
				state = f[3]
			}
		}
	}
	return state
}

const finWait1 = "04"

// passLingering sends the service a request carrying fd (a lingering
// socket) as both descriptors and gives up its own copy, without
// lingering should its close be the final one (the service may have
// taken and closed its copy first). It returns the connection. A send
// that fails (the service closed the connection before the request was
// there) is tried again on a new connection.
func passLingering(t *testing.T, root string, fd int) int {
	t.Helper()
	for i := 0; ; i++ {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(s) })
		if err := connectService(s, root); err != nil {
			t.Fatal(err)
		}
		err = unix.Sendmsg(s, []byte("Q1"), unix.UnixRights(fd, fd), nil, unix.MSG_NOSIGNAL)
		if err == nil {
			testutil.CloseNoLinger(t, fd)
			return s
		}
		if i == 100 {
			t.Fatalf("request not sent: %v", err)
		}
	}
}

// holdSlot takes a job slot with a request whose pipes are never written
// (until the end of the test).
func holdSlot(t *testing.T, root string) {
	t.Helper()
	if a := answer(t, root); a != "go" {
		t.Fatalf("slot holder: answer %q, want go", a)
	}
}

// blockRefusals makes the service's closers block in their close of a
// refused connection, as the close of a file on a FUSE mount can (a
// lingering socket no longer does: the service turns lingering off).
// Call it before starting the service. Each close that starts is reported
// on started; proceed lets one go on. All go on at the end of the test.
func blockRefusals(t *testing.T) (started <-chan int, proceed func()) {
	t.Helper()
	saved := closeRefused
	st := make(chan int, 100)
	next := make(chan struct{})
	done := make(chan struct{})
	closeRefused = func(conn int) {
		st <- conn
		select {
		case <-next:
		case <-done:
		}
		qq.CloseConn(conn)
	}
	t.Cleanup(func() {
		close(done)
		closeRefused = saved
	})
	proceed = func() {
		select {
		case next <- struct{}{}:
		case <-time.After(30 * time.Second):
			t.Fatal("no close waiting to go on")
		}
	}
	return st, proceed
}

// waitStarted waits (at most 30 s) for a close reported on started.
func waitStarted(t *testing.T, started <-chan int) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no refused connection's close started in 30 s")
	}
}

// A caller refused because every slot is taken may pass descriptors whose
// final close blocks (a file on a FUSE mount): the service must not close
// them on the thread that accepts, or every later caller waits for its
// answer (and, once the backlog is full, in connect) for as long as the
// close lasts. While such a close is still in progress, another caller is
// answered "no" and runs qmail-queue.
func TestServiceRefusalCloseBlocks(t *testing.T) {
	started, _ := blockRefusals(t)
	root := newRoot(t)
	service(t, root, 1)
	holdSlot(t, root)
	mr, mw, _ := os.Pipe()
	defer mr.Close()
	defer mw.Close()
	s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(mr.Fd()))
	unix.Close(s)
	if a != "no" {
		t.Fatalf("first refused caller: answer %q, want no", a)
	}
	waitStarted(t, started) // its close has begun, and blocks
	s, a = rawRequest(t, root, "Q1", int(mr.Fd()), int(mr.Fd()))
	unix.Close(s)
	if a != "no" {
		t.Errorf("caller during a blocked close: answer %q, want no", a)
	}
}

// When every slot is taken and every closer is stuck in a close (one
// closer, one connection waiting for it here), the service stops
// accepting rather than close anything on its loop or keep more: callers
// wait in the backlog (and run qmail-queue after their answer timeout).
// It accepts again once a closer is free, and a stop is honoured all the
// same, even when the connections left in the backlog carry descriptors
// whose close blocks (closing the listener closes them, and the kernel
// does not empty them first: a lingering socket lingers there).
func TestServiceRefusalsSaturated(t *testing.T) {
	savedClosers, savedBacklog := refusalClosers, refusalBacklog
	t.Cleanup(func() { refusalClosers, refusalBacklog = savedClosers, savedBacklog })
	refusalClosers, refusalBacklog = 1, 1
	started, proceed := blockRefusals(t)
	root := newRoot(t)
	stop := service(t, root, 1)
	holdSlot(t, root)
	mr, mw, _ := os.Pipe()
	defer mr.Close()
	defer mw.Close()
	s1, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(mr.Fd()))
	defer unix.Close(s1)
	if a != "no" {
		t.Fatalf("first refused caller: answer %q, want no", a)
	}
	waitStarted(t, started) // the closer is stuck
	s2, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(mr.Fd()))
	defer unix.Close(s2)
	if a != "no" {
		t.Fatalf("caller waiting for the closer: answer %q, want no", a)
	}
	// No slot, no closer, no room: the next caller stays in the backlog.
	v, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(v)
	if err := connectService(v, root); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(v, []byte("Q1"), unix.UnixRights(int(mr.Fd()), int(mr.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((500 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(v, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	b := make([]byte, 64)
	if n, err := recvAnswer(v, b); err != unix.EAGAIN {
		t.Fatalf("caller answered %q (%v) while nothing could take or refuse it", b[:n], err)
	}
	// The closer's close ends: it takes the waiting connection (and is
	// stuck again), and the loop goes on: the caller is refused.
	proceed()
	waitStarted(t, started)
	tv = unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	unix.SetsockoptTimeval(v, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	n, err := recvAnswer(v, b)
	if err != nil || string(b[:n]) != "no" {
		t.Fatalf("caller after the closer was free: %q %v, want no", b[:n], err)
	}
	// Saturated again; a caller whose descriptor lingers waits in the
	// backlog, and the service still stops.
	fd4, port4, _ := testutil.LingeringSocket(t, 3600)
	passLingering(t, root, fd4)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop")
	}
	// The listener's close, left to run on its own, has closed the
	// backlog's lingering socket: the stop did not wait for it.
	waitFor(t, func() bool { return tcpState(t, port4) == finWait1 })
}

// replaceDir moves the directory dir away (to dir.old) and makes a new,
// empty one with the same owner and mode in its place, as a repair does
// (mv queue/todo queue/todo.bad; qmail-install). It returns the new one's
// identity.
func replaceDir(t *testing.T, dir string) dirID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, os.FileMode(st.Mode&0o7777)); err != nil {
		t.Fatal(err)
	}
	return statID(t, dir)
}

func statID(t *testing.T, dir string) dirID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dirID{dev: uint64(st.Dev), ino: st.Ino}
}

// A queue directory replaced while the service runs (todo/ or intd/ moved
// away and made anew, or the whole queue moved and installed again) is
// the one flushed for the next message: the fsync of todo/ after the
// commit link, and that of intd/ before it, are made on a descriptor of
// the new directory, where the message's names are, not on one of the
// directory moved away (a message acknowledged but not durable).
func TestServiceReplacedDirectory(t *testing.T) {
	for _, tc := range []string{"todo", "intd", "queue"} {
		t.Run(tc, func(t *testing.T) {
			restoreFileOps(t)
			var mu sync.Mutex
			recording, committed := false, false
			var before, after []dirID // identities fsynced before and after the link
			sysLinkat = func(a int, o string, b int, n string, f int) error {
				err := unix.Linkat(a, o, b, n, f)
				if err == nil && strings.HasPrefix(n, "todo/") {
					mu.Lock()
					committed = true
					mu.Unlock()
				}
				return err
			}
			sysFsync = func(fd int) error {
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
					mu.Lock()
					if recording && committed {
						after = append(after, dirID{dev: uint64(st.Dev), ino: st.Ino})
					} else if recording {
						before = append(before, dirID{dev: uint64(st.Dev), ino: st.Ino})
					}
					mu.Unlock()
				}
				return unix.Fsync(fd)
			}
			root := newRoot(t)
			service(t, root, 0)
			env := &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}
			// A first message: the service is up and has flushed its
			// directories once.
			if _, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), env); err != nil {
				t.Fatal(err)
			}
			q := filepath.Join(root, "queue")
			if tc == "queue" {
				if err := os.Rename(q, q+".old"); err != nil {
					t.Fatal(err)
				}
				fresh := newRoot(t)
				if err := os.Rename(filepath.Join(fresh, "queue"), q); err != nil {
					t.Fatal(err)
				}
			} else {
				replaceDir(t, filepath.Join(q, tc))
			}
			todo, intd := statID(t, filepath.Join(q, "todo")), statID(t, filepath.Join(q, "intd"))
			mu.Lock()
			recording, committed = true, false
			mu.Unlock()
			if _, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("y\n"), env); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			want := 1 // the second message in the new todo/
			if tc == "intd" {
				want = 2 // both in the same todo/
			}
			if got, _ := os.ReadDir(filepath.Join(q, "todo")); len(got) != want {
				t.Fatalf("todo/ holds %d, want %d", len(got), want)
			}
			if len(after) != 1 || after[0] != todo {
				t.Errorf("after the link: fsyncs of %v, want one of the new todo/ %v", after, todo)
			}
			found := false
			for _, id := range before {
				found = found || id == intd
			}
			if !found {
				t.Errorf("before the link: fsyncs of %v, none of the new intd/ %v", before, intd)
			}
		})
	}
}

// TestServiceCallerGoneBeforeCommit (regression QA): a caller that hangs
// up after it has passed the whole message, while the service flushes it
// (a ^C to a sendmail waiting for its result), has given it up as well:
// the job asks once more before the commit link and removes the message.
// It was queued and delivered although sendmail had died of the ^C, where
// a qmail-queue killed then removes it.
func TestServiceCallerGoneBeforeCommit(t *testing.T) {
	root := newRoot(t)
	flushing := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	old := sysFsync
	sysFsync = func(fd int) error {
		once.Do(func() { close(flushing); <-release })
		return old(fd)
	}
	t.Cleanup(func() { sysFsync = old })
	service(t, root, 0)
	mr, mw, _ := os.Pipe()
	defer mr.Close()
	er, ew, _ := os.Pipe()
	defer er.Close()
	mw.WriteString("Subject: interrupted\n\nbody\n")
	mw.Close()
	ew.WriteString("Fa@b\x00Tc@d\x00\x00")
	ew.Close()
	s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(er.Fd()))
	if a != "go" {
		t.Fatalf("answer %q", a)
	}
	select {
	case <-flushing:
	case <-time.After(30 * time.Second):
		t.Fatal("the job never flushed")
	}
	unix.Close(s) // the caller dies while the message is flushed
	close(release)
	waitFor(t, func() bool { return len(files(t, root)) == 0 })
	// And a caller that stays gets its message queued.
	if _, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("Subject: x\n\nbody\n"),
		&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}); err != nil {
		t.Fatalf("Queue: %v", err)
	}
	if fs := files(t, root); len(fs) != 3 {
		t.Errorf("queue files %v, want mess, intd, todo", fs)
	}
}
