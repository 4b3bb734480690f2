package keep

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
)

const hello = "fake -k 1\x00"

// The test binary doubles as a kept program when HQ_KEEP_FAKE is set:
// "echo" greets and answers each request with "pid|fields" (the fields
// joined by ",", then "|" and the passed file's contents, if any); "once"
// answers one request with "pid|request" and exits ("linger": half a
// second later, reading nothing more); "crash" greets and exits on the
// first request; "mute" never greets. On the first request "fatal" writes
// a Go runtime trace on fd 2 and exits 2, and "panic" panics; "stale"
// writes a panic line and far more than a pipe holds on fd 2 and
// answers, then exits on the second request without a word. "term"
// catches SIGTERM from its start; on a request it creates the file
// $HQ_KEEP_MARK and answers "term" once a TERM has come (at most 20 s).
func TestMain(m *testing.M) {
	if mode := os.Getenv("HQ_KEEP_FAKE"); mode != "" {
		fake(mode)
		os.Exit(0)
	}
	// Each fake is the test binary started again (instrumented under
	// -race) and must greet within HelloTimeout: the default's 5 s can pass
	// on a loaded machine. The tests that want the timeout to fire set
	// their own short one.
	HelloTimeout = 30 * time.Second
	os.Exit(m.Run())
}

func fake(mode string) {
	if mode == "mute" {
		b := make([]byte, 100)
		for {
			if n, err := unix.Read(0, b); n <= 0 || err != nil {
				return
			}
		}
	}
	if mode == "once" || mode == "linger" {
		// Answer one request, then exit: a process that dies while idle.
		// "linger" stays half a second first, without reading, so that
		// the next request is sent to it and left unread when it exits.
		unix.Write(0, []byte(hello))
		buf := make([]byte, 4096)
		if n, err := unix.Read(0, buf); err == nil && n > 0 {
			unix.Write(0, []byte(strconv.Itoa(os.Getpid())+"|"+string(buf[:n])))
		}
		if mode == "linger" {
			time.Sleep(500 * time.Millisecond)
		}
		return
	}
	if mode == "term" {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		Serve(0, hello, 4096, func(r *Request) []byte {
			os.WriteFile(os.Getenv("HQ_KEEP_MARK"), nil, 0o644)
			select {
			case <-c:
				return []byte("term")
			case <-time.After(20 * time.Second):
				return []byte("no TERM")
			}
		})
		return
	}
	// The program side is the package's own Serve; a passed descriptor's
	// contents are appended to the answer after a second "|".
	requests := 0
	Serve(0, hello, 4096, func(r *Request) []byte {
		requests++
		switch {
		case mode == "crash":
			os.Exit(0)
		case mode == "fatal":
			unix.Write(2, []byte(goTrace))
			os.Exit(2)
		case mode == "panic":
			// Serve's deferred close of the socket runs before the
			// runtime prints this.
			panic("kept process gave up")
		case mode == "stale" && requests == 1:
			// Raw writes, as the runtime's: past the pipe's buffer they
			// fail (the pipe is non-blocking) rather than wait.
			unix.Write(2, []byte("panic: stale text of the first request\n"))
			junk := []byte(strings.Repeat("x", 4096))
			for range 256 {
				unix.Write(2, junk)
			}
		case mode == "stale":
			os.Exit(0)
		}
		reply := strconv.Itoa(os.Getpid()) + "|" + strings.Join(r.Args, ",")
		if r.File != nil {
			b, _ := io.ReadAll(r.File)
			reply += "|" + string(b)
		}
		return []byte(reply)
	})
}

// goTrace is what the "fatal" fake writes.
const goTrace = testutil.GoTrace

type testPool struct {
	*Pool
	held  atomic.Bool
	cache atomic.Int64
}

func newPool(t *testing.T) *testPool {
	tp := &testPool{}
	tp.cache.Store(int64(time.Minute))
	tp.Pool = &Pool{
		Program: os.Args[0],
		Hello:   hello,
		Cache:   func() time.Duration { return time.Duration(tp.cache.Load()) },
		Held:    tp.held.Load,
	}
	t.Cleanup(tp.Close)
	return tp
}

func starter(mode string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HQ_KEEP_FAKE="+mode)
		return cmd
	}
}

func do(t *testing.T, p *testPool, key, mode, req string) (pid, answer string, res Result) {
	t.Helper()
	reply, res := p.Do(key, starter(mode), []byte(req), -1)
	if res != Answered {
		return "", "", res
	}
	pid, answer, _ = strings.Cut(string(reply), "|")
	return pid, answer, res
}

func waitIdle(t *testing.T, p *testPool, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); p.Idle() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle processes, want %d", p.Idle(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReuseByKey(t *testing.T) {
	p := newPool(t)
	a, ans, res := do(t, p, "k1", "echo", "one")
	if res != Answered || ans != "one" {
		t.Fatalf("first: %v %q", res, ans)
	}
	b, _, _ := do(t, p, "k1", "echo", "two")
	c, _, _ := do(t, p, "k2", "echo", "three")
	if a != b {
		t.Errorf("same key, processes %s and %s", a, b)
	}
	if a == c {
		t.Errorf("other key, same process %s", a)
	}
	if p.Idle() != 2 {
		t.Errorf("%d idle, want 2", p.Idle())
	}
}

// TestCacheChangeAppliesToIdle: Cache read again for the processes already
// idle: set to 0, they are closed at the next request (keep mode off);
// shortened, the reaper closes them by the new time (they stayed open by
// the old one, beside the one-shot deliveries).
func TestCacheChangeAppliesToIdle(t *testing.T) {
	p := newPool(t)
	do(t, p, "k1", "echo", "one")
	if p.Idle() != 1 {
		t.Fatalf("%d idle", p.Idle())
	}
	p.cache.Store(0)
	if _, _, res := do(t, p, "k2", "echo", "two"); res != NoProcess || p.Idle() != 0 {
		t.Errorf("cache 0: result %v, %d idle; want NoProcess, 0 idle", res, p.Idle())
	}
	p.cache.Store(int64(time.Hour))
	do(t, p, "k1", "echo", "three")
	p.cache.Store(int64(time.Millisecond))
	waitIdle(t, p, 0)
}

// TestLimit: at Limit processes, a request for a new key takes the oldest
// idle process instead of starting one, so that busy and idle processes
// together never pass it; below the limit, each key gets its own.
func TestLimit(t *testing.T) {
	p := newPool(t)
	p.Limit = 2
	a, _, _ := do(t, p, "k1", "echo", "one")
	b, _, _ := do(t, p, "k2", "echo", "two")
	if a == b {
		t.Fatalf("below the limit, k2 took k1's process %s", a)
	}
	c, _, _ := do(t, p, "k3", "echo", "three") // at the limit: k1's, the oldest
	if c != a || p.Idle() != 2 {
		t.Errorf("k3 ran in %s (k1 %s, k2 %s), %d idle; want k1's process, 2 idle", c, a, b, p.Idle())
	}
	d, _, _ := do(t, p, "k3", "echo", "four") // now kept for k3
	e, _, _ := do(t, p, "k2", "echo", "five")
	if d != a || e != b {
		t.Errorf("k3 in %s, k2 in %s; want %s and %s", d, e, a, b)
	}
	p.Limit = 0 // no limit: a new key starts a process
	if f, _, _ := do(t, p, "k4", "echo", "six"); f == a || f == b || p.Idle() != 3 {
		t.Errorf("without a limit k4 ran in %s with %d idle", f, p.Idle())
	}
}

// A request's descriptor reaches the process, which reads the file through
// it; the request's NUL-ended fields arrive as Args.
func TestPassesDescriptor(t *testing.T) {
	p := newPool(t)
	mf := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(mf, []byte("the message\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(mf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reply, res := p.Do("k", starter("echo"), Join("a", "b c"), int(f.Fd()))
	if res != Answered {
		t.Fatalf("result %v", res)
	}
	if _, got, _ := strings.Cut(string(reply), "|"); got != "a,b c|the message\n" {
		t.Errorf("answer %q", got)
	}
}

func TestCacheTimeCloses(t *testing.T) {
	p := newPool(t)
	p.cache.Store(int64(300 * time.Millisecond))
	do(t, p, "k", "echo", "x")
	waitIdle(t, p, 0)
}

func TestCacheZeroIsOff(t *testing.T) {
	p := newPool(t)
	p.cache.Store(0)
	if p.Enabled() {
		t.Fatal("enabled with cache 0")
	}
}

func TestHeldClosesIdle(t *testing.T) {
	p := newPool(t)
	do(t, p, "k", "echo", "x")
	p.held.Store(true)
	waitIdle(t, p, 0)
	// While held, a finished process is not kept either.
	do(t, p, "k", "echo", "y")
	if p.Idle() != 0 {
		t.Errorf("kept while held")
	}
}

func TestCrashWithRequest(t *testing.T) {
	p := newPool(t)
	reply, res := p.Do("k", starter("crash"), []byte("x"), -1)
	if res != Crashed || len(reply) != 0 {
		t.Errorf("result %v, reply %q; want Crashed with nothing", res, reply)
	}
}

// TestCrashStderr: with Crashed, Do returns what the process wrote on its
// fd 2: a runtime trace written just before the exit, and a real panic,
// which the runtime prints after Serve has closed the socket.
func TestCrashStderr(t *testing.T) {
	p := newPool(t)
	reply, res := p.Do("k", starter("fatal"), []byte("x"), -1)
	if res != Crashed || string(reply) != goTrace {
		t.Errorf("fatal error: result %v, reply %q; want Crashed with the trace", res, reply)
	}
	reply, res = p.Do("k", starter("panic"), []byte("x"), -1)
	if res != Crashed || !strings.HasPrefix(string(reply), "panic: kept process gave up\n\ngoroutine ") {
		t.Errorf("panic: result %v, reply %q; want Crashed with the panic", res, reply)
	}
}

// TestStderrNeitherBlocksNorLingers: a process that writes far more on
// fd 2 than the pipe holds is not held up (the request is answered), and
// what it wrote does not appear as the reason of its crash at the next
// request.
func TestStderrNeitherBlocksNorLingers(t *testing.T) {
	p := newPool(t)
	type answer struct {
		reply []byte
		res   Result
	}
	done := make(chan answer, 1)
	go func() {
		reply, res := p.Do("k", starter("stale"), []byte("1"), -1)
		done <- answer{reply, res}
	}()
	select {
	case a := <-done:
		if a.res != Answered {
			t.Fatalf("first request: %v %q", a.res, a.reply)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no answer: the process waits on its full fd 2")
	}
	reply, res := p.Do("k", starter("stale"), []byte("2"), -1)
	if res != Crashed || len(reply) != 0 {
		t.Errorf("second request: result %v, reply %d bytes (%.60q); want Crashed with nothing", res, len(reply), reply)
	}
}

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(names) - 1 // ReadDir's own
}

// TestNoDescriptorLeak: the fd 2 pipes of processes that crashed, were
// closed idle, or never greeted are all closed once the processes are gone.
func TestNoDescriptorLeak(t *testing.T) {
	defer func(d time.Duration) { HelloTimeout = d }(HelloTimeout)
	p := newPool(t)
	do(t, p, "warm", "echo", "x") // the poller's own descriptors, made once
	p.Close()
	before := openFDs(t)
	for i := range 10 {
		key := "k" + strconv.Itoa(i)
		if _, _, res := do(t, p, key, "echo", "x"); res != Answered {
			t.Fatalf("echo: %v", res)
		}
		if _, _, res := do(t, p, key+"c", "fatal", "x"); res != Crashed {
			t.Fatalf("fatal: %v", res)
		}
		if _, _, res := do(t, p, key+"c", "panic", "x"); res != Crashed {
			t.Fatalf("panic: %v", res)
		}
	}
	HelloTimeout = 100 * time.Millisecond
	p.Program = filepath.Join(t.TempDir(), "none") // a refusal not remembered
	if _, _, res := do(t, p, "m", "mute", "x"); res != NoProcess {
		t.Fatalf("mute: %v", res)
	}
	p.Close()
	var now int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if now = openFDs(t); now <= before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, %d before", now, before)
		}
	}
}

// An idle process that exited is replaced, and the request answered.
func TestDeadIdleReplaced(t *testing.T) {
	p := newPool(t)
	a, _, _ := do(t, p, "k", "once", "1")
	p.mu.Lock()
	w := p.idle[0]
	p.mu.Unlock()
	for deadline := time.Now().Add(20 * time.Second); w.alive(); {
		if time.Now().After(deadline) {
			t.Fatal("the fake process did not exit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, ans, res := do(t, p, "k", "once", "2")
	if res != Answered || ans != "2" {
		t.Fatalf("after the idle process died: %v %q", res, ans)
	}
	if a == b {
		t.Error("dead process reused")
	}
}

// A process that dies while idle after it was taken, with the request
// unread, is replaced and the request made again (nothing was delivered).
func TestDeadWithRequestUnread(t *testing.T) {
	p := newPool(t)
	a, _, _ := do(t, p, "k", "linger", "1")
	b, ans, res := do(t, p, "k", "linger", "2")
	if res != Answered || ans != "2" {
		t.Fatalf("request left unread by a dying process: %v %q", res, ans)
	}
	if a == b {
		t.Error("answered by the dying process")
	}
}

// A program that does not greet is killed, the caller told NoProcess, and
// keep mode stays off for it until the file changes.
func TestRefusedUntilProgramChanges(t *testing.T) {
	defer func(d time.Duration) { HelloTimeout = d }(HelloTimeout)
	HelloTimeout = 300 * time.Millisecond
	prog := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(prog, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := newPool(t)
	p.Program = prog
	if _, _, res := do(t, p, "k", "mute", "x"); res != NoProcess {
		t.Fatalf("result %v, want NoProcess", res)
	}
	if p.Enabled() {
		t.Fatal("still enabled after a refusal")
	}
	if err := os.WriteFile(prog, []byte("two, longer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() {
		t.Error("not enabled again after the program changed")
	}
}

// A refusal does not last: a program that was only slow to greet (a
// loaded host) has keep mode back after RefusedFor.
func TestRefusedForAWhile(t *testing.T) {
	defer func(d, r time.Duration) { HelloTimeout, RefusedFor = d, r }(HelloTimeout, RefusedFor)
	HelloTimeout = 300 * time.Millisecond
	RefusedFor = time.Hour
	prog := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(prog, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := newPool(t)
	p.Program = prog
	if _, _, res := do(t, p, "k", "mute", "x"); res != NoProcess {
		t.Fatalf("result %v, want NoProcess", res)
	}
	if p.Enabled() {
		t.Fatal("enabled again within RefusedFor")
	}
	RefusedFor = 0
	if !p.Enabled() {
		t.Fatal("still off after RefusedFor")
	}
	HelloTimeout = 30 * time.Second // the short one was for the mute program
	if _, ans, res := do(t, p, "k", "echo", "y"); res != Answered || ans != "y" {
		t.Errorf("after the refusal expired: %v %q", res, ans)
	}
}

// Signal reaches the processes with a request, and every process that
// takes one later; idle ones are closed.
func TestSignal(t *testing.T) {
	p := newPool(t)
	mark := filepath.Join(t.TempDir(), "mark")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "HQ_KEEP_FAKE=term", "HQ_KEEP_MARK="+mark)
		return cmd
	}
	if _, _, res := do(t, p, "idle", "echo", "x"); res != Answered {
		t.Fatalf("echo: %v", res)
	}
	waitIdle(t, p, 1)
	answer := make(chan string, 1)
	go func() {
		reply, res := p.Do("busy", start, []byte("r"), -1)
		answer <- fmt.Sprintf("%s %v", reply, res)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the process did not take its request")
		}
	}
	p.Signal(syscall.SIGTERM)
	if got := <-answer; got != fmt.Sprintf("term %v", Answered) {
		t.Errorf("busy process answered %q, want a TERM seen", got)
	}
	if n := p.Idle(); n != 0 {
		t.Errorf("%d idle processes after Signal, want 0", n)
	}
	// Taken later: signalled as it takes its request.
	reply, res := p.Do("later", start, []byte("r"), -1)
	if string(reply) != "term" || res != Answered {
		t.Errorf("later process answered %q %v, want a TERM seen", reply, res)
	}
}
