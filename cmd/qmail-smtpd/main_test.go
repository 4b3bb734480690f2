package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// The test binary is qmail-smtpd itself when QMAIL_SMTPD_TEST_MAIN is set
// (the helper-process idiom): the tests run main as the program runs.
func TestMain(m *testing.M) {
	if os.Getenv("QMAIL_SMTPD_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// smtpdCmd is this test binary run as qmail-smtpd with args, its standard
// input empty, copied into ROOT/bin of an empty tree: without control
// files a session on fd 0/1 ends at once with 421.
func smtpdCmd(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(bin, "qmail-smtpd")
	testutil.CopyTestBinary(t, prog)
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), "QMAIL_SMTPD_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader("")
	return cmd
}

// TestCountNeedsListen: -c without -listen is a usage error (exit 100),
// as are -c 0 and -r -listen; the synopsis allows -c only with -listen.
// Before, qmail-smtpd -c 5 took no notice of -c and served one session on
// fd 0/1.
func TestCountNeedsListen(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		needs bool // the complaint is -c without -listen
	}{
		{[]string{"-c", "5"}, true},
		{[]string{"-c=5"}, true},
		{[]string{"-r", "-c", "5"}, true},
		{[]string{"-listen=", "-c", "5"}, true},
		{[]string{"-c", "0"}, false},
		// A malformed -listen address is a usage error too (it was 111,
		// "cannot listen").
		{[]string{"-listen", "::1:26651"}, false},
		{[]string{"-listen", "[::1]"}, false},
		{[]string{"-listen", "127.0.0.1"}, false},
		{[]string{"-r", "-listen", "127.0.0.1:0"}, false},
	} {
		args := tc.args
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := smtpdCmd(t, ctx, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 100 {
			t.Errorf("qmail-smtpd %q: %v, want exit 100; stdout %q, stderr %q", args, err, stdout.String(), stderr.String())
			continue
		}
		if stdout.Len() != 0 || !strings.Contains(stderr.String(), "usage: qmail-smtpd") {
			t.Errorf("qmail-smtpd %q: stdout %q, stderr %q; want only the usage on stderr", args, stdout.String(), stderr.String())
		}
		if tc.needs && !strings.HasPrefix(stderr.String(), "qmail-smtpd: -c needs -listen\n") {
			t.Errorf("qmail-smtpd %q: stderr %q, want it to say -c needs -listen", args, stderr.String())
		}
	}
}

// TestCountWithListen: -c with -listen is accepted, before or after it:
// qmail-smtpd listens (on a loopback port the kernel picks) until killed.
func TestCountWithListen(t *testing.T) {
	for _, args := range [][]string{
		{"-listen", "127.0.0.1:0", "-c", "5"},
		{"-c=5", "-listen=127.0.0.1:0"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := smtpdCmd(t, ctx, args...)
		pr, pw := io.Pipe()
		cmd.Stderr = pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { err := cmd.Wait(); pw.Close(); done <- err }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		line, err := bufio.NewReader(pr).ReadString('\n')
		if !strings.HasPrefix(line, "qmail-smtpd: listening on 127.0.0.1:") {
			t.Errorf("qmail-smtpd %q: first line %q (%v), want it listening", args, line, err)
		}
		go io.Copy(io.Discard, pr)
	}
}

// startListenRawLog starts qmail-smtpd -listen on a loopback port with its
// descriptor 2 the write end of an OS pipe, and returns the address it
// listens on, the pipe's read end (after the "listening on" line) and the
// process; it is killed at the end of the test.
func startListenRawLog(t *testing.T) (string, *os.File, *exec.Cmd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := smtpdCmd(t, ctx, "-listen", "127.0.0.1:0")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	var line []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\n")) {
		if _, err := pr.Read(b); err != nil {
			t.Fatalf("no listening line: %q, %v", line, err)
		}
		line = append(line, b[0])
	}
	addr, ok := strings.CutPrefix(string(line), "qmail-smtpd: listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	addr, _, _ = strings.Cut(addr, ",")
	return addr, pr, cmd
}

// greeting connects to addr and returns the first line the server sends.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestListenLogReaderGone: a log reader that has gone costs the log lines,
// not the listener (QA logs: SIGPIPE killed it at the next line, and every
// client after it was refused).
func TestListenLogReaderGone(t *testing.T) {
	addr, pr, _ := startListenRawLog(t)
	pr.Close()
	for i := 0; i < 2; i++ {
		if line, err := greeting(addr); !strings.HasPrefix(line, "421 ") && !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d after the log reader went: %q, %v", i+1, line, err)
		}
	}
}

// TestListenStopLogFull: a TERM closes the listening socket at once even
// when the log's reader has stopped reading (QA logs: the signal's own log
// line blocked before the stop, and the port stayed open).
func TestListenStopLogFull(t *testing.T) {
	addr, pr, cmd := startListenRawLog(t)
	// Fill the pipe from our side (a reader that stopped reading).
	w, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", pr.Fd()), os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot open the pipe for writing: %v", err)
	}
	defer w.Close()
	fd := int(w.Fd()) // once: each Fd call puts the descriptor back in blocking mode
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := 0; i < 1<<14; i++ {
		if _, err := syscall.Write(fd, chunk); err != nil {
			break // EAGAIN: full
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // refused: the socket is closed
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listening socket is still open 20 s after TERM with the log full")
		}
		time.Sleep(50 * time.Millisecond)
	}
	go io.Copy(io.Discard, pr) // let it finish
}
