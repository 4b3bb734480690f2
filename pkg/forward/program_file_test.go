package forward

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// bigMsg is about 1 MB, far more than a pipe holds.
var bigMsg = "Subject: big\n\n" + strings.Repeat("From the body, a line of it\n", 36000)

// waitFile waits up to 10 seconds for path to exist and returns its
// contents; ok is false if it never came.
func waitFile(path string) (s string, ok bool) {
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			return string(b), true
		}
		if time.Now().After(end) {
			return "", false
		}
	}
}

// TestProgramBackgroundReader: a program that exits at once and leaves a
// process to read its input a second later has the whole message read:
// its input is a file that holds all of it. Through a pipe closed when
// the program had exited, the process read 61,549 of 1,014,297 bytes and
// the delivery counted as done.
func TestProgramBackgroundReader(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	env := EnvFromOS(t.TempDir())
	res := filepath.Join(home, "bg.out")
	// (An asynchronous command of a script reads /dev/null unless told
	// otherwise: hand it the input through fd 3. The file appears whole,
	// once the reader is done.)
	p := &Plan{Programs: []string{"exec 3<&0; (sleep 1; cat <&3 > " + res + ".tmp; mv " + res + ".tmp " + res + ") >/dev/null 2>&1 & exit 0"}}
	var out bytes.Buffer
	err := bounded(t, "Deliver", func() error { _, err := Deliver(p, msgFile(t, bigMsg), &env, &out); return err })
	if err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	got, ok := waitFile(res)
	if !ok {
		t.Fatal("the background reader wrote nothing in 10 seconds")
	}
	if want := aliceUF + aliceRP + aliceDT + bigMsg; got != want {
		t.Errorf("the background reader got %d bytes, want %d", len(got), len(want))
	}
}

// TestProgramSeeksInput: a program's input can be rewound, as
// qmail-local's can (qmail 1.03's condredirect rewinds it; so do
// programs that read a message twice). Through a pipe, lseek failed with
// ESPIPE and the delivery was deferred for ever.
func TestProgramSeeksInput(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	env := EnvFromOS(t.TempDir())
	res := filepath.Join(home, "seek.out")
	script := "import os, sys\n" +
		"a = sys.stdin.buffer.read()\n" +
		"os.lseek(0, 0, os.SEEK_SET)\n" +
		"b = open(0, 'rb', closefd=False).read()\n" +
		"open(sys.argv[1], 'wb').write(a + b'--\\n' + b)\n"
	os.WriteFile(filepath.Join(home, "seek.py"), []byte(script), 0o644)
	p := &Plan{Programs: []string{py + " " + home + "/seek.py " + res}}
	var out bytes.Buffer
	err = bounded(t, "Deliver", func() error { _, err := Deliver(p, msgFile(t, bigBody), &env, &out); return err })
	if err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	whole := aliceUF + aliceRP + aliceDT + bigBody
	if got := readFile(t, res); got != whole+"--\n"+whole {
		t.Errorf("the program read %d bytes, want twice %d", len(got), len(whole))
	}
}

// TestProgramNoTempFile: when the copy of the message for a program
// cannot be written (here no temporary directory; a full disk is the
// same), the delivery is deferred before the program runs.
func TestProgramNoTempFile(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	env := EnvFromOS(t.TempDir())
	t.Setenv("TMPDIR", filepath.Join(home, "none"))
	ran := filepath.Join(home, "ran")
	p := &Plan{Programs: []string{"touch " + ran + "; cat >/dev/null"}}
	var out bytes.Buffer
	_, err := Deliver(p, msgFile(t, bigBody), &env, &out)
	if err == nil || qerr.IsPerm(err) || !strings.HasPrefix(err.Error(), "Unable to copy message: ") || !strings.HasSuffix(err.Error(), "(#4.3.0)") {
		t.Errorf("got %v, want a temporary failure to copy the message", err)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Error("the program ran")
	}
}
