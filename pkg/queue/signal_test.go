package queue

// Tests of qmail-queue's signals (TERM, INT, HUP): the program itself (a
// copy of this test binary as ROOT/bin/qmail-queue, running Main or
// MainMulti as cmd/qmail-queue does) is started on a temporary queue, fed
// part of a message on pipes it keeps waiting on, and signalled. Before
// the commit it must leave nothing of the message and die of the signal;
// after it the message stays queued (exit 0; with -m its result line is
// written before it dies).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

const (
	// qqProgEnv, set to "1", makes the test binary be qmail-queue (its
	// root from its location, as the program's).
	qqProgEnv = "HQMAIL_TEST_QMAIL_QUEUE"
	// qqHooksEnv, set to "1" as well, makes it say "committed" on fd 2
	// right after the commit link and then wait for fd 3 to end, and say
	// "held <signal number>" on fd 2 when it holds a signal back.
	qqHooksEnv = "HQMAIL_TEST_QMAIL_QUEUE_HOOKS"
)

func init() {
	if os.Getenv(qqProgEnv) != "1" {
		return
	}
	if os.Getenv(qqHooksEnv) == "1" {
		afterCommit = func() {
			os.Stderr.WriteString("committed\n")
			io.Copy(io.Discard, os.NewFile(3, "release"))
		}
		signalHeld = func(sig syscall.Signal) {
			os.Stderr.WriteString("held " + strconv.Itoa(int(sig)) + "\n")
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "-m" {
		os.Exit(MainMulti(qhome.Root()))
	}
	os.Exit(Main())
}

var catchable = []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}

// qqProc is a running qmail-queue and the test's ends of its descriptors.
type qqProc struct {
	cmd     *exec.Cmd
	msg     *os.File      // its fd 0
	env     *os.File      // its fd 1
	res     *bufio.Reader // its fd 6 (-m)
	resFile *os.File
	stderr  *bufio.Reader // its fd 2 (the hooks' lines)
	errFile *os.File
	release *os.File // its fd 3 ends when this is closed (hooks)
	waited  chan struct{}
	state   *os.ProcessState
}

// startQQ starts qmail-queue (with -m when multi) on root, the hooks on
// when hooks. The process is killed at the end of the test.
func startQQ(t *testing.T, root string, multi, hooks bool) *qqProc {
	t.Helper()
	prog := filepath.Join(root, "bin", "qmail-queue")
	if err := os.MkdirAll(filepath.Dir(prog), 0o755); err != nil {
		t.Fatal(err)
	}
	if exe, err := os.Executable(); err != nil || os.Link(exe, prog) != nil {
		testutil.CopyTestBinary(t, prog)
	}
	p := &qqProc{waited: make(chan struct{})}
	var child []*os.File
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		return r, w
	}
	msgR, msgW := pipe()
	envR, envW := pipe()
	errR, errW := pipe()
	relR, relW := pipe()
	resR, resW := pipe()
	child = append(child, msgR, envR, errW, relR, resW)
	p.msg, p.env, p.errFile, p.release, p.resFile = msgW, envW, errR, relW, resR
	p.stderr, p.res = bufio.NewReader(errR), bufio.NewReader(resR)
	args := []string{prog}
	if multi {
		args = append(args, "-m")
	}
	env := append(os.Environ(), qqProgEnv+"=1")
	if hooks {
		env = append(env, qqHooksEnv+"=1")
	}
	p.cmd = &exec.Cmd{Path: prog, Args: args, Env: env, Dir: root,
		Stdin: msgR, Stdout: envR, Stderr: errW,
		ExtraFiles: []*os.File{relR, nil, nil, resW}}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range child {
		f.Close()
	}
	go func() {
		p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.waited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.waited
		for _, f := range []*os.File{msgW, envW, errR, relW, resR} {
			f.Close()
		}
	})
	return p
}

// wait waits (bounded) for the process to end and returns its status.
func (p *qqProc) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-p.waited:
	case <-time.After(60 * time.Second):
		t.Fatal("qmail-queue did not end")
	}
	// The rest of its fd 2 (a race detector's report, under -race).
	p.errFile.SetReadDeadline(time.Now().Add(60 * time.Second))
	if rest, _ := io.ReadAll(p.stderr); len(rest) != 0 {
		t.Errorf("qmail-queue wrote on fd 2: %s", rest)
	}
	return p.state.Sys().(syscall.WaitStatus)
}

// line reads one line from r (the file under it given a deadline).
func line(t *testing.T, f *os.File, r *bufio.Reader) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(60 * time.Second))
	l, err := r.ReadString('\n')
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no line from qmail-queue (%q so far)", l)
		}
		return l + "<" + err.Error() + ">"
	}
	return l
}

// waitUntil polls (bounded) until cond holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func messFiles(root string) int {
	m, _ := filepath.Glob(filepath.Join(root, "queue", "mess", "*", "*"))
	return len(m)
}

func intdFiles(root string) int {
	m, _ := filepath.Glob(filepath.Join(root, "queue", "intd", "*"))
	return len(m)
}

func write(t *testing.T, f *os.File, s string) {
	t.Helper()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func skipIgnored(t *testing.T, sig syscall.Signal) {
	if signal.Ignored(sig) {
		t.Skipf("%v is ignored in this test process, so in its children too", sig)
	}
}

func killedBy(t *testing.T, ws syscall.WaitStatus, sig syscall.Signal) {
	t.Helper()
	if !ws.Signaled() || ws.Signal() != sig {
		t.Errorf("qmail-queue ended with status %#x (exit %d), want killed by %v", uint32(ws), ws.ExitStatus(), sig)
	}
}

func noFiles(t *testing.T, root string) {
	t.Helper()
	if f := files(t, root); len(f) != 0 {
		t.Errorf("left in the queue: %v", f)
	}
}

// TestSignalBeforeCommit: TERM, INT or HUP while qmail-queue reads the
// message (mess/S/ID made) or the envelope (intd/ID made too) removes
// every file of the message (mess/, intd/, pid/, nothing in todo/) and
// the process dies of that signal (the caller's "qq crashed", retried).
func TestSignalBeforeCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, sig := range catchable {
		for _, stage := range []string{"message", "envelope"} {
			t.Run(sig.String()+" in the "+stage, func(t *testing.T) {
				skipIgnored(t, sig)
				root := newRoot(t)
				p := startQQ(t, root, false, false)
				write(t, p.msg, "Subject: half\n\nthe first part")
				if stage == "envelope" {
					p.msg.Close()
					write(t, p.env, "Fa@b\x00Tc@d\x00") // no final NUL
					waitUntil(t, "intd/ID", func() bool { return intdFiles(root) == 1 })
				} else {
					waitUntil(t, "mess/S/ID", func() bool { return messFiles(root) == 1 })
				}
				p.cmd.Process.Signal(sig)
				killedBy(t, p.wait(t), sig)
				noFiles(t, root)
			})
		}
	}
}

// TestSignalAfterCommit: a signal that comes after the commit link (the
// process held there by the test hook) is held back: the message stays
// queued and qmail-queue exits 0.
func TestSignalAfterCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, sig := range catchable {
		t.Run(sig.String(), func(t *testing.T) {
			skipIgnored(t, sig)
			root := newRoot(t)
			p := startQQ(t, root, false, true)
			msg := "Subject: whole\n\nbody\n"
			write(t, p.msg, msg)
			p.msg.Close()
			write(t, p.env, string((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode()))
			p.env.Close()
			if l := line(t, p.errFile, p.stderr); l != "committed\n" {
				t.Fatalf("qmail-queue said %q, want the commit", l)
			}
			p.cmd.Process.Signal(sig)
			if l, want := line(t, p.errFile, p.stderr), "held "+strconv.Itoa(int(sig))+"\n"; l != want {
				t.Errorf("qmail-queue said %q after the signal, want %q", l, want)
			}
			p.release.Close()
			if ws := p.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("qmail-queue ended with status %#x, want exit 0", uint32(ws))
			}
			q := queued(t, root)
			if len(q) != 1 {
				t.Fatalf("%d messages queued, want 1", len(q))
			}
			for _, m := range q {
				if !strings.HasSuffix(string(m), "\n"+msg) || !strings.HasPrefix(string(m), "Received: (qmail ") {
					t.Errorf("queued message %q", m)
				}
			}
		})
	}
}

// resultLine checks a "0 <id>\n" result line and returns the id.
func resultLine(t *testing.T, l string) string {
	t.Helper()
	c, id, _ := strings.Cut(strings.TrimSuffix(l, "\n"), " ")
	if c != "0" || id == "0" || id == "" || !strings.HasSuffix(l, "\n") {
		t.Fatalf("result line %q, want 0 and an id", l)
	}
	return id
}

// TestSignalMulti: qmail-queue -m with a first message committed and
// reported, signalled while it reads the second: the first stays queued
// with its result line on fd 6, nothing of the second is left (no
// result line either), and the process dies of the signal.
func TestSignalMulti(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	env := string((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode())
	for _, sig := range catchable {
		t.Run(sig.String(), func(t *testing.T) {
			skipIgnored(t, sig)
			root := newRoot(t)
			p := startQQ(t, root, true, false)
			write(t, p.msg, frame([]byte("Subject: one\n\nfirst\n"), 7))
			write(t, p.env, env)
			id := resultLine(t, line(t, p.resFile, p.res))
			write(t, p.msg, "100:Subject: two\n\nsecond, cut")
			waitUntil(t, "the second mess/S/ID", func() bool { return messFiles(root) == 2 })
			p.cmd.Process.Signal(sig)
			killedBy(t, p.wait(t), sig)
			if rest, _ := io.ReadAll(p.res); len(rest) != 0 {
				t.Errorf("fd 6 has %q after the first line", rest)
			}
			q := queued(t, root)
			if _, ok := q[id]; !ok || len(q) != 1 {
				t.Errorf("queued %d messages, want only %s", len(q), id)
			}
		})
	}
}

// TestSignalMultiCommitted: qmail-queue -m signalled after the commit of
// a message but before its result line (held at the commit by the test
// hook) writes the line, so the caller knows the message is queued, and
// then dies of the signal without waiting for more input (fd 0 stays
// open).
func TestSignalMultiCommitted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	env := string((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode())
	for _, sig := range catchable {
		t.Run(sig.String(), func(t *testing.T) {
			skipIgnored(t, sig)
			root := newRoot(t)
			p := startQQ(t, root, true, true)
			write(t, p.msg, frame([]byte("Subject: one\n\nfirst\n"), 7))
			write(t, p.env, env)
			if l := line(t, p.errFile, p.stderr); l != "committed\n" {
				t.Fatalf("qmail-queue said %q, want the commit", l)
			}
			p.cmd.Process.Signal(sig)
			if l, want := line(t, p.errFile, p.stderr), "held "+strconv.Itoa(int(sig))+"\n"; l != want {
				t.Errorf("qmail-queue said %q after the signal, want %q", l, want)
			}
			p.release.Close()
			id := resultLine(t, line(t, p.resFile, p.res))
			killedBy(t, p.wait(t), sig)
			q := queued(t, root)
			if _, ok := q[id]; !ok || len(q) != 1 {
				t.Errorf("queued %d messages, want only %s", len(q), id)
			}
		})
	}
}

// TestSignalGuardLocks: the names a signal's cleanup must know of (pid/,
// mess/, intd/) are made and the commit link is made with the signal
// guard's lock held, so that the handler, which cleans up and dies with
// it held, never runs between a name and its record nor undoes part of
// a message while it is linked into todo/; the run ends with the message
// committed, held against signals, and no job left for the handler.
func TestSignalGuardLocks(t *testing.T) {
	restoreFileOps(t)
	root := newRoot(t)
	g := &sigGuard{}
	var unlocked []string
	check := func(op, name string) {
		if !strings.HasPrefix(name, "pid/") && !strings.HasPrefix(name, "mess/") &&
			!strings.HasPrefix(name, "intd/") && !strings.HasPrefix(name, "todo/") {
			return
		}
		if g.mu.TryLock() {
			g.mu.Unlock()
			unlocked = append(unlocked, op+" "+name)
		}
	}
	sysOpenat = func(d int, p string, fl int, m uint32) (int, error) {
		if fl&unix.O_CREAT != 0 {
			check("create", p)
		}
		return unix.Openat(d, p, fl, m)
	}
	sysLinkat = func(a int, o string, b int, n string, f int) error {
		check("link", n)
		return unix.Linkat(a, o, b, n, f)
	}
	env := (&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode()
	code := Run(&Config{Root: root, Message: strings.NewReader("x\n"), Envelope: bytes.NewReader(env),
		UID: 1, PID: 2, Now: now, guard: g})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if len(unlocked) != 0 {
		t.Errorf("made without the guard's lock: %v", unlocked)
	}
	if !g.hold || g.job != nil || g.pending != 0 {
		t.Errorf("after the run: hold %v, job %p, pending %v; want held, no job, none pending", g.hold, g.job, g.pending)
	}
	if q := queued(t, root); len(q) != 1 {
		t.Errorf("%d queued", len(q))
	}
}
