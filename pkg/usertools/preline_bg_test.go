package usertools

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// waitFile waits up to 10 seconds for path to exist and returns its
// contents; ok is false if it never came.
func waitFile(path string) (b []byte, ok bool) {
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			return b, true
		}
		if time.Now().After(end) {
			return nil, false
		}
	}
}

// TestPrelineBackgroundReader: a program that exits at once and leaves a
// process to read its input later gets all of the message, as from
// qmail's preline, which writes until all is written. preline closed the
// pipe once the program had exited: the process read 61,549 of 1,014,297
// bytes and took them for the whole message.
func TestPrelineBackgroundReader(t *testing.T) {
	localEnv(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	body := bytes.Repeat([]byte("From the body, a line of it\n"), 1<<20/28)
	// (An asynchronous command of a script reads /dev/null unless told
	// otherwise: hand it the pipe through fd 3. The file appears whole,
	// once the reader is done.)
	script := "exec 3<&0; (sleep 1; cat <&3 > " + out + ".tmp; mv " + out + ".tmp " + out + ") >/dev/null 2>&1 & exit 0"
	var stdout, stderr bytes.Buffer
	code := within(t, "preline", func() int { return PrelineMain([]string{"sh", "-c", script}, msgFile(t, body), &stdout, &stderr) })
	if code != 0 {
		t.Fatalf("exit %d (stderr %q)", code, stderr.String())
	}
	got, ok := waitFile(out)
	if !ok {
		t.Fatal("the background reader wrote nothing in 10 seconds")
	}
	if want := append([]byte(testUF+testRP+testDT), body...); !bytes.Equal(got, want) {
		t.Errorf("the background reader got %d bytes, want %d", len(got), len(want))
	}
}

// TestPrelineReadErrorKillsChildren: on a read error of the message, the
// processes the program started die with it: a child that reads the
// input (here through fd 3) never sees its end and never takes a cut
// message for a whole one. Only the program (sh) was killed, and its
// child read to the end of the pipe and went on. (With no controlling
// terminal, as under qmail-local: the program has a process group of
// its own.)
func TestPrelineReadErrorKillsChildren(t *testing.T) {
	localEnv(t)
	setOwnGroup(t, true)
	dir := t.TempDir()
	done := filepath.Join(dir, "done")
	pidfile := filepath.Join(dir, "pid")
	child := "echo $$ > " + pidfile + "; cat >/dev/null && touch " + done
	script := "exec 3<&0; sh -c '" + child + "' <&3 >/dev/null 2>&1 & exec sleep 600"
	var stdout, stderr bytes.Buffer
	code := within(t, "preline", func() int {
		return PrelineMain([]string{"sh", "-c", script}, &testutil.FailingReader{N: 100000}, &stdout, &stderr)
	})
	if code != 111 || !strings.Contains(stderr.String(), "preline: fatal: unable to read the message: input/output error") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	// The child wrote its pid before it read: 100000 bytes do not go
	// into a pipe without a reader. Wait until it is gone.
	b, _ := os.ReadFile(pidfile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("no pid from the child: %q", b)
	}
	for end := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("the child still runs after 10 seconds")
		}
	}
	if _, err := os.Stat(done); !errors.Is(err, os.ErrNotExist) {
		t.Error("the child saw the end of a cut message and went on")
	}
}

// alive reports whether process pid exists and is no zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// setOwnGroup makes preline take own for whether it has a controlling
// terminal, for the rest of the test.
func setOwnGroup(t *testing.T, own bool) {
	old := ownGroup
	ownGroup = func() bool { return own }
	t.Cleanup(func() { ownGroup = old })
}

// TestPrelineReadErrorInTerminalGroup: from a terminal, the program runs
// in preline's own process group, and on a read error of the message
// preline kills the program alone (not its own group) and exits 111.
func TestPrelineReadErrorInTerminalGroup(t *testing.T) {
	localEnv(t)
	setOwnGroup(t, false)
	stat := filepath.Join(t.TempDir(), "stat")
	var stdout, stderr bytes.Buffer
	code := within(t, "preline", func() int {
		return PrelineMain([]string{"sh", "-c", "cat /proc/$$/stat > " + stat + "; exec cat >/dev/null"}, &testutil.FailingReader{N: 100000}, &stdout, &stderr)
	})
	if code != 111 || !strings.Contains(stderr.String(), "preline: fatal: unable to read the message: input/output error") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
	if len(f) < 3 || f[2] != strconv.Itoa(syscall.Getpgrp()) {
		t.Errorf("the program's stat %q: not in preline's process group %d", b, syscall.Getpgrp())
	}
}
