package forward

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
// cannot be made in any of the directories tried (here none of them
// exists; a full disk is the same), the delivery is deferred with the
// last one's error, before the program runs.
func TestProgramNoTempFile(t *testing.T) {
	home := inHome(t)
	dirs := []string{filepath.Join(home, "none1"), filepath.Join(home, "none2")}
	f, err := withHeadIn(dirs, []byte(aliceUF), msgFile(t, bigBody))
	if err == nil {
		f.Close()
	}
	want := "Unable to copy message: unable to create a temporary file in " + dirs[1] + ": file does not exist. (#4.3.0)"
	if err == nil || qerr.IsPerm(err) || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestProgramTempDirFallback: with $TMPDIR a directory that cannot take
// the copy of the message (it does not exist; one the user cannot write,
// as pam_tmpdir's /tmp/user/0 handed on by qmail-send, is the same), the
// copy goes in /tmp: the program gets the message. Every program
// delivery was deferred until the queue lifetime ran out.
func TestProgramTempDirFallback(t *testing.T) {
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	env := EnvFromOS(t.TempDir())
	t.Setenv("TMPDIR", filepath.Join(home, "none"))
	res := filepath.Join(home, "prog.out")
	p := &Plan{Programs: []string{"cat > " + res}}
	var out bytes.Buffer
	if _, err := Deliver(p, msgFile(t, bigBody), &env, &out); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got := readFile(t, res); got != aliceUF+aliceRP+aliceDT+bigBody {
		t.Errorf("the program got %d bytes", len(got))
	}
}

// TestTempDirs: $TMPDIR if set and absolute, then /tmp, then the
// delivery's home (the current directory), each once.
func TestTempDirs(t *testing.T) {
	home := inHome(t)
	for _, tc := range []struct {
		tmpdir string
		want   []string
	}{
		{"", []string{"/tmp", home}},
		{"/var/tmp", []string{"/var/tmp", "/tmp", home}},
		{"/tmp/", []string{"/tmp", home}},
		{"tmp", []string{"/tmp", home}},
		{home, []string{home, "/tmp"}},
	} {
		t.Setenv("TMPDIR", tc.tmpdir)
		if got := tempDirs(); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("TMPDIR=%q: %q, want %q", tc.tmpdir, got, tc.want)
		}
	}
	// No current directory: $HOME.
	gone := filepath.Join(home, "gone")
	os.Mkdir(gone, 0o755)
	t.Chdir(gone)
	os.Remove(gone)
	t.Setenv("TMPDIR", "")
	t.Setenv("HOME", "/home/alice")
	if got := tempDirs(); strings.Join(got, " ") != "/tmp /home/alice" {
		t.Errorf("no current directory: %q", got)
	}
}

// TestProgramTempDirFull: a message larger than the free space of
// $TMPDIR (here a small tmpfs) goes in the next directory, /tmp: the
// program gets all of it. It was deferred with "No space left on
// device". (Only as root, who can mount a tmpfs.)
func TestProgramTempDirFull(t *testing.T) {
	home := inHome(t)
	small := filepath.Join(home, "small")
	os.Mkdir(small, 0o755)
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	localEnv(t, "alice", "alice", "")
	env := EnvFromOS(t.TempDir())
	t.Setenv("TMPDIR", small)
	res := filepath.Join(home, "prog.out")
	p := &Plan{Programs: []string{"cat > " + res}}
	var out bytes.Buffer
	if _, err := Deliver(p, msgFile(t, bigBody), &env, &out); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got := readFile(t, res); got != aliceUF+aliceRP+aliceDT+bigBody {
		t.Errorf("the program got %d bytes", len(got))
	}
	// All full: the last error.
	f, err := withHeadIn([]string{small, small}, []byte(aliceUF), msgFile(t, bigBody))
	if err == nil {
		f.Close()
	}
	want := "Unable to copy message: out of disk space (a temporary file in " + small + "). (#4.3.0)"
	if err == nil || qerr.IsPerm(err) || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
