package rspawn

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/spawn"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

// The test binary doubles as a fake "qmail-remote -k" when HQ_FAKE_KEEP is
// set: "echo" answers every request with r and a K report quoting the
// request, its pid and the message; "once" does that for one request and
// exits; "crash" exits on the first request without answering; "fatal",
// "panic", "dirty" and "quiet" crash there as crash does (below). With
// HQ_FAKE_ONESHOT set instead, it is a one-shot qmail-remote that crashes
// so after writing an "r" piece on fd 1.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HQ_FAKE_KEEP"); mode != "" {
		fakeKeep(mode)
		os.Exit(0)
	}
	if mode := os.Getenv("HQ_FAKE_ONESHOT"); mode != "" {
		unix.Write(1, []byte("r\x00"))
		crash(mode)
	}
	// Each fake is the test binary started again (instrumented under
	// -race) and must greet within keep.HelloTimeout: the default's 5 s
	// can pass on a loaded machine. The test that wants the timeout to
	// fire sets its own short one.
	keep.HelloTimeout = 30 * time.Second
	os.Exit(m.Run())
}

// crash ends a fake agent as a Go program dies (testutil.Crash).
func crash(mode string) { testutil.Crash(mode, "qmail-remote gave up") }

// goTrace is what a fake agent's "fatal" crash writes.
const goTrace = testutil.GoTrace

func fakeKeep(mode string) {
	if mode == "mute" {
		io.Copy(io.Discard, os.Stdin) // a program that knows nothing of -k
		return
	}
	unix.Write(0, []byte(remote.KeepHello))
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(0, buf, oob, 0)
		if err != nil || n == 0 || mode == "crash" {
			return
		}
		if mode != "echo" && mode != "once" {
			crash(mode)
		}
		var body []byte
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				f := os.NewFile(uintptr(fds[0]), "m")
				body, _ = io.ReadAll(f)
				f.Close()
			}
		}
		req := strings.ReplaceAll(string(buf[:n]), "\x00", "|")
		reply := "r\x00K" + req + strconv.Itoa(os.Getpid()) + "|" + string(body) + "\x00"
		unix.Write(0, []byte(reply))
		if mode == "once" {
			return
		}
	}
}

// poolDeliver makes one delivery of body to rcpt through p and returns
// the report.
func poolDeliver(t *testing.T, p *Pool, rcpt, body string) (byte, string) {
	t.Helper()
	mf := filepath.Join(t.TempDir(), "m")
	os.WriteFile(mf, []byte(body), 0o644)
	m, err := os.Open(mf)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pr, pw, _ := os.Pipe()
	d := &spawn.Delivery{Sender: "s@here", Recipient: rcpt, At: strings.LastIndexByte(rcpt, '@'), Message: m, Output: pw}
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(pr); pr.Close(); done <- b }()
	st, ok := p.Deliver(d)
	pw.Close()
	out := <-done
	if !ok {
		t.Fatal("no process could be started")
	}
	return Translate(st, out)
}

func newTestPool(t *testing.T, mode string) *Pool {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	// A cache time no stall between two deliveries outlasts (the
	// default's 5 s can be, on a loaded machine): a test of reuse must not
	// see its idle process reaped.
	os.WriteFile(filepath.Join(root, "control", "smtpcache"), []byte("600\n"), 0o644)
	p := NewPool(os.Args[0], root, append(os.Environ(), "HQ_FAKE_KEEP="+mode))
	t.Cleanup(p.Close)
	return p
}

func pidOf(t *testing.T, text string) string {
	f := strings.Split(text, "|")
	if len(f) < 5 {
		t.Fatalf("report %q", text)
	}
	return f[3]
}

func TestPoolReusesProcessPerHost(t *testing.T) {
	p := newTestPool(t, "echo")
	l, a := poolDeliver(t, p, "x@one.example", "first\n")
	if l != 'K' || !strings.HasPrefix(a, "one.example|s@here|x@one.example|") || !strings.HasSuffix(a, "|first\n") {
		t.Fatalf("first: %c %q", l, a)
	}
	_, b := poolDeliver(t, p, "y@One.Example", "second\n")
	_, c := poolDeliver(t, p, "z@two.example", "third\n")
	if pidOf(t, a) != pidOf(t, b) {
		t.Errorf("same host, different processes: %q %q", a, b)
	}
	if pidOf(t, a) == pidOf(t, c) {
		t.Errorf("other host, same process: %q %q", a, c)
	}
}

// TestPoolRoutedShareProcess: domains that control/smtproutes sends to
// one relay share its kept process (and so its connection), whatever the
// domain; a change of the file is seen at the next delivery.
func TestPoolRoutedShareProcess(t *testing.T) {
	p := newTestPool(t, "echo")
	routes := filepath.Join(p.Root, "control", "smtproutes")
	os.WriteFile(routes, []byte("direct.example:\n:Relay.example:2525\n"), 0o644)
	_, a := poolDeliver(t, p, "x@one.example", "1\n")
	_, b := poolDeliver(t, p, "y@two.example", "2\n")
	_, c := poolDeliver(t, p, "z@direct.example", "3\n") // "domain:" is no route
	if pidOf(t, a) != pidOf(t, b) {
		t.Errorf("one relay, two processes: %q %q", a, b)
	}
	if pidOf(t, c) == pidOf(t, a) {
		t.Errorf("an unrouted domain used the relay's process: %q", c)
	}
	if got := p.key("Any.Example"); got != "relay relay.example 2525" {
		t.Errorf("key %q", got)
	}
	os.Remove(routes)
	if got := p.key("Any.Example"); got != "any.example" {
		t.Errorf("without smtproutes: key %q", got)
	}
	// Both spellings of an internationalized domain reach the same
	// servers: one kept process.
	if a, b := p.key("Bücher.example"), p.key("xn--bcher-kva.example"); a != b {
		t.Errorf("IDN keys %q and %q differ", a, b)
	}
}

// TestPoolLimitIsConcurrency: the kept processes are held to
// concurrencyremote (read at start, as qmail-send reads it): with 1, a
// delivery to a second host takes the idle process of the first rather
// than open a second connection beside it.
func TestPoolLimitIsConcurrency(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	for content, want := range map[string]int{"": 20, "1\n": 1, "0\n": 1, "7 # x\n": 7, "900\n": spawn.MaxLimit, "junk\n": 20} {
		if content == "" {
			os.Remove(filepath.Join(root, "control", "concurrencyremote"))
		} else {
			os.WriteFile(filepath.Join(root, "control", "concurrencyremote"), []byte(content), 0o644)
		}
		if got := concurrency(root); got != want {
			t.Errorf("concurrencyremote %q: limit %d, want %d", content, got, want)
		}
	}
	os.WriteFile(filepath.Join(root, "control", "concurrencyremote"), []byte("1\n"), 0o644)
	os.WriteFile(filepath.Join(root, "control", "smtpcache"), []byte("600\n"), 0o644) // as newTestPool
	p := NewPool(os.Args[0], root, append(os.Environ(), "HQ_FAKE_KEEP=echo"))
	t.Cleanup(p.Close)
	_, a := poolDeliver(t, p, "x@one.example", "1\n")
	_, b := poolDeliver(t, p, "y@two.example", "2\n")
	if pidOf(t, a) != pidOf(t, b) || p.Idle() != 1 {
		t.Errorf("concurrencyremote 1: processes %q %q, %d idle; want one process", a, b, p.Idle())
	}
}

func TestPoolCacheZeroClosesAfterEachDelivery(t *testing.T) {
	p := newTestPool(t, "echo")
	os.WriteFile(filepath.Join(p.Root, "control", "smtpcache"), []byte("0\n"), 0o644)
	if p.Enabled() {
		t.Fatal("smtpcache 0: keep mode on")
	}
	// A file that cannot be read (here a directory) may hold a 0 too.
	os.Remove(filepath.Join(p.Root, "control", "smtpcache"))
	os.Mkdir(filepath.Join(p.Root, "control", "smtpcache"), 0o755)
	if p.Enabled() {
		t.Fatal("unreadable smtpcache: keep mode on")
	}
	os.Remove(filepath.Join(p.Root, "control", "smtpcache"))
	// A cache time no stall outlasts, so that the process is surely still
	// idle when counted; then a short one, which the reaper reads at each
	// look and applies to the process already idle.
	os.WriteFile(filepath.Join(p.Root, "control", "smtpcache"), []byte("600\n"), 0o644)
	poolDeliver(t, p, "x@one.example", "m\n")
	if idle := p.Idle(); idle != 1 {
		t.Fatalf("%d idle processes after a delivery, want 1", idle)
	}
	os.WriteFile(filepath.Join(p.Root, "control", "smtpcache"), []byte("1\n"), 0o644)
	// After the cache time the reaper closes it.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.Idle() == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("idle process not closed after control/smtpcache")
}

// A program that does not greet (not qmail-remote -k) is killed, the
// delivery falls back to the caller, and keep mode stays off for it.
func TestPoolProgramWithoutKeepMode(t *testing.T) {
	defer func(d time.Duration) { keep.HelloTimeout = d }(keep.HelloTimeout)
	keep.HelloTimeout = 300 * time.Millisecond
	p := newTestPool(t, "mute")
	if !p.Enabled() {
		t.Fatal("keep mode off before trying")
	}
	mf := filepath.Join(t.TempDir(), "m")
	os.WriteFile(mf, []byte("m\n"), 0o644)
	m, _ := os.Open(mf)
	defer m.Close()
	_, pw, _ := os.Pipe()
	defer pw.Close()
	d := &spawn.Delivery{Sender: "s@here", Recipient: "x@one.example", At: 1, Message: m, Output: pw}
	if _, ok := p.Deliver(d); ok {
		t.Fatal("delivery through a program without keep mode")
	}
	if p.Enabled() {
		t.Error("keep mode still on for a program that refused it")
	}
}

// TestPoolHeld: kept connections close while all remote delivery is held
// (or the flag cannot be read); a hold of some domains leaves them.
func TestPoolHeld(t *testing.T) {
	p := newTestPool(t, "echo")
	flag := filepath.Join(p.Root, "control", "holdremote")
	for _, tc := range []struct {
		content string // "-": no file; "/": a directory; "|": a FIFO
		want    bool
	}{{"-", false}, {"1\n", true}, {"", true}, {"vpn.example\n", false}, {"*\nvpn.example\n", true}, {"/", true},
		// A FIFO cannot be read as a file, so it holds everything, as
		// qmail-send takes it; it must not block the read for ever.
		{"|", true}} {
		os.RemoveAll(flag)
		switch tc.content {
		case "-":
		case "/":
			os.Mkdir(flag, 0o755)
		case "|":
			if err := unix.Mkfifo(flag, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			os.WriteFile(flag, []byte(tc.content), 0o644)
		}
		if got := p.held(); got != tc.want {
			t.Errorf("holdremote %q: held %v, want %v", tc.content, got, tc.want)
		}
	}
}

// TestPoolRelayTrailingDot: two smtproutes lines naming one relay, once
// with a trailing dot, share its kept process, as qmail-remote's kept
// connection and its smtpauth login take them for one relay.
func TestPoolRelayTrailingDot(t *testing.T) {
	p := newTestPool(t, "echo")
	routes := filepath.Join(p.Root, "control", "smtproutes")
	os.WriteFile(routes, []byte("colon.dom:smarthost.test.:2640\nother.dom:SMARTHOST.test:2640\n"), 0o644)
	if a, b := p.key("colon.dom"), p.key("other.dom"); a != b || a != "relay smarthost.test 2640" {
		t.Errorf("keys %q and %q, want both %q", a, b, "relay smarthost.test 2640")
	}
}
