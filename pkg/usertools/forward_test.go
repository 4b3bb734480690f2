package usertools

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

// captureQueue makes $QMAILQUEUE a script that keeps the message and the
// envelope in the returned directory and exits with code.
func captureQueue(t *testing.T, code int) string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "qq")
	body := "#!/bin/sh\ncat > " + dir + "/message\ncat <&1 > " + dir + "/envelope\nexit " + strconv.Itoa(code) + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILQUEUE", script)
	return dir
}

// queued returns what the capturing qmail-queue got, and whether it ran.
func queued(t *testing.T, dir string) (msg, env string, ran bool) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(dir, "message"))
	if err != nil {
		return "", "", false
	}
	e, _ := os.ReadFile(filepath.Join(dir, "envelope"))
	return string(m), string(e), true
}

// pipeWith is a pipe (not seekable) holding s.
func pipeWith(t *testing.T, s string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.WriteString(s)
		w.Close()
	}()
	t.Cleanup(func() { r.Close() })
	return r
}

func TestForwardMain(t *testing.T) {
	localEnv(t)
	body := "Subject: fw\n\nbody without newline"
	for _, tc := range []struct {
		qqExit int
		code   int
		stderr string
	}{
		{0, 0, ""},
		{31, 100, "forward: fatal: unable to forward the message: mail server permanently rejected message (#5.3.0)\n"},
		{11, 100, "forward: fatal: unable to forward the message: envelope address too long for qq (#5.1.3)\n"},
		{53, 111, "forward: fatal: unable to forward the message: qq write error or disk full (#4.3.0)\n"},
		{1, 111, "forward: fatal: unable to forward the message: qq temporary problem (#4.3.0)\n"},
	} {
		dir := captureQueue(t, tc.qqExit)
		var stdout, stderr bytes.Buffer
		code := ForwardMain(t.TempDir(), []string{"a@example.com", "b@example.org"}, msgFile(t, []byte(body)), &stdout, &stderr)
		if code != tc.code || tc.code != 0 && stderr.String() != tc.stderr {
			t.Errorf("qq exit %d: exit %d, stderr %q; want %d, %q", tc.qqExit, code, stderr.String(), tc.code, tc.stderr)
			continue
		}
		msg, env, ran := queued(t, dir)
		if !ran || msg != testDT+body || env != "Fbob@example.net\x00Ta@example.com\x00Tb@example.org\x00\x00" {
			t.Errorf("qq exit %d: queued %v %q %q", tc.qqExit, ran, msg, env)
		}
		// qmail's forward says "forward: qp N" on standard error: the
		// tool's name tells the line in the delivery report from
		// qmail-local's own "qp N".
		if tc.code == 0 && (!qpLine("forward", stderr.String()) || stdout.Len() != 0) {
			t.Errorf("stderr %q is not one \"forward: qp N\" line, or stdout %q is not empty", stderr.String(), stdout.String())
		}
	}
}

func TestForwardMessageFromStart(t *testing.T) {
	// stdin left somewhere in the middle (an earlier reader) and stdin a
	// pipe: the whole message is forwarded either way.
	localEnv(t)
	dir := captureQueue(t, 0)
	f := msgFile(t, []byte("Subject: a\n\nwhole\n"))
	f.Seek(5, 0)
	var stdout, stderr bytes.Buffer
	if code := ForwardMain(t.TempDir(), []string{"a@b"}, f, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
	if msg, _, _ := queued(t, dir); msg != testDT+"Subject: a\n\nwhole\n" {
		t.Errorf("queued %q", msg)
	}
	if code := ForwardMain(t.TempDir(), []string{"a@b"}, pipeWith(t, "piped\n"), &stdout, &stderr); code != 0 {
		t.Fatalf("pipe: exit %d, %q", code, stderr.String())
	}
	if msg, _, _ := queued(t, dir); msg != testDT+"piped\n" {
		t.Errorf("queued %q", msg)
	}
}

func TestForwardUsageAndVariables(t *testing.T) {
	localEnv(t)
	dir := captureQueue(t, 0)
	for _, args := range [][]string{nil, {"a@b", ""}} {
		var stdout, stderr bytes.Buffer
		if code := ForwardMain(t.TempDir(), args, msgFile(t, nil), &stdout, &stderr); code != 100 || stderr.String() != "usage: "+forwardUsage+"\n" {
			t.Errorf("%q: exit %d, %q", args, code, stderr.String())
		}
	}
	for _, v := range []string{"NEWSENDER", "DTLINE"} {
		localEnv(t)
		unsetenv(t, v)
		var stdout, stderr bytes.Buffer
		code := ForwardMain(t.TempDir(), []string{"a@b"}, msgFile(t, nil), &stdout, &stderr)
		if code != 100 || stderr.String() != "forward: fatal: $"+v+" is not set; forward runs from a .qmail file, under qmail-local\n" {
			t.Errorf("no %s: exit %d, %q", v, code, stderr.String())
		}
	}
	if _, _, ran := queued(t, dir); ran {
		t.Error("queued without the variables")
	}
}

// TestCopyFails: a message on a pipe whose temporary copy cannot be
// written (a file size limit, ulimit -f) is said to be that, with the
// reason and where; forward and condredirect said "Unable to read
// message", blaming the input. Exit 111, nothing queued or run.
func TestCopyFails(t *testing.T) {
	localEnv(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	want := ": fatal: Unable to write a temporary copy of the message in " + tmp + ": file too big. (#4.3.0)\n"
	big := "Subject: big\n\n" + strings.Repeat("a line of the body\n", 2000)
	ran := filepath.Join(t.TempDir(), "ran")
	for _, tool := range []string{"forward", "condredirect"} {
		dir := captureQueue(t, 0)
		in := pipeWith(t, big)
		var stdout, stderr bytes.Buffer
		var code int
		testutil.WithFileSizeLimit(t, 4096, func() {
			if tool == "forward" {
				code = ForwardMain(t.TempDir(), []string{"a@example.com"}, in, &stdout, &stderr)
			} else {
				code = CondredirectMain(t.TempDir(), []string{"a@example.com", "/bin/touch", ran}, in, &stdout, &stderr)
			}
		})
		in.Close() // the writer stops
		if code != 111 || stderr.String() != tool+want {
			t.Errorf("%s: exit %d, stderr %q; want 111, %q", tool, code, stderr.String(), tool+want)
		}
		if _, _, q := queued(t, dir); q {
			t.Errorf("%s: queued", tool)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("condredirect ran its program")
	}
}
