package spawn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

func TestCheck(t *testing.T) {
	busy := func(s int) bool { return s == 7 }
	tests := []struct {
		name string
		req  spawnproto.Request
		want string
		at   int
	}{
		{"ok", spawnproto.Request{Slot: 0, Mess: "3/123", Recipient: "joe@example.org"}, "", 3},
		{"last at", spawnproto.Request{Slot: 1, Mess: "3/123", Recipient: "a@b@c"}, "", 3},
		{"too long field", spawnproto.Request{Slot: 1, Mess: "3/1", Recipient: "a@b", TooLong: true}, TextNoMem, 0},
		{"slot 120", spawnproto.Request{Slot: 120, Mess: "3/1", Recipient: "a@b"}, TextSlotTooBig, 0},
		{"slot 255", spawnproto.Request{Slot: 255, Mess: "3/1", Recipient: "a@b"}, TextSlotTooBig, 0},
		{"slot busy", spawnproto.Request{Slot: 7, Mess: "3/1", Recipient: "a@b"}, TextSlotInUse, 0},
		{"slot before mess", spawnproto.Request{Slot: 7, Mess: "x", Recipient: "ab"}, TextSlotInUse, 0},
		{"leading slash", spawnproto.Request{Slot: 1, Mess: "/3/1", Recipient: "a@b"}, TextNonNumeric, 0},
		{"dot dot", spawnproto.Request{Slot: 1, Mess: "3/../1", Recipient: "a@b"}, TextNonNumeric, 0},
		{"letter", spawnproto.Request{Slot: 1, Mess: "3/1a", Recipient: "a@b"}, TextNonNumeric, 0},
		{"99 bytes", spawnproto.Request{Slot: 1, Mess: strings.Repeat("1", 99), Recipient: "a@b"}, "", 1},
		{"100 bytes", spawnproto.Request{Slot: 1, Mess: strings.Repeat("1", 100), Recipient: "a@b"}, TextTooLong, 0},
		{"nonnumeric before length", spawnproto.Request{Slot: 1, Mess: strings.Repeat("x", 100), Recipient: "a@b"}, TextNonNumeric, 0},
		{"empty", spawnproto.Request{Slot: 1, Mess: "", Recipient: "a@b"}, TextTooShort, 0},
		{"no at", spawnproto.Request{Slot: 1, Mess: "1/2", Recipient: "joe"}, TextNoHost, 0},
		{"empty recipient", spawnproto.Request{Slot: 1, Mess: "1/2", Recipient: ""}, TextNoHost, 0},
		{"only at", spawnproto.Request{Slot: 1, Mess: "1/2", Recipient: "@"}, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, at := Check(&tc.req, 120, busy)
			if got != tc.want || at != tc.at {
				t.Errorf("Check = %q, %d; want %q, %d", got, at, tc.want, tc.at)
			}
		})
	}
}

func TestCut(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 5000)
	tests := []struct {
		name  string
		in    []byte
		limit int
		want  []byte
	}{
		{"short", []byte("hello"), 3000, []byte("hello")},
		{"exactly 3000", long[:3000], 3000, long[:3000]},
		{"3001", long[:3001], 3000, append(append([]byte(nil), long[:2966]...), TruncNote...)},
		{"5000", long, 3000, append(append([]byte(nil), long[:2966]...), TruncNote...)},
		{"no limit", long, 0, long},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Cut(tc.in, tc.limit); !bytes.Equal(got, tc.want) {
				t.Errorf("Cut: got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

// fake is a Spawner whose deliveries are scripted by the recipient's
// local part.
type fake struct {
	mu      sync.Mutex
	gate    map[string]chan struct{} // Deliver waits for this to close
	started chan string              // receives the recipient of each start
	running int
	peak    int
}

func (f *fake) Deliver(d *Delivery) (Status, error) {
	f.mu.Lock()
	f.running++
	if f.running > f.peak {
		f.peak = f.running
	}
	g := f.gate[d.Local()]
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.running--; f.mu.Unlock() }()
	if f.started != nil {
		f.started <- d.Recipient
	}
	if g != nil {
		<-g
	}
	switch local := d.Local(); {
	case local == "cat":
		// A real child: message on fd 0, output on fd 1 and 2.
		cmd := exec.Command("/bin/sh", "-c", "cat; echo err >&2")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = d.Message, d.Output, d.Output
		if err := cmd.Run(); err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				return Status{}, err
			}
		}
		return StatusOf(cmd.ProcessState), nil
	case local == "late":
		// The program exits at once; a grandchild keeps the pipe open
		// and writes more: the report must wait for it.
		cmd := exec.Command("/bin/sh", "-c", "echo early; (sleep 0.3; echo late) &")
		cmd.Stdout, cmd.Stderr = d.Output, d.Output
		cmd.Run()
		return StatusOf(cmd.ProcessState), nil
	case local == "crash":
		cmd := exec.Command("/bin/sh", "-c", "kill -9 $$")
		cmd.Run()
		return StatusOf(cmd.ProcessState), nil
	case local == "nofork":
		return Status{}, fmt.Errorf("no fork today")
	case local == "big":
		d.Output.Write(bytes.Repeat([]byte("y"), 5000))
		return Status{Code: 0}, nil
	case strings.HasPrefix(local, "exit"):
		var code int
		fmt.Sscanf(local, "exit%d", &code)
		fmt.Fprintf(d.Output, "code %d", code)
		return Status{Code: code}, nil
	}
	fmt.Fprintf(d.Output, "delivered %s from %s", d.Recipient, d.Sender)
	return Status{}, nil
}

func (f *fake) Report(st Status, out []byte) (byte, string) {
	switch {
	case st.Signaled:
		return 'Z', "crashed"
	case st.Code == 0:
		return 'K', string(out)
	case st.Code == 100:
		return 'D', string(out)
	}
	return 'Z', string(out)
}

type harness struct {
	t       *testing.T
	in      *io.PipeWriter
	reports chan spawnproto.Report
	limit   int // announced
	width   int // slot field width that goes with it
	done    chan error
}

const wait = 20 * time.Second

type announcement struct{ limit, width int }

// start runs Run on pipes and checks its announcement: 120 in one byte
// unless cfg.Limit says otherwise (startWant).
func start(t *testing.T, sp Spawner, cfg Config) *harness {
	t.Helper()
	return startWant(t, sp, cfg, 120, spawnproto.Narrow)
}

func startWant(t *testing.T, sp Spawner, cfg Config, limit, width int) *harness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &harness{t: t, in: inW, reports: make(chan spawnproto.Report, 1000),
		done: make(chan error, 1)}
	first := make(chan announcement, 1)
	go func() {
		err := Run(inR, outW, sp, cfg)
		outW.Close()
		h.done <- err
	}()
	go func() {
		l, w, err := spawnproto.ReadAnnounce(outR)
		first <- announcement{l, w}
		if err != nil {
			close(h.reports)
			return
		}
		dec := spawnproto.ReportDecoder{Width: w}
		buf := make([]byte, 4096)
		for {
			n, err := outR.Read(buf)
			dec.Feed(buf[:n], func(r spawnproto.Report) { h.reports <- r })
			if err != nil {
				close(h.reports)
				return
			}
		}
	}()
	t.Cleanup(func() { inW.Close() })
	select {
	case a := <-first:
		if a.limit != limit || a.width != width {
			t.Fatalf("announced %d (width %d), want %d (width %d)", a.limit, a.width, limit, width)
		}
		h.limit, h.width = a.limit, a.width
	case <-time.After(wait):
		t.Fatal("no announcement")
	}
	return h
}

func (h *harness) send(slot int, mess, sender, rcpt string) {
	h.t.Helper()
	r := spawnproto.Request{Slot: slot, Mess: mess, Sender: sender, Recipient: rcpt}
	if _, err := h.in.Write(r.EncodeWidth(h.width)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) report() spawnproto.Report {
	h.t.Helper()
	select {
	case r, ok := <-h.reports:
		if !ok {
			h.t.Fatal("report stream ended")
		}
		return r
	case <-time.After(wait):
		h.t.Fatal("no report")
	}
	return spawnproto.Report{}
}

func (h *harness) finish() {
	h.t.Helper()
	h.in.Close()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatal(err)
		}
	case <-time.After(wait):
		h.t.Fatal("Run did not return after EOF")
	}
}

// messDir makes a queue/mess-like directory with message 1/100.
func messDir(t *testing.T, body string) string {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "1"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "1", "100"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunReports(t *testing.T) {
	dir := messDir(t, "Subject: hi\n\nbody\n")
	os.Mkdir(filepath.Join(dir, "2"), 0o755)
	os.Mkdir(filepath.Join(dir, "2", "200"), 0o755)
	fifo := filepath.Join(dir, "2", "201")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Owner: os.Getuid(), Dir: dir, Truncate: 3000}
	tests := []struct {
		name       string
		slot       int
		mess, rcpt string
		letter     byte
		text       string
	}{
		{"plain", 3, "1/100", "joe@example.org", 'K', "delivered joe@example.org from s@x"},
		{"message on fd0, stderr merged", 4, "1/100", "cat@x", 'K', "Subject: hi\n\nbody\nerr\n"},
		{"waits for pipe EOF", 5, "1/100", "late@x", 'K', "early\nlate\n"},
		{"crash", 6, "1/100", "crash@x", 'Z', "crashed"},
		{"exit 100", 7, "1/100", "exit100@x", 'D', "code 100"},
		{"exit 111", 8, "1/100", "exit111@x", 'Z', "code 111"},
		{"fork failure", 9, "1/100", "nofork@x", 'Z', TextFork[1:]},
		{"truncated", 10, "1/100", "big@x", 'K', strings.Repeat("y", 2966) + TruncNote},
		{"missing message", 11, "1/999", "joe@x", 'Z', TextOpen[1:]},
		{"directory", 12, "2/200", "joe@x", 'Z', TextWrongType[1:]},
		{"fifo does not block", 13, "2/201", "joe@x", 'Z', TextWrongType[1:]},
		{"no host", 14, "1/100", "joe", 'D', TextNoHost[1:]},
		{"slot 0", 0, "1/100", "joe@x", 'K', "delivered joe@x from s@x"},
		{"slot 119", 119, "1/100", "joe@x", 'K', "delivered joe@x from s@x"},
		{"slot 120", 120, "1/100", "joe@x", 'Z', TextSlotTooBig[1:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, &fake{}, cfg)
			h.send(tc.slot, tc.mess, "s@x", tc.rcpt)
			r := h.report()
			if r.Slot != tc.slot || r.Letter != tc.letter || r.Text != tc.text {
				t.Errorf("report slot %d %c %q; want %d %c %q", r.Slot, r.Letter, r.Text, tc.slot, tc.letter, tc.text)
			}
			h.finish()
		})
	}
}

func TestWrongOwner(t *testing.T) {
	dir := messDir(t, "x\n")
	h := start(t, &fake{}, Config{Owner: os.Getuid() + 1, Dir: dir})
	h.send(1, "1/100", "", "joe@x")
	if r := h.report(); r.Letter != 'Z' || r.Text != TextWrongOwner[1:] {
		t.Errorf("got %c %q", r.Letter, r.Text)
	}
	h.finish()
}

// TestSlotsAndLimit fills all 120 slots, checks a busy slot is refused at
// once, then releases them; Run must not return before the last report.
func TestSlotsAndLimit(t *testing.T) {
	dir := messDir(t, "x\n")
	gate := make(chan struct{})
	f := &fake{gate: map[string]chan struct{}{"hold": gate}, started: make(chan string, 200)}
	h := start(t, f, Config{Owner: os.Getuid(), Dir: dir})
	for s := 0; s < 120; s++ {
		h.send(s, "1/100", "", "hold@x")
	}
	for s := 0; s < 120; s++ {
		select {
		case <-f.started:
		case <-time.After(wait):
			t.Fatalf("only %d deliveries started", s)
		}
	}
	h.send(42, "1/100", "", "joe@x")
	if r := h.report(); r.Slot != 42 || r.Text != TextSlotInUse[1:] {
		t.Fatalf("busy slot: got %d %q", r.Slot, r.Text)
	}
	h.in.Close() // EOF while 120 deliveries run
	select {
	case <-h.done:
		t.Fatal("Run returned with deliveries running")
	default:
	}
	close(gate)
	seen := map[int]bool{}
	for i := 0; i < 120; i++ {
		r := h.report()
		if seen[r.Slot] || r.Letter != 'K' {
			t.Fatalf("report %d: slot %d letter %c", i, r.Slot, r.Letter)
		}
		seen[r.Slot] = true
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	if f.peak != 120 {
		t.Errorf("peak concurrency %d, want 120", f.peak)
	}
}

// TestSlotReuse: a slot is free again once its report was written.
func TestSlotReuse(t *testing.T) {
	dir := messDir(t, "x\n")
	h := start(t, &fake{}, Config{Owner: os.Getuid(), Dir: dir})
	for i := 0; i < 20; i++ {
		h.send(5, "1/100", "", "joe@x")
		if r := h.report(); r.Slot != 5 || r.Letter != 'K' {
			t.Fatalf("round %d: %d %c %q", i, r.Slot, r.Letter, r.Text)
		}
	}
	h.finish()
}

// TestTruncatedInput: a request cut by EOF ends the input; nothing is
// reported for it.
func TestTruncatedInput(t *testing.T) {
	dir := messDir(t, "x\n")
	h := start(t, &fake{}, Config{Owner: os.Getuid(), Dir: dir})
	h.in.Write([]byte("\x011/100\x00sender"))
	h.finish()
	if r, ok := <-h.reports; ok {
		t.Errorf("unexpected report %+v", r)
	}
}

// TestAnnouncement: the limit and the form Run announces for each
// Config.Limit, and the slot range it then accepts ("delnum too big" for
// a slot at or above the limit).
func TestAnnouncement(t *testing.T) {
	dir := messDir(t, "x\n")
	for _, tc := range []struct {
		cfg   int
		limit int
		width int
	}{
		{0, 120, spawnproto.Narrow},
		{-3, 120, spawnproto.Narrow},
		{1, 1, spawnproto.Narrow},
		{255, 255, spawnproto.Narrow},
		{256, 256, spawnproto.Wide},
		{RemoteLimit, 500, spawnproto.Wide},
		{100000, MaxLimit, spawnproto.Wide},
	} {
		t.Run(fmt.Sprint(tc.cfg), func(t *testing.T) {
			h := startWant(t, &fake{}, Config{Owner: os.Getuid(), Dir: dir, Limit: tc.cfg}, tc.limit, tc.width)
			for _, s := range []int{0, tc.limit - 1} {
				h.send(s, "1/100", "", "joe@x")
				if r := h.report(); r.Slot != s || r.Letter != 'K' {
					t.Fatalf("slot %d: %d %c %q", s, r.Slot, r.Letter, r.Text)
				}
			}
			top := 255
			if tc.width == spawnproto.Wide {
				top = 65535
			}
			for _, s := range []int{tc.limit, top} {
				if s < tc.limit {
					continue
				}
				h.send(s, "1/100", "", "joe@x")
				if r := h.report(); r.Slot != s || r.Text != TextSlotTooBig[1:] {
					t.Fatalf("slot %d: %d %c %q", s, r.Slot, r.Letter, r.Text)
				}
			}
			h.finish()
		})
	}
}

// TestWideSlotsAndLimit: with the remote limit, 500 deliveries run at
// once, on slots 0..499 carried in two bytes; a busy slot above 255 is
// refused, slot 500 is "delnum too big", and every report comes back on
// its slot.
func TestWideSlotsAndLimit(t *testing.T) {
	dir := messDir(t, "x\n")
	gate := make(chan struct{})
	f := &fake{gate: map[string]chan struct{}{"hold": gate}, started: make(chan string, 600)}
	h := startWant(t, f, Config{Owner: os.Getuid(), Dir: dir, Limit: RemoteLimit}, 500, spawnproto.Wide)
	for s := 0; s < 500; s++ {
		h.send(s, "1/100", "", "hold@x")
	}
	for s := 0; s < 500; s++ {
		select {
		case <-f.started:
		case <-time.After(wait):
			t.Fatalf("only %d deliveries started", s)
		}
	}
	h.send(300, "1/100", "", "joe@x")
	if r := h.report(); r.Slot != 300 || r.Text != TextSlotInUse[1:] {
		t.Fatalf("busy slot: got %d %q", r.Slot, r.Text)
	}
	h.send(500, "1/100", "", "joe@x")
	if r := h.report(); r.Slot != 500 || r.Text != TextSlotTooBig[1:] {
		t.Fatalf("slot 500: got %d %q", r.Slot, r.Text)
	}
	h.in.Close()
	close(gate)
	seen := map[int]bool{}
	for i := 0; i < 500; i++ {
		r := h.report()
		if seen[r.Slot] || r.Letter != 'K' || r.Slot >= 500 {
			t.Fatalf("report %d: slot %d letter %c", i, r.Slot, r.Letter)
		}
		seen[r.Slot] = true
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	if f.peak != 500 {
		t.Errorf("peak concurrency %d, want 500", f.peak)
	}
}

func TestFitLimit(t *testing.T) {
	for _, tc := range []struct {
		limit  int
		nofile int64
		want   int
	}{
		{0, 0, 120},
		{500, 0, 500},
		{900, 0, 500},
		{500, 20000, 500},
		{500, 288 + 10*500, 500},
		{500, 288 + 10*500 - 1, 499},
		{500, 1024, 73}, // (1024-288)/10
		{500, 330, 4},   // (330-288)/10: kept processes counted
		{120, 2048, 120},
		{120, 1024, 73},
		{500, 10, 1},
	} {
		if got := FitLimit(tc.limit, tc.nofile); got != tc.want {
			t.Errorf("FitLimit(%d, %d) = %d, want %d", tc.limit, tc.nofile, got, tc.want)
		}
	}
}

// TestRaiseNofile: the soft limit in force afterwards fits 500
// deliveries whenever the hard limit allows it.
func TestRaiseNofile(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skip("no RLIMIT_NOFILE:", err)
	}
	got := RaiseNofile(500)
	if need := int64(fdsReserve + fdsPerSlot*500); int64(rl.Max) >= need && got < need {
		t.Errorf("soft limit %d after RaiseNofile(500), hard %d", got, rl.Max)
	}
	if FitLimit(500, got) != min(500, FitLimit(500, int64(rl.Max))) {
		t.Errorf("FitLimit with %d differs", got)
	}
}

// TestTempErrno: only exec's "cannot run this program" errors are
// permanent; a shortage while starting it (EBADF from a dup2 in the child
// under a descriptor limit, EMFILE, EAGAIN) defers.
func TestTempErrno(t *testing.T) {
	for err, temp := range map[error]bool{
		&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.ENOENT}:  false,
		&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.EACCES}:  false,
		&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.ENOEXEC}: false,
		&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.EBADF}:   true,
		&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.EMFILE}:  true,
		&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.EAGAIN}:  true,
		&os.PathError{Op: "pipe", Path: "", Err: syscall.ENFILE}:        true,
		errors.New("no errno"): true,
	} {
		if got := TempErrno(err); got != temp {
			t.Errorf("TempErrno(%v) = %v, want %v", err, got, temp)
		}
	}
}

// TestNotStarted: a program that does not start is reported with qmail's
// text and the errno's, deferred when the errno passes.
func TestNotStarted(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.EAGAIN}, "ZUnable to run qmail-local: temporary failure.\n"},
		{&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.ENOMEM}, "ZUnable to run qmail-local: out of memory.\n"},
		{&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.ENOENT}, "DUnable to run qmail-local: file does not exist.\n"},
		{&os.PathError{Op: "fork/exec", Path: "x", Err: syscall.EACCES}, "DUnable to run qmail-local: access denied.\n"},
	} {
		if got := NotStarted("qmail-local", c.err); got.Report != c.want {
			t.Errorf("NotStarted(%v) = %q, want %q", c.err, got.Report, c.want)
		}
	}
}

// abandoner is a fake that counts Abandon calls; a held delivery ends when
// abandoned.
type abandoner struct {
	fake
	abandoned chan struct{}
	calls     int
}

func (a *abandoner) Abandon() {
	a.mu.Lock()
	a.calls++
	a.mu.Unlock()
	close(a.abandoned)
}

// End of input while a delivery runs (qmail-send gone without waiting for
// it) abandons the running deliveries, once; end of input with none
// running does not.
func TestAbandonAtEOF(t *testing.T) {
	dir := messDir(t, "x\n")
	cfg := Config{Owner: os.Getuid(), Dir: dir}

	a := &abandoner{abandoned: make(chan struct{}), fake: fake{started: make(chan string, 2)}}
	a.gate = map[string]chan struct{}{"held": a.abandoned}
	h := start(t, a, cfg)
	h.send(1, "1/100", "s@x", "held@x")
	h.send(2, "1/100", "s@x", "other@x")
	<-a.started
	<-a.started
	h.report() // other@x
	h.finish() // returns only once held@x, released by Abandon, has ended
	if a.calls != 1 {
		t.Errorf("Abandon called %d times, want 1", a.calls)
	}

	idle := &abandoner{abandoned: make(chan struct{})}
	h = start(t, idle, cfg)
	h.send(1, "1/100", "s@x", "joe@x")
	h.report()
	h.finish()
	if idle.calls != 0 {
		t.Errorf("Abandon called %d times with no delivery running, want 0", idle.calls)
	}
}
