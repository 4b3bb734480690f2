package qq

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qerr"
)

var (
	buildOnce sync.Once
	builtDir  string // made by qmailQueueBin; TestMain removes it
	builtBin  string
	buildErr  error
)

// TestMain removes the qmail-queue the tests built. Run with
// mainThreadEnv set, it is TestCloseSocketsMainThread's child instead.
func TestMain(m *testing.M) {
	if os.Getenv(mainThreadEnv) != "" {
		os.Exit(closeOnMainThread())
	}
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// qmailQueueBin builds cmd/qmail-queue once per test binary.
func qmailQueueBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/qmail-queue; skipped under -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "qq-session-")
		if err != nil {
			buildErr = err
			return
		}
		builtDir, builtBin = dir, filepath.Join(dir, "qmail-queue")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/hqmail/hqmail/cmd/qmail-queue").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build qmail-queue: %v", buildErr)
	}
	return builtBin
}

// sessionRoot makes a tree with bin/qmail-queue and an empty queue.
func sessionRoot(t *testing.T) string {
	t.Helper()
	bin := qmailQueueBin(t)
	root := t.TempDir()
	dirs := []string{"bin", "queue/pid", "queue/intd", "queue/todo", "queue/lock"}
	for i := 0; i < 23; i++ {
		dirs = append(dirs, "queue/mess/"+strconv.Itoa(i))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/qmail-queue"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// messFile returns the queued message with this id, without its Received
// line, and checks todo/ID exists.
func messFile(t *testing.T, root string, id uint64) []byte {
	t.Helper()
	s := strconv.FormatUint(id, 10)
	if _, err := os.Stat(filepath.Join(root, "queue/todo", s)); err != nil {
		t.Fatalf("todo: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, "queue/mess", strconv.FormatUint(id%23, 10), s))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok || !bytes.HasPrefix(b, []byte("Received: (qmail ")) {
		t.Fatalf("no Received line: %q", b)
	}
	return rest
}

// count counts the entries of queue/dir.
func count(t *testing.T, root, dir string) int {
	t.Helper()
	e, err := os.ReadDir(filepath.Join(root, "queue", dir))
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

type failReader struct {
	r   io.Reader
	err error
}

func (f *failReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestSession(t *testing.T) {
	root := sessionRoot(t)
	s := NewSession(Options{Root: root, Env: []string{}})
	t.Cleanup(func() { s.Close() })
	if !s.Multi() {
		t.Fatal("not multi without QMAILQUEUE")
	}
	env := &Envelope{Sender: "a@b", Recipients: []string{"c@d", "e@f"}}
	bigMsg := bytes.Repeat([]byte("0123456789abcdef\n"), 20000)
	var firstPid int
	ids := map[uint64]bool{}
	for i, m := range [][]byte{[]byte("Subject: 1\n\none\n"), bigMsg, nil, []byte("no newline")} {
		pid, id, err := s.Queue(bytes.NewReader(m), env)
		if err != nil || id == 0 || pid == 0 {
			t.Fatalf("message %d: pid %d id %d %v", i, pid, id, err)
		}
		if firstPid == 0 {
			firstPid = pid
		} else if pid != firstPid {
			t.Errorf("message %d: pid %d, first %d: not one process", i, pid, firstPid)
		}
		if ids[id] {
			t.Errorf("id %d twice", id)
		}
		ids[id] = true
		if got := messFile(t, root, id); !bytes.Equal(got, m) {
			t.Errorf("message %d differs (%d bytes, want %d)", i, len(got), len(m))
		}
	}

	// A read error of the message: 54, nothing of it queued; the next
	// message goes to a fresh process.
	_, _, err := s.Queue(&failReader{strings.NewReader("partial"), errors.New("client went away")}, env)
	if err == nil || err.Error() != "qq read error (#4.3.0)" || qerr.IsPerm(err) {
		t.Errorf("read error: %v", err)
	}
	if n := count(t, root, "todo"); n != 4 {
		t.Errorf("todo has %d, want 4", n)
	}
	pid, id, err := s.Queue(strings.NewReader("after\n"), env)
	if err != nil || pid == firstPid {
		t.Fatalf("after a read error: pid %d (first %d) %v", pid, firstPid, err)
	}
	messFile(t, root, id)

	// A bad envelope: 11 (permanent), nothing queued, then a new process.
	long := &Envelope{Sender: strings.Repeat("x", MaxAddr+1)}
	if _, _, err := s.Queue(strings.NewReader("x\n"), long); err == nil || !qerr.IsPerm(err) {
		t.Errorf("long address: %v", err)
	}
	// kill -9 of an idle process between messages: the next message
	// starts another one; nothing partial is left.
	pid2, _, err := s.Queue(strings.NewReader("before kill\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	s.p.cmd.Process.Kill()
	select {
	case <-s.p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("killed qmail-queue not reaped in 30s")
	}
	pid3, _, err := s.Queue(strings.NewReader("after kill\n"), env)
	if err != nil || pid3 == pid2 {
		t.Fatalf("after kill: pid %d (was %d) %v", pid3, pid2, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := count(t, root, "todo"); n != 7 {
		t.Errorf("todo has %d, want 7", n)
	}
	if n, m := count(t, root, "intd"), count(t, root, "pid"); n != 7 || m != 0 {
		t.Errorf("intd %d (want 7), pid %d (want 0)", n, m)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSessionFallback: with $QMAILQUEUE naming another program, each
// message runs it once (qmail's one-message protocol).
func TestSessionFallback(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "bin"), 0o755)
	out := filepath.Join(root, "out")
	os.WriteFile(filepath.Join(root, "bin/filter"), []byte("#!/bin/sh\ncat >> "+out+"; cat <&1 >/dev/null; exit 0\n"), 0o755)
	s := NewSession(Options{Root: root, Env: []string{"QMAILQUEUE=bin/filter"}})
	defer s.Close()
	if s.Multi() {
		t.Fatal("multi with QMAILQUEUE set")
	}
	env := &Envelope{Sender: "a@b", Recipients: []string{"c@d"}}
	for _, m := range []string{"one\n", "two\n"} {
		if _, _, err := s.Queue(strings.NewReader(m), env); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(out); string(b) != "one\ntwo\n" {
		t.Errorf("filter got %q", b)
	}
}

// TestSessionExecFails: a missing qmail-queue is pid 0 and "unable to
// exec qq".
func TestSessionExecFails(t *testing.T) {
	s := NewSession(Options{Root: t.TempDir(), Env: []string{}})
	defer s.Close()
	pid, _, err := s.Queue(strings.NewReader("x"), &Envelope{Sender: "a@b"})
	if pid != 0 || err == nil || err.Error() != "unable to exec qq (#4.3.0)" {
		t.Errorf("pid %d err %v", pid, err)
	}
}

func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
		id   uint64
		ok   bool
	}{
		{"0 123\n", 0, 123, true},
		{"53 0\n", 53, 0, true},
		{"0 0\n", 0, 0, false},
		{"53 7\n", 0, 0, false},
		{"0 123", 0, 0, false},
		{"x 1\n", 0, 0, false},
		{"256 0\n", 0, 0, false},
		{"0\n", 0, 0, false},
	} {
		c, id, ok := parseResult([]byte(tc.in))
		if c != tc.code || id != tc.id || ok != tc.ok {
			t.Errorf("%q: %d %d %v", tc.in, c, id, ok)
		}
	}
}
